"""Helpers for the operations tests: the real `kiosk serve` with its own log file, a station
client that remembers every credential that crossed the wire, journald's reading of a log, and
Prometheus' reading of a scrape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kiosk.client import ExecutionClient
from tests.helpers import ROOT, free_port, wait_until_answers

# Fields of a JSON answer that are credentials: a person or admin session, a signing ticket, a
# station token.
SECRET_FIELDS = frozenset({"session", "ticket", "token"})
# Request headers that carry one.
SECRET_HEADERS = ("authorization", "idempotency-key", "x-admin-session")


@dataclass
class Server:
    """A `kiosk serve` process: where it answers, and everything it wrote."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8")

    def json_lines(self) -> list[dict[str, Any]]:
        """Every line, parsed: a line that is not one JSON object fails the test here."""
        lines = [json.loads(line) for line in self.text().splitlines()]
        assert all(isinstance(line, dict) for line in lines)
        return lines


def _clean_env(data_dir: Path) -> dict[str, str]:
    """This machine's environment without any KIOSK_* setting or journal of its own."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("KIOSK_") and k != "JOURNAL_STREAM"
    }
    env["KIOSK_DATA_DIR"] = str(data_dir)
    env["KIOSK_SERVER_CONFIG_FILE"] = str(data_dir / "no-server.toml")
    return env


@contextmanager
def kiosk_serve(
    *args: str,
    tmp_path: Path,
    env: dict[str, str] | None = None,
    journal: bool = False,
    port: int | None = None,
    wrapper: list[str] | None = None,
) -> Iterator[Server]:
    """`kiosk serve --port P ARGS` as a child process, stdout and stderr in one file. With
    `journal`, $JOURNAL_STREAM names that file as systemd names the journal's stream; `wrapper`
    is a command that execs the server (one that restricts it first)."""
    port = port or free_port()
    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as out:
        full_env = {**_clean_env(tmp_path / "data"), **(env or {})}
        if journal:
            found = os.fstat(out.fileno())
            full_env["JOURNAL_STREAM"] = f"{found.st_dev}:{found.st_ino}"
        process = subprocess.Popen(
            [*(wrapper or []), sys.executable, "-m", "kiosk", "serve", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=full_env,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_answers(f"{url}/health", process, timeout=60)
            yield Server(url, process, log)
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def database_args(database_url: str, secret_file: Path) -> list[str]:
    return ["--database-url", database_url, "--secret-file", str(secret_file)]


@dataclass
class Wire:
    """What crossed the wire: every credential sent or received, every request id answered."""

    secrets: set[str] = field(default_factory=set)
    request_ids: list[str] = field(default_factory=list)

    async def on_request(self, request: httpx.Request) -> None:
        for name in SECRET_HEADERS:
            value = request.headers.get(name)
            if value:
                self.secrets.add(value.removeprefix("Bearer ").strip())

    async def on_response(self, response: httpx.Response) -> None:
        self.request_ids.append(response.headers["x-request-id"])
        await response.aread()
        if response.headers.get("content-type", "").startswith("application/json"):
            self.secrets.update(_secret_values(response.json()))


def _secret_values(document: object) -> Iterator[str]:
    if isinstance(document, dict):
        for key, value in document.items():
            if key in SECRET_FIELDS and isinstance(value, str):
                yield value
            else:
                yield from _secret_values(value)
    elif isinstance(document, list):
        for item in document:
            yield from _secret_values(item)


@asynccontextmanager
async def watched_client(url: str, token: str, wire: Wire) -> AsyncIterator[ExecutionClient]:
    """The station's own HTTP client, with `wire` noting what it sends and gets."""
    async with ExecutionClient(url, token) as client:
        hooks = client._http.event_hooks  # the client's httpx.AsyncClient
        hooks["request"].append(wire.on_request)
        hooks["response"].append(wire.on_response)
        yield client


# --- how journald reads a stream (sd-daemon(3)) ---------------------------------------------------


def journal_entries(text: str) -> list[tuple[int, str]]:
    """(PRIORITY, MESSAGE) of each line as journald stores it: a leading `<N>` (N 0-7) is the
    line's priority and is cut from the message; a line without one gets journald's default,
    info (6)."""
    entries = []
    for line in text.splitlines():
        if len(line) >= 3 and line[0] == "<" and line[1] in "01234567" and line[2] == ">":
            entries.append((int(line[1]), line[3:]))
        else:
            entries.append((6, line))
    return entries


# --- how Prometheus reads a scrape --------------------------------------------------------------------


@dataclass(frozen=True)
class Scrape:
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    @classmethod
    def of(cls, text: str) -> Scrape:
        found = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return cls(found)

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def total(self, name: str, **labels: str) -> float:
        """Sum over every series of `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= set(ls))

    def label_values(self) -> set[str]:
        return {value for _, labels in self.samples for _, value in labels}


def scrape(url: str, token: str | None = None) -> Scrape:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return Scrape.of(answer.text)
