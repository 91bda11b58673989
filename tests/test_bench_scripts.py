"""Every benchmark under scripts/ still runs: briefly, with tiny parameters, to exit 0 and its
summary line. No figure is asserted (CI machines are noisy); only that the script works."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow

PG_URL = os.environ.get("KIOSK_TEST_DATABASE_URL")
PLANT_LINE = re.compile(
    r"^plant: capacity \d+ values/s, baseline \d+ req/s, ratio \d+\.\d\d; "
    r"at \d+/s offered p50 \d+\.\d ms, p99 \d+\.\d ms$"
)
# The kiosk's deliveries at the offered load as its own /metrics histogram timed them.
SERVER_CLOCK_LINE = re.compile(
    r"^  kiosk, by its own clock \(kiosk_http_request_duration_seconds\): "
    r"\d+\.\d % within 25 ms, \d+\.\d % within 50 ms \([1-9]\d* deliveries\)$"
)
TINY_PLANT = [
    "--stations", "3", "--seconds", "1", "--rounds", "1", "--warmup", "0.3", "--drain", "1",
    "--rate", "5",
]  # fmt: skip


def run_script(name: str, *args: str, timeout: float = 240) -> list[str]:
    """Run scripts/`name` with `args`; its output lines, after asserting it exited 0."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    lines = done.stdout.strip().splitlines()
    assert lines, f"{name} printed nothing:\n{done.stderr}"
    return lines


def refusals(lines: list[str]) -> list[str]:
    """Error lines other than values still waiting when a phase ended (a slow machine's)."""
    return [line for line in lines if line.startswith("errors:") and "unanswered" not in line]


def options(name: str) -> str:
    """What `scripts/name --help` offers (the scripts grow options; the test uses what is there)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_bench_drain_delivers_everything() -> None:
    small = ["--prefill", "200"] if "--prefill" in options("bench_drain.py") else []
    lines = run_script("bench_drain.py", "--actions", "200", *small)
    assert any(line.startswith("drain 200 actions to the server:") for line in lines), lines
    assert lines[-1].startswith("target: 200 "), lines


def test_bench_answer_prints_both_ways_and_their_ratio() -> None:
    lines = run_script("bench_answer.py", "--pairs", "2")
    assert re.match(
        r"^record -> answer on TRV-2000 \(2 pairs, medians\): now \d+\.\d ms, baseline "
        r"\(poll the outbox, fetch again\) \d+\.\d ms, ratio \d+\.\d\d$",
        lines[-1],
    ), lines


def test_bench_kdf_prints_the_cost_of_a_guess() -> None:
    lines = run_script("bench_kdf.py", "--rounds", "2")
    assert lines[0].startswith("argon2id m="), lines
    assert re.match(r"^  1,000,000 six-digit PINs +\d+\.\d h$", lines[-1]), lines


def test_bench_startup_paints_every_screen() -> None:
    lines = run_script("bench_startup.py", "--runs", "1")
    for case in ("enrolled station, cryptfile", "station, token handed in", "embedded demo"):
        assert any(line.startswith(case) for line in lines), lines
    assert re.match(
        r"^target, enrolled cryptfile station .*: time \d+\.\d\dx .*, RSS \d+\.\d\dx ", lines[-1]
    ), lines


def test_bench_interaction_echoes_every_key() -> None:
    lines = run_script("bench_interaction.py", "--keys", "10", "--only", "echo")
    assert lines[0].startswith("key -> echo, 10 interleaved pairs"), lines
    assert re.match(r"^p95 station / p95 minimal: \d+\.\d\dx ", lines[-1]), lines


def test_bench_interaction_scans_and_queues() -> None:
    lines = run_script(
        "bench_interaction.py", "--only", "scan,queue", "--scans", "1", "--queues", "1",
        "--queue-of", "10,300", timeout=400,
    )  # fmt: skip
    assert lines[0].startswith("scan -> traveler painted, 1 rounds"), lines
    verdict = r"\): (met|NOT met)$"
    for goal in (
        r"scan -> TRV-1001 p95 \d+\.\d ms \(goal <= 100 ms",
        r"scan -> TRV-2000 p95 \d+\.\d ms \(goal <= 100 ms",
        r"scan -> traveler p95 TRV-5000 / TRV-2000: \d+\.\d\dx \(goal <= 2x",
        r"queue p95 300 / 10 travelers: \d+\.\d\dx \(goal <= 2x",
    ):
        assert any(re.match(goal + verdict, line) for line in lines), (goal, lines)


def test_bench_board_reads_a_busy_floor() -> None:
    lines = run_script("bench_board.py", "--stations", "3", "--pairs", "5")
    assert lines[0] == "board benchmark: 3 stations, 3 people on steps, 5 pairs"
    assert re.match(r"^board: read p50 \d+\.\d ms, baseline .* ratio \d+\.\d\d; ", lines[1]), lines


def test_bench_plant_on_sqlite() -> None:
    lines = run_script("bench_plant.py", *TINY_PLANT)
    assert PLANT_LINE.match(lines[-1]), lines
    assert any(line.startswith("  kiosk, all stations on one traveler") for line in lines), lines
    assert any(SERVER_CLOCK_LINE.match(line) for line in lines), lines
    assert not refusals(lines), lines


@pytest.mark.postgres
@pytest.mark.skipif(PG_URL is None, reason="KIOSK_TEST_DATABASE_URL is not set")
def test_bench_plant_on_postgresql_with_two_workers() -> None:
    assert PG_URL is not None
    lines = run_script(
        "bench_plant.py", *TINY_PLANT, "--database-url", PG_URL, "--workers", "2", "--clients", "2"
    )
    assert PLANT_LINE.match(lines[-1]), lines
    assert lines[0].startswith("plant benchmark: 3 stations, PostgreSQL kiosk_bench_"), lines
    assert not refusals(lines), lines
