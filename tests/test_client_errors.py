"""What the station's client makes of a server that is down, slow, broken or not the API at all."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kiosk.client import (
    BackendUnreachable,
    BadResponse,
    ExecutionClient,
    Invalid,
    RuleRefused,
)
from kiosk.wire import StartStep
from tests.helpers import free_port

START = StartStep(actor_id=1, traveler="TRV-1001", step_id=1)


@contextmanager
def tiny_server(status: int, body: bytes, content_type: str = "application/json") -> Iterator[str]:
    """A stdlib HTTP server on loopback that answers every request with the same response."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer  # http.server's naming

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_a_server_that_is_down_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with ExecutionClient(url, "some-token") as api:
        assert await api.healthy() is False
        for call in (api.traveler("TRV-1001"), api.perform(START), api.login("10001")):
            with pytest.raises(BackendUnreachable) as down:
                await call
            assert down.value.detail == (
                f"Cannot reach the server at {url}. Check the network cable; call IT if it persists."
            )
            assert down.value.rule is None and down.value.status is None


async def test_a_server_that_never_answers_is_unreachable_after_the_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts connections in the kernel, never reads or answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        async with ExecutionClient(url, "some-token", timeout=0.3) as api:
            with pytest.raises(BackendUnreachable) as slow:
                await api.traveler("TRV-1001")
    assert slow.value.detail == "The server did not answer in time. Nothing was lost; try again."


@pytest.mark.parametrize("body", [b"not json", b"", b"<html><body>Captive portal</body></html>"])
async def test_garbage_from_a_server_is_a_bad_response(body: bytes) -> None:
    with tiny_server(200, body) as url:
        async with ExecutionClient(url, "some-token") as api:
            for call in (api.traveler("TRV-1001"), api.perform(START), api.queue()):
                with pytest.raises(BadResponse) as bad:
                    await call
                assert bad.value.status == 200
                assert bad.value.detail == (
                    "The server sent an answer this station cannot read. Call IT: versions may differ."
                )


async def test_json_of_the_wrong_shape_is_a_bad_response() -> None:
    with tiny_server(200, b'{"number": "TRV-1001", "status": "whatever"}') as url:
        async with ExecutionClient(url, "some-token") as api:
            with pytest.raises(BadResponse):
                await api.traveler("TRV-1001")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, b"Internal Server Error"),
        (500, b'{"detail": "Traceback (most recent call last): ..."}'),
        (502, b"<html>Bad Gateway</html>"),
        (503, b""),
    ],
)
async def test_a_server_failure_is_a_bad_response(status: int, body: bytes) -> None:
    with tiny_server(status, body, "text/html") as url:
        async with ExecutionClient(url, "some-token") as api:
            with pytest.raises(BadResponse) as bad:
                await api.perform(START)
    assert bad.value.status == status
    assert bad.value.detail == f"The server failed ({status}). Nothing was lost; try again."
    assert bad.value.rule is None


async def test_a_refusal_without_a_problem_body_still_reads() -> None:
    with tiny_server(409, b"not json", "text/plain") as url:
        async with ExecutionClient(url, "some-token") as api:
            with pytest.raises(RuleRefused) as refused:
                await api.perform(START)
    assert refused.value.detail == "The server answered 409 without an explanation."
    assert refused.value.rule is None


async def test_a_problem_body_is_read_into_the_typed_error() -> None:
    problem = b'{"title": "Value invalid", "status": 422, "detail": "Torque: not a number.", "rule": "value_invalid"}'
    with tiny_server(422, problem, "application/problem+json") as url:
        async with ExecutionClient(url, "some-token") as api:
            with pytest.raises(Invalid) as refused:
                await api.perform(START)
    assert (refused.value.rule, refused.value.detail, refused.value.status) == (
        "value_invalid",
        "Torque: not a number.",
        422,
    )
