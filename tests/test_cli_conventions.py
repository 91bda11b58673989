"""Console and CLI conventions, through the real `kiosk` command: `-` is standard output, listings
speak JSON with `--json`, `--help` documents the exit codes, a missing optional driver and a
missing terminal are one line each, never a traceback or a screen drawn into a file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.client.station_db import open_outbox
from kiosk.wire import Person, Role, StartStep

pytestmark = pytest.mark.slow  # the real command, as a child process

ROOT = Path(__file__).resolve().parent.parent
SESSION = "sess-7f3a9c1e-never-printed"


def kiosk(
    *args: str, cwd: Path, stdin: int | None = subprocess.DEVNULL, python: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[bytes]:
    env = {
        **os.environ,
        "KIOSK_DATA_DIR": str(cwd),
        "KIOSK_CONFIG_FILE": str(cwd / "none.toml"),
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, *python] if python else [sys.executable, "-m", "kiosk"]
    return subprocess.run(
        [*command, *args], cwd=cwd, env=env, stdin=stdin, capture_output=True, timeout=120
    )


def one_line_error(done: subprocess.CompletedProcess[bytes]) -> str:
    err = done.stderr.decode()
    assert done.returncode != 0
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()


def test_label_output_dash_is_standard_output_not_a_file_named_dash(tmp_path: Path) -> None:
    done = kiosk("label", "traveler", "TRV-1001", "--output", "-", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"<?xml") and b"<svg" in done.stdout
    assert done.stderr == b""
    assert list(tmp_path.iterdir()) == []  # nothing written: no `-`, no TRV-1001.svg

    zpl = kiosk("label", "lot", "LOT-A100", "--format", "zpl", "--output", "-", cwd=tmp_path)
    assert zpl.stdout.startswith(b"^XA") and zpl.stdout.rstrip().endswith(b"^XZ")

    named = kiosk("label", "tool", "TL-0001", "--output", "tl.svg", cwd=tmp_path)
    assert named.stdout == b"wrote tl.svg: Code 128 'TL-0001' (tool)\n"
    assert (tmp_path / "tl.svg").read_bytes().startswith(b"<?xml")


def test_outbox_json_lists_what_the_text_lists_and_never_a_session(tmp_path: Path) -> None:
    ana = Person(id=1, name="Ana Ortiz", roles=(Role.OPERATOR,))
    outbox = open_outbox(tmp_path)
    for step in (11, 12):
        start = StartStep(actor_id=1, traveler="TRV-1001", step_id=step, session=SESSION)
        outbox.record(start, ana)
    refused = outbox.record(
        StartStep(actor_id=1, traveler="TRV-1003", step_id=31, session=SESSION), ana
    )
    outbox.mark_refused(refused.key, "traveler_on_hold", "TRV-1003 is on hold")
    outbox.db.close()

    listed = kiosk("outbox", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert SESSION.encode() not in listed.stdout
    report = json.loads(listed.stdout)
    assert {k: report[k] for k in ("waiting", "refused", "applied", "resolved", "last_sync")} == {
        "waiting": 2,
        "refused": 1,
        "applied": 0,
        "resolved": 0,
        "last_sync": None,
    }
    assert [
        (e["seq"], e["state"], e["traveler"], e["kind"], e["by"]) for e in report["entries"]
    ] == [
        (1, "waiting", "TRV-1001", "start_step", "Ana Ortiz"),
        (2, "waiting", "TRV-1001", "start_step", "Ana Ortiz"),
        (3, "refused", "TRV-1003", "start_step", "Ana Ortiz"),
    ]
    assert (report["entries"][2]["rule"], report["entries"][2]["message"]) == (
        "traveler_on_hold",
        "TRV-1003 is on hold",
    )

    text = kiosk("outbox", cwd=tmp_path).stdout.decode()
    assert "waiting: 2   refused: 1   applied: 0" in text
    assert "#3 TRV-1003 start step by Ana Ortiz: TRV-1003 is on hold [traveler_on_hold]" in text


@pytest.mark.parametrize(
    "command",
    [(), ("export", "as-built"), ("label",), ("outbox",), ("outbox", "sync"), ("audit", "verify")],
    ids=lambda c: " ".join(c) or "kiosk",
)
def test_help_documents_the_exit_codes(command: tuple[str, ...], tmp_path: Path) -> None:
    done = kiosk(*command, "--help", cwd=tmp_path)
    assert done.returncode == 0
    text = done.stdout.decode()
    assert "exit codes:" in text
    for code in ("0 ", "1 ", "2 ", "3 ", "124 ", "130 "):
        assert f"\n  {code}" in text, code


BLOCK_PSYCOPG = (
    "-c",
    # What an install without the postgres extra looks like to Python: no psycopg to import.
    "import sys; sys.modules['psycopg'] = sys.modules['psycopg2'] = None; "
    "from kiosk.cli import main; sys.exit(main(sys.argv[1:]))",
)


@pytest.mark.parametrize(
    "command",
    [("serve", "--port", "1"), ("export", "as-built", "TRV-1001"), ("audit", "verify")],
    ids=lambda c: c[0],
)
def test_postgresql_without_its_driver_names_the_extra(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    url = "postgresql://kiosk@127.0.0.1:1/plant"
    done = kiosk(*command, "--database-url", url, cwd=tmp_path, python=BLOCK_PSYCOPG)
    assert one_line_error(done) == (
        "error: PostgreSQL needs the postgres extra: pip install 'station-kiosk[postgres]'"
    )
    assert done.returncode == 3 and done.stdout == b""


def test_the_station_without_a_terminal_says_so_and_draws_nothing(tmp_path: Path) -> None:
    """`kiosk </dev/null >file`: no escape sequences in the file, no embedded server started."""
    done = kiosk(cwd=tmp_path)
    assert one_line_error(done).startswith(
        "error: the station needs a terminal, but standard input and output are not terminals"
    )
    assert done.returncode == 3
    assert done.stdout == b""
    assert not (tmp_path / "plant.db").exists()

    admin = kiosk("admin", cwd=tmp_path)
    assert one_line_error(admin).startswith("error: the admin console needs a terminal")
    assert admin.stdout == b""
