"""Running the server: one settings object for every server-side command, log lines an admin can
follow by request id and that never hold a credential, /ready that asks the database, /metrics
that Prometheus can scrape, also from several worker processes.

Every server here is the real `kiosk serve` on a loopback port, its output read back as journald
or a log shipper would read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
import socket
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from kiosk.client.errors import OnHold, Refused
from kiosk.config import ConfigError
from kiosk.server import demo
from kiosk.server.app import create_app
from kiosk.server.logs import JsonLineFormatter, TextFormatter
from kiosk.server.service import ExecutionService
from kiosk.server.settings import ServerSettings, load_server_settings
from kiosk.server.store import normalize_url
from kiosk.wire import (
    ActionBatch,
    Credentials,
    Heartbeat,
    QueuedAction,
    RaiseNcr,
)
from tests.helpers import (
    PEOPLE,
    Floor,
    free_port,
    kiosk,
    leaked_secrets,
    person_ids,
    rows,
    step_of,
    uvicorn_in_thread,
)
from tests.ops_helpers import (
    Server,
    Wire,
    database_args,
    journal_entries,
    kiosk_serve,
    scrape,
    watched_client,
)

if TYPE_CHECKING:
    from tests.conftest import Plant

pytestmark = pytest.mark.slow

SQLITE_ONLY = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
UVICORN_LOGGERS = {"uvicorn.error", "uvicorn.access"}


def _serve(
    plant: Plant,
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    journal: bool = False,
) -> AbstractContextManager[Server]:
    """`kiosk serve` on the test's own copy of the demo plant."""
    plant_args = database_args(plant.database_url, plant.secret_file)
    return kiosk_serve(*plant_args, *args, tmp_path=tmp_path, env=env, journal=journal)


# --- one settings object --------------------------------------------------------------------------


def test_server_settings_come_from_the_file_then_the_environment_then_the_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "server.toml"
    config.write_text('host = "0.0.0.0"\nport = 8700\nworkers = 3\nlog_format = "json"\n')
    monkeypatch.setenv("KIOSK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KIOSK_PORT", "8701")
    monkeypatch.delenv("KIOSK_DATABASE_URL", raising=False)

    found = load_server_settings(config, workers=2, host=None)

    assert (found.host, found.port, found.workers, found.log_format) == ("0.0.0.0", 8701, 2, "json")
    # The defaults every command shares, in one place.
    assert found.database == f"sqlite:///{tmp_path / 'data' / 'plant.db'}"
    assert found.plant_secret == tmp_path / "data" / "plant-secret"
    assert ServerSettings().port == 8600 and ServerSettings().host == "127.0.0.1"


def test_a_wrong_setting_names_the_file_and_the_field(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text('log_format = "xml"\n')
    with pytest.raises(ConfigError, match=r"server\.toml: log_format: Input should be 'text'"):
        load_server_settings(config)

    done = kiosk("audit", "verify", "--config", str(config), data_dir=tmp_path)

    assert done.returncode == 3
    assert "server.toml: log_format: Input should be 'text' or 'json'" in done.stderr


def test_every_server_command_reads_the_same_server_toml(tmp_path: Path) -> None:
    """`kiosk serve`, `kiosk station add` and `kiosk audit verify` given only --config agree on
    the database, the plant secret, the port and the log format."""
    plant_dir = tmp_path / "plant"
    plant_dir.mkdir()
    port = free_port()
    config = tmp_path / "server.toml"
    config.write_text(
        f'database_url = "sqlite:///{plant_dir / "plant.db"}"\n'
        f'secret_file = "{plant_dir / "secret"}"\n'
        f'port = {port}\nlog_format = "json"\n'
    )
    with kiosk_serve("--config", str(config), "--demo", tmp_path=tmp_path, port=port) as server:
        assert httpx.get(f"{server.url}/ready", timeout=10).status_code == 200
        added = kiosk(
            "station",
            "add",
            "OPS-9",
            "--work-center",
            "ASSEMBLY",
            "--config",
            str(config),
            data_dir=tmp_path / "elsewhere",
        )
        assert added.returncode == 0, added.stderr
        code = added.stdout.split("enrollment code ")[1].split()[0]
        enrolled = httpx.post(
            f"{server.url}/api/v1/enroll",
            json={"code": code},
            headers={"Idempotency-Key": "ops-enroll-0001"},
            timeout=10,
        )
        assert enrolled.status_code == 200, enrolled.text
        lines = server.json_lines()
    assert any(line["message"].startswith("Uvicorn running on") for line in lines)
    verified = kiosk("audit", "verify", "--config", str(config), data_dir=tmp_path / "elsewhere")
    assert verified.returncode == 0 and verified.stdout.startswith("ok: "), verified.stderr
    assert not (tmp_path / "elsewhere" / "plant.db").exists()


# --- log lines ------------------------------------------------------------------------------------


async def _a_shift(url: str, service: ExecutionService, wire: Wire) -> None:
    """Badge-ins, values, a signature, a wrong PIN, a signing ticket, an admin session and a
    batch of queued actions: every credential the API knows, through the station's client."""
    ids = person_ids(service)
    token = service.local_station_token(demo.DEMO_STATION, demo.WORK_CENTER)
    async with watched_client(url, token, wire) as client:
        floor = Floor(client, ids)
        await floor.work("ana", "TRV-1001", "10.1")
        with pytest.raises(Refused, match="not accepted"):
            await client.verify(Credentials(badge=PEOPLE["ben"][1], pin="0000"))
        await client.verify(Credentials(badge=PEOPLE["ivy"][1], pin=PEOPLE["ivy"][2]))
        admin = await client.admin_session(
            Credentials(badge=PEOPLE["ada"][1], pin=PEOPLE["ada"][2])
        )
        await client.overview(admin.token)
        trv = await floor.traveler("TRV-2000")
        start = floor.with_session(
            floor.start("ben", trv, "10.1"), await floor.session_of(ids["ben"])
        )
        await client.deliver(
            ActionBatch(actions=(QueuedAction(key="ops-batch-0001", station_seq=1, action=start),))
        )
    wire.secrets.add(token)


@SQLITE_ONLY
async def test_json_lines_carry_request_ids_and_no_credential(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    wire = Wire()
    with _serve(plant, tmp_path, "--log-format", "json") as server:
        await _a_shift(server.url, service, wire)
        # A client's own id is kept; a PIN in a query string or in a refused body is not logged.
        mine = httpx.get(
            f"{server.url}/health", headers={"X-Request-Id": "lb-7f3a-0001"}, timeout=10
        )
        junk = httpx.get(
            f"{server.url}/health", headers={"X-Request-Id": "id;DROP TABLE"}, timeout=10
        )
        httpx.get(f"{server.url}/api/v1/queue?pin=1111&badge=10001", timeout=10)
        malformed = httpx.post(
            f"{server.url}/api/v1/verify",
            content=b'{"badge": "10001", "pin": "1111", "n": NaN}',
            headers={
                "Content-Type": "application/json",
                "Authorization": "Bearer abcdefgh12345678",
            },
            timeout=10,
        )
        lines = server.json_lines()
        log = server.text()

    assert mine.headers["x-request-id"] == "lb-7f3a-0001"
    assert REQUEST_ID.fullmatch(junk.headers["x-request-id"])
    assert malformed.status_code == 400 and malformed.json()["rule"] == "request_malformed"
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    # One access line per request the client made, each with the id its answer carried.
    assert {line["request_id"] for line in access} >= set(wire.request_ids)
    assert all(line["request_id"] for line in access)
    assert {line["logger"] for line in lines} >= UVICORN_LOGGERS
    assert {"time", "level", "message", "pid"} <= set(access[0])
    login = next(line for line in access if line["path"] == "/api/v1/login")
    assert (login["method"], login["status"]) == ("POST", 200)
    assert any(line["request_id"] == "lb-7f3a-0001" for line in access)
    assert any("pin=[redacted]&badge=[redacted]" in line["path"] for line in access)
    # Not one badge, PIN, station token, session, ticket, admin session or idempotency key.
    assert leaked_secrets(log) == []
    assert len(wire.secrets) >= 10
    assert [s for s in wire.secrets | {"abcdefgh12345678"} if s in log] == []


@SQLITE_ONLY
async def test_under_systemd_text_lines_carry_journal_priorities(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    """With $JOURNAL_STREAM naming stderr, each line starts with its sd-daemon priority and
    leaves the time to the journal; a warning is a warning in `journalctl -p warning`."""
    wire = Wire()
    with _serve(plant, tmp_path, journal=True) as server:
        await _a_shift(server.url, service, wire)
        httpx.get(f"{server.url}/health", headers={"X-Request-Id": "journal-0001"}, timeout=10)
        _send_garbage(server.url)  # uvicorn's own warning: "Invalid HTTP request received."
        entries = journal_entries(server.text())

    assert entries and all(
        server.text().splitlines()[n].startswith("<") for n in range(len(entries))
    )
    by_id = [message for priority, message in entries if "[journal-0001]" in message]
    assert by_id == [by_id[0]] and by_id[0].startswith("INFO uvicorn.access [journal-0001] ")
    assert '"GET /health HTTP/1.1" 200' in by_id[0]
    assert {p for p, m in entries if m.startswith("INFO ")} == {6}
    warnings = [(p, m) for p, m in entries if m.startswith("WARNING ")]
    assert warnings and {p for p, _ in warnings} == {4}
    assert any(m.startswith("WARNING uvicorn.error [-] Invalid HTTP request") for _, m in warnings)
    assert not re.match(r"\d{4}-\d\d-\d\dT", entries[0][1]), "the journal stamps the time"
    assert leaked_secrets(server.text()) == []


def _send_garbage(url: str) -> None:
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"NOT HTTP AT ALL\x00\r\n\r\n")
        with contextlib.suppress(OSError):
            sock.recv(1024)


@contextmanager
def _captured(*formatters: logging.Formatter) -> Iterator[list[io.StringIO]]:
    """The server's formatters on uvicorn's and the kiosk's loggers, each writing to a buffer."""
    streams = [io.StringIO() for _ in formatters]
    handlers = [logging.StreamHandler(stream) for stream in streams]
    for handler, formatter in zip(handlers, formatters, strict=True):
        handler.setFormatter(formatter)
    loggers = [logging.getLogger(name) for name in ("uvicorn", "kiosk")]
    for logger in loggers:
        logger.setLevel(logging.INFO)
        for handler in handlers:
            logger.addHandler(handler)
    try:
        yield streams
    finally:
        for logger in loggers:
            for handler in handlers:
                logger.removeHandler(handler)


def test_a_server_error_is_logged_whole_with_its_id_and_without_the_credentials(
    service: ExecutionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug that quotes a request body in its exception (pydantic does) still writes no badge
    or PIN; the traceback is one journal entry of priority err, and the 500 names its id."""

    def broken_verify(_station: object, credentials: Credentials) -> None:
        Credentials.model_validate({"badge": credentials.badge, "pin": int(credentials.pin)})

    monkeypatch.setattr(service, "verify", broken_verify)
    token = service.local_station_token(demo.DEMO_STATION, demo.WORK_CENTER)
    port = free_port()
    config = uvicorn.Config(
        create_app(service), host="127.0.0.1", port=port, log_config=None, lifespan="off"
    )
    with _captured(JsonLineFormatter(journal=False), TextFormatter(journal=True)) as streams:
        with uvicorn_in_thread(config):
            answer = httpx.post(
                f"http://127.0.0.1:{port}/api/v1/verify",
                json={"badge": "20001", "pin": "2222"},
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "ops-500-0001"},
                timeout=10,
            )
        as_json, as_journal = (stream.getvalue() for stream in streams)

    assert answer.status_code == 500 and answer.json()["rule"] == "server_error"
    rid = answer.headers["x-request-id"]
    failure = next(json.loads(line) for line in as_json.splitlines() if '"exc_info"' in line)
    assert (failure["level"], failure["request_id"]) == ("error", rid)
    assert "ValidationError" in failure["exc_info"]
    assert "input_value=[redacted]" in failure["exc_info"]
    entry = [line for line in as_journal.splitlines() if not line.startswith("<6>")]
    assert entry[0].startswith(f"<3>ERROR uvicorn.error [{rid}] Exception in ASGI application")
    assert len(entry) > 5 and all(line.startswith("<3>") for line in entry)
    for log in (as_json, as_journal):
        assert leaked_secrets(log) == []
        assert token not in log and "ops-500-0001" not in log


def test_without_a_journal_text_lines_start_with_the_time(tmp_path: Path) -> None:
    with kiosk_serve("--demo", tmp_path=tmp_path) as server:
        httpx.get(f"{server.url}/health", timeout=10)
        lines = server.text().splitlines()
    access = next(line for line in lines if "uvicorn.access" in line)
    assert re.match(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO uvicorn\.access \[[0-9a-f]{32}\] ", access
    )


# --- /ready ---------------------------------------------------------------------------------------


def _break_database(plant: Plant) -> None:
    """What an admin fears: the database gone from under a running server."""
    url = make_url(normalize_url(plant.database_url))
    if url.get_backend_name() == "sqlite":
        # Overwritten by something that is not a database (a botched restore, a failing disk).
        assert url.database is not None
        for path in (Path(url.database), Path(url.database + "-shm")):
            if path.exists():
                path.write_bytes(b"\xff" * path.stat().st_size)
        return
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{url.database}" WITH (FORCE)'))
    admin.dispose()


def test_ready_asks_the_database_and_says_503_when_it_cannot(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    with _serve(plant, tmp_path, "--log-format", "json") as server:
        ready = httpx.get(f"{server.url}/ready", timeout=10)
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        assert scrape(server.url).value("kiosk_database_up") == 1

        service.store.dispose()
        _break_database(plant)
        not_ready = httpx.get(f"{server.url}/ready", timeout=20)
        health = httpx.get(f"{server.url}/health", timeout=10)
        metrics = scrape(server.url)
        lines = server.json_lines()

    assert not_ready.status_code == 503
    assert not_ready.headers["content-type"] == "application/problem+json"
    assert not_ready.headers["retry-after"] == "5"
    assert not_ready.json()["rule"] == "database_unavailable"
    assert health.status_code == 200  # alive, only not ready: a restart would not help
    assert metrics.value("kiosk_database_up") == 0
    warning = next(line for line in lines if line["message"].startswith("not ready: database"))
    assert warning["level"] == "warning"
    assert warning["request_id"] == not_ready.headers["x-request-id"]


# --- /metrics ---------------------------------------------------------------------------------------


def _open_holds_and_ncrs(service: ExecutionService) -> tuple[int, int]:
    from kiosk.server import schema as t

    holds = [r for r in rows(service, t.holds) if r["released_signature_id"] is None]
    ncrs = [r for r in rows(service, t.ncrs) if r["disposition"] is None]
    return len(holds), len(ncrs)


def _heartbeat(waiting: int, refused: int) -> Heartbeat:
    return Heartbeat(
        app_version="0.1.0",
        config_version=1,
        theme="kiosk-dark",
        terminal="80x25",
        color_system="standard",
        outbox_waiting=waiting,
        outbox_refused=refused,
        uptime_seconds=60.0,
    )


@SQLITE_ONLY
async def test_metrics_count_routes_actions_and_read_the_plant_at_scrape_time(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    ids = person_ids(service)
    token = service.local_station_token(demo.DEMO_STATION, demo.WORK_CENTER)
    holds, ncrs = _open_holds_and_ncrs(service)
    with _serve(plant, tmp_path) as server:
        assert scrape(server.url).value("kiosk_open_holds") == holds
        async with watched_client(server.url, token, Wire()) as client:
            floor = Floor(client, ids)
            for number in ("TRV-1001", "TRV-1002", "TRV-2000"):
                await client.traveler(number)
            await floor.work("ana", "TRV-1001", "10.1")  # 4 actions applied
            with pytest.raises(OnHold):
                await floor.start_step("ana", "TRV-1003", "10.1")
            trv1003, trv2000 = await floor.traveler("TRV-1003"), await floor.traveler("TRV-2000")
            ben = await floor.session_of(ids["ben"])
            batch = (
                floor.with_session(floor.start("ben", trv2000, "10.1"), ben),
                floor.with_session(floor.start("ben", trv1003, "10.1"), ben),
            )
            await client.deliver(
                ActionBatch(
                    actions=tuple(
                        QueuedAction(key=f"ops-metrics-{n:04d}", station_seq=n + 1, action=a)
                        for n, a in enumerate(batch)
                    )
                )
            )
            ana = await floor.session_of(ids["ana"])
            trv1002 = await floor.traveler("TRV-1002")
            step = step_of(trv1002, "20.1")
            ncr = RaiseNcr(
                actor_id=ids["ana"],
                traveler="TRV-1002",
                step_id=step.id,
                description="Burr on the bore",
                defect_code="DMG",
            )
            await client.perform(floor.with_session(ncr, ana))
            before = time.time()
            await client.heartbeat(_heartbeat(waiting=3, refused=1))
        found = scrape(server.url)

    actions = "kiosk_actions_total"
    assert found.value(actions, outcome="applied", rule="") == 4 + 1 + 1  # work, batch, NCR
    assert found.value(actions, outcome="refused", rule="traveler_on_hold") == 2
    requests = "kiosk_http_requests_total"
    route = "/api/v1/travelers/{number}"
    assert found.total(requests, method="GET", route=route) >= 3
    assert not any(v.startswith("TRV-") for v in found.label_values()), "raw paths as labels"
    assert found.value(
        "kiosk_http_request_duration_seconds_count", method="POST", route="/api/v1/actions"
    ) == found.total(requests, method="POST", route="/api/v1/actions")
    # Read from the database when scraped: the NCR put TRV-1002 on hold too.
    assert found.value("kiosk_open_ncrs") == ncrs + 1
    assert found.value("kiosk_open_holds") == holds + 1
    station = {"station": demo.DEMO_STATION, "work_center": demo.WORK_CENTER}
    assert found.value("kiosk_station_outbox_waiting", **station) == 3
    assert found.value("kiosk_station_outbox_refused", **station) == 1
    beat = found.value("kiosk_station_last_heartbeat_timestamp_seconds", **station)
    assert beat is not None and before - 1 <= beat <= time.time() + 1


@SQLITE_ONLY
def test_metrics_token_protects_the_scrape(plant: Plant, tmp_path: Path) -> None:
    secret = "scrape-me-4f9c2d7e1a"
    with _serve(
        plant, tmp_path, "--host", "127.0.0.1", env={"KIOSK_METRICS_TOKEN": secret}
    ) as server:
        bare = httpx.get(f"{server.url}/metrics", timeout=10)
        wrong = httpx.get(
            f"{server.url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10
        )
        right = scrape(server.url, secret)
        ready = httpx.get(f"{server.url}/ready", timeout=10)
        log = server.text()

    assert bare.status_code == wrong.status_code == 401
    assert bare.json()["rule"] == "metrics_token_required"
    assert bare.headers["www-authenticate"].startswith("Bearer")
    assert right.value("kiosk_database_up") == 1
    assert ready.status_code == 200  # a probe needs no token
    assert secret not in log


def test_two_workers_add_up_to_one_set_of_counts(plant: Plant, tmp_path: Path) -> None:
    """Whichever worker answers a scrape, it reports every worker's requests."""
    with _serve(plant, tmp_path, "--workers", "2", "--log-format", "json") as server:
        # Start from what the start-up probes left (one may have given up before its answer).
        before = _health_count(server.url)
        sent = 0
        for _ in range(20):
            sent += asyncio.run(_health_burst(server.url, 30))
            if len(set(_health_answered_by(server))) == 2:
                break
        assert len(set(_health_answered_by(server))) == 2, "both workers answered"
        # Six scrapes, each on a new connection, answered by either worker: the same figure.
        counts = [_health_count(server.url) for _ in range(6)]
        started = server.text().count("Started server process")

    assert before is not None and counts == [before + sent] * 6
    assert started == 2


def _health_count(url: str) -> float | None:
    return scrape(url).value(
        "kiosk_http_requests_total", method="GET", route="/health", status="200"
    )


def _health_answered_by(server: Server) -> list[int]:
    """The pid of the worker that answered each GET /health, from the access lines."""
    return [
        line["pid"]
        for line in server.json_lines()
        if line["logger"] == "uvicorn.access" and line["path"] == "/health"
    ]


async def _health_burst(url: str, n: int) -> int:
    """n requests at once, each on a connection of its own, so the kernel spreads them."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=10) as http:
        answers = await asyncio.gather(*(http.get(f"{url}/health") for _ in range(n)))
    assert all(a.status_code == 200 for a in answers)
    return n


def test_serving_beyond_loopback_warns_of_plain_http_and_an_open_metrics(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from kiosk.server.asgi import TLSFiles, _say_how

    with caplog.at_level(logging.INFO, logger="kiosk.server"):
        _say_how(ServerSettings(host="10.20.0.5", data_dir=tmp_path), None)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w.split(":")[0] for w in warned] == [
        "KIOSK_ARGON2_FLOOR is set",  # the suite is a test rig (tests/__init__.py)
        "serving plain http on 10.20.0.5",
        "GET /metrics answers anyone who reaches 10.20.0.5",
    ]

    caplog.clear()
    guarded = ServerSettings(host="10.20.0.5", data_dir=tmp_path, metrics_token="t0k-4a9f")
    with caplog.at_level(logging.INFO, logger="kiosk.server"):
        _say_how(guarded, TLSFiles(tmp_path / "c.pem", tmp_path / "k.pem"))
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert [w.split(":")[0] for w in warned] == ["KIOSK_ARGON2_FLOOR is set"]
    assert "https://10.20.0.5:8600" in caplog.text
