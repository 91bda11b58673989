"""schemathesis, every check, against the real server's /openapi.json, on SQLite and PostgreSQL:
zero server errors, zero schema violations, zero failures of any check.

A short run with a fixed seed, so CI is quick and a failure is reproducible; the longer run is
`.venv/bin/python scripts/fuzz_api.py --backend sqlite|postgresql --max-examples 300`.

Each phase runs once, on the store where it finds most. The coverage phase walks every field's
edges (overlong strings, NUL bytes, huge numbers, odd dates), where the two stores differ: it runs
on PostgreSQL, which refuses what SQLite takes. Random fuzzing and the stateful phase exercise the
same routes and rules on either store: they run on SQLite. Both get the explicit examples. With no
PostgreSQL to test on, SQLite gets every phase.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kiosk.server import integration
from kiosk.wire import Scope
from tests.conftest import PG_URL

if TYPE_CHECKING:
    from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "fuzz_api.py"
SEED = 20261201
MAX_EXAMPLES = 12
PHASES = {"sqlite": "examples,fuzzing,stateful", "postgresql": "examples,coverage"}
if PG_URL is None:
    PHASES["sqlite"] = "examples,coverage,fuzzing,stateful"


@pytest.mark.slow
def test_schemathesis_finds_nothing(live_server: LiveServer) -> None:
    env = {**os.environ, "KIOSK_FUZZ_TOKEN": live_server.token("FUZZ-01")}
    svc = live_server.service  # and a service account for the integration routes
    key = integration.add_account(svc.store, svc.secret, "FUZZ", list(Scope), datetime.now(UTC))
    env["KIOSK_FUZZ_SERVICE_KEY"] = key
    command = [sys.executable, str(SCRIPT), "--url", live_server.url]
    command += ["--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED)]
    command += ["--phases", PHASES[svc.store.dialect]]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=280)
    out = run.stdout + run.stderr
    assert "== fuzz_api summary ==" in out, out[-5000:]
    summary = out[out.index("== fuzz_api summary ==") :]
    # What failed, each with its curl reproducer, then the counts.
    found = out[out.find("FAILURES") :] if "FAILURES" in out else summary
    assert run.returncode == 0 and "result: PASSED" in summary, found[:20000]
    assert "failures: 0" in summary and "schemathesis errors: 0" in summary, summary
