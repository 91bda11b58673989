"""Fuzz the execution API with schemathesis, every check, on a throw-away copy of the demo plant.

    .venv/bin/python scripts/fuzz_api.py [--backend sqlite|postgresql] [--max-examples 300]
        [--seed N] [--phases examples,coverage,fuzzing,stateful] [--workers N]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
    KIOSK_FUZZ_TOKEN=<station token> [KIOSK_FUZZ_SERVICE_KEY=<service account key>] \
        .venv/bin/python scripts/fuzz_api.py --url http://HOST:PORT

Without --url it seeds a new demo plant (a SQLite file in a temporary directory, or a new
PostgreSQL database it drops afterwards), enrolls a station, serves the real app on a loopback
port and runs `schemathesis run --checks all` against its /openapi.json with that station's
token and an admin session of the demo admin (scripts/schemathesis.toml, scripts/fuzz_hooks.py).
schemathesis sends requests that change data, so never point --url at a plant that matters.

Prints schemathesis's own report (each failure with a curl reproducer), then a summary: requests
the server answered by status, test cases, failures by check. Exits 0 only with zero failures,
zero errors and zero 5xx answers. tests/test_schemathesis.py runs it short and seeded in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIG = ROOT / "scripts" / "schemathesis.toml"
HOOKS = ROOT / "scripts" / "fuzz_hooks.py"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PHASES = "examples,coverage,fuzzing,stateful"
DEMO_ADMIN = ("90001", "9999")  # kiosk/server/demo.py
INTEGRATION_OPERATIONS = """
[[operations]]
include-path-regex = "^/api/v1/(import|events|as-built/|assets/|deviations)"
headers = { Authorization = "Bearer ${KIOSK_FUZZ_SERVICE_KEY}" }

# An import document is deeply nested: each example costs far more to generate than another
# operation's, so fewer of them (the coverage phase still walks every field's edges).
[[operations]]
include-path = "/api/v1/import"
phases.fuzzing.generation.max-examples = 8
"""


@dataclass
class Outcome:
    exit_code: int
    report: dict[str, Any]
    served: Counter[int] = field(default_factory=Counter)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return list(self.report.get("failures", []))

    @property
    def errors(self) -> list[Any]:
        return list(self.report.get("errors", []))

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.served.items() if status >= 500)

    @property
    def passed(self) -> bool:
        return (
            self.exit_code == 0
            and bool(self.report)
            and not self.failures
            and not self.errors
            and self.server_errors == 0
        )


# --- schemathesis ------------------------------------------------------------------------------------


def run_schemathesis(
    url: str,
    token: str,
    *,
    max_examples: int,
    seed: int,
    phases: str = PHASES,
    workers: int = 1,
    max_time: int | None = None,
    service_key: str | None = None,
) -> Outcome:
    """`schemathesis run --checks all` against `url`, its output on our stdout; the parsed report."""
    env = {**os.environ, "KIOSK_FUZZ_TOKEN": token, "SCHEMATHESIS_HOOKS": str(HOOKS)}
    config = CONFIG.read_text()
    if service_key:
        # The integration routes take a service account key, not the station token.
        env["KIOSK_FUZZ_SERVICE_KEY"] = service_key
        config += INTEGRATION_OPERATIONS
    admin = admin_session(url, token)
    if admin is not None:
        # The admin routes answer 403 without an admin session: open one, so they are fuzzed too.
        env["KIOSK_FUZZ_ADMIN_SESSION"] = admin
        header = 'X-Admin-Session = "${KIOSK_FUZZ_ADMIN_SESSION}"\n'
        config = config.replace("[headers]\n", "[headers]\n" + header, 1)
    with tempfile.TemporaryDirectory(prefix="kiosk-fuzz-") as tmp:
        (Path(tmp) / "schemathesis.toml").write_text(config)
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            f"{tmp}/schemathesis.toml",
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            # "all" times every answer against 10 s unless told otherwise, and it cannot be
            # excluded: speed is the benchmarks' to measure (scripts/bench_*.py), and a loaded CI
            # machine must not fail a correct answer, so the limit is the request timeout's.
            "--max-response-time",
            "60",
            "--max-examples",
            str(max_examples),
            "--seed",
            str(seed),
            "--phases",
            phases,
            "--workers",
            str(workers),
            "--report",
            "json",
            "--report-json-path",
            f"{tmp}/report.json",
            "--no-color",
        ]
        if max_time is not None:
            command += ["--max-time", str(max_time)]
        # Tokens go through the environment (the config reads them there), never on argv.
        sys.stdout.flush()
        code = subprocess.run(command, env=env, cwd=tmp, check=False).returncode
        report_file = Path(tmp) / "report.json"
        report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return Outcome(code, report)


def admin_session(url: str, token: str) -> str | None:
    """An admin session of the demo plant's admin (Ada, badge 90001), or None where there is none."""
    import httpx

    try:
        answer = httpx.post(
            f"{url}/api/v1/admin/session",
            json={"badge": DEMO_ADMIN[0], "pin": DEMO_ADMIN[1]},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": secrets.token_hex(8)},
            timeout=30,
        )
        session = answer.json().get("token") if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        session = None
    if not isinstance(session, str):
        print("no admin session (not the demo plant?): the admin routes will answer 403")
        return None
    return session


def check_names(code: str) -> str:
    try:
        from schemathesis.failure_codes import get_failure_class
    except ImportError:
        return ""
    cls = get_failure_class(code)
    return ", ".join(cls.checks) if cls is not None and cls.checks else "custom check"


def summary(outcome: Outcome, *, backend: str, max_examples: int, seed: int) -> str:
    report = outcome.report
    cases = report.get("test_cases", {})
    operations = report.get("operations", {})
    lines = [
        "",
        "== fuzz_api summary ==",
        f"backend {backend}, schemathesis {report.get('schemathesis_version', '?')}, seed {seed}, "
        f"max {max_examples} examples per operation, "
        f"{operations.get('tested', '?')}/{operations.get('total', '?')} operations tested, "
        f"{report.get('running_time', 0):.1f} s",
    ]
    if outcome.served:
        total = sum(outcome.served.values())
        by_status = ", ".join(f"{s}: {n}" for s, n in sorted(outcome.served.items()))
        lines.append(f"requests served: {total} ({by_status})")
    lines.append(
        f"test cases: {cases.get('generated', 0)} generated, "
        f"{cases.get('with_failures', 0)} with failures, {cases.get('errored', 0)} errored"
    )
    failures = outcome.failures
    lines.append(f"failures: {sum(int(f.get('count', 0)) for f in failures)}")
    for failure in failures:
        code = str(failure.get("code", "?"))
        lines.append(
            f"  {code} {failure.get('title', '')} [{check_names(code)}]: {failure.get('count')}"
            f" in {', '.join(failure.get('operations', []))}"
        )
    lines.append(f"schemathesis errors: {len(outcome.errors)}")
    for error in outcome.errors:
        lines.append(f"  {json.dumps(error)[:300]}")
    if outcome.served:
        lines.append(f"server errors (5xx served): {outcome.server_errors}")
    if not report:
        lines.append(f"no report: schemathesis exited {outcome.exit_code} before writing one")
    lines.append("result: " + ("PASSED" if outcome.passed else "FAILED"))
    return "\n".join(lines)


# --- a throw-away plant and its server ------------------------------------------------------------------


@contextmanager
def throwaway_plant(backend: str, admin_url: str) -> Iterator[tuple[str, Path]]:
    """(database URL, plant secret file) of a new, empty database, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="kiosk-fuzz-plant-") as tmp:
        secret = Path(tmp) / "plant-secret"
        if backend == "sqlite":
            yield f"sqlite:///{tmp}/plant.db", secret
            return
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        from kiosk.server.store import normalize_url

        admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
        name = f"kiosk_fuzz_{secrets.token_hex(5)}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(normalize_url(admin_url)).set(database=name)
            yield url.render_as_string(hide_password=False), secret
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


class CountStatuses:
    """ASGI wrapper: how many answers of each status the server sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.served: Counter[int] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counting(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.served[int(message["status"])] += 1
            await send(message)

        await self.app(scope, receive, counting)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def integration_key(svc: Any) -> str:
    """A service account with every scope, for the integration routes."""
    from datetime import UTC, datetime

    from kiosk.server import integration
    from kiosk.wire import Scope

    return integration.add_account(svc.store, svc.secret, "FUZZ", list(Scope), datetime.now(UTC))


def fuzz_new_plant(args: argparse.Namespace) -> Outcome:
    from kiosk.server import demo
    from kiosk.server.app import ServerConfig, create_app, open_service

    with throwaway_plant(args.backend, args.database_url) as (database_url, secret):
        print(f"seeding a throw-away demo plant on {args.backend} ...", flush=True)
        svc = open_service(ServerConfig(database_url, secret, demo=True))
        try:
            token = svc.local_station_token(demo.DEMO_STATION, demo.WORK_CENTER)
            service_key = integration_key(svc)
            app = CountStatuses(create_app(svc))
            with serving(app) as url:
                outcome = run_schemathesis(
                    url,
                    token,
                    max_examples=args.max_examples,
                    seed=args.seed,
                    phases=args.phases,
                    workers=args.workers,
                    max_time=args.max_time,
                    service_key=service_key,
                )
            outcome.served = app.served
        finally:
            svc.store.dispose()
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("KIOSK_TEST_DATABASE_URL", PG_ADMIN_URL),
        help="PostgreSQL server to create the throw-away database on (--backend postgresql)",
    )
    parser.add_argument("--url", help="fuzz this running server instead (token: KIOSK_FUZZ_TOKEN)")
    parser.add_argument("--max-examples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--phases", default=PHASES)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-time", type=int, default=None, help="seconds for the whole run")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(2**31)
    if args.url:
        token = os.environ.get("KIOSK_FUZZ_TOKEN")
        if not token:
            parser.error("--url needs the station token in KIOSK_FUZZ_TOKEN")
        outcome = run_schemathesis(
            args.url.rstrip("/"),
            token,
            max_examples=args.max_examples,
            seed=args.seed,
            phases=args.phases,
            workers=args.workers,
            max_time=args.max_time,
            service_key=os.environ.get("KIOSK_FUZZ_SERVICE_KEY"),
        )
        backend = f"server at {args.url}"
    else:
        outcome = fuzz_new_plant(args)
        backend = args.backend
    print(summary(outcome, backend=backend, max_examples=args.max_examples, seed=args.seed))
    return 0 if outcome.passed else 1


if __name__ == "__main__":
    sys.exit(main())
