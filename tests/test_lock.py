"""Identical installs: the locks under kiosk/locks/ are in step with pyproject.toml (every package
pinned, with its hashes, one version across all locks); the project installs with no package index;
stations report the hash of their lock and the admin console names any station on another lock.

The full offline install (every locked wheel downloaded into a wheelhouse, then installed into a
fresh venv with no index and no network) takes about a minute, too long for every CI run: it runs
when KIOSK_TEST_WHEELHOUSE is set, to 1 (download a wheelhouse) or to a wheelhouse directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sqlalchemy import select

from kiosk.admin import AdminApp
from kiosk.client import ExecutionClient
from kiosk.locks import STATION_LOCK, lock_hash
from kiosk.server import schema as t
from kiosk.server.fleet import reference_lock
from kiosk.wire import Credentials
from tests.conftest import LiveServer
from tests.helpers import raw_http
from tests.station import running, settle
from tests.test_admin_console import NOW, report, sign_in, table_text
from tests.test_fleet_api import beat

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "kiosk" / "locks"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Which extra each lock adds to the station's dependencies.
SETS = {"station": None, "postgres": "postgres", "test": "test"}
OTHER = "0" * 64  # a lock no real station has


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: tuple[str, ...]


def read_lock(name: str) -> dict[str, Pin]:
    """name -> pin, from the requirements format uv writes (a line per package, then hashes)."""
    text = (LOCKS / f"{name}.txt").read_text()
    pins: dict[str, Pin] = {}
    for block in re.split(r"\n(?=\S)", text):
        head = block.split("\n", 1)[0]
        if head.startswith("#") or not head.strip():
            continue
        found = re.match(r"^([A-Za-z0-9._-]+)==(\S+) \\$", head)
        assert found, f"{name}.txt: not an exact pin: {head!r}"
        pins[canonicalize_name(found[1])] = Pin(
            found[2], tuple(re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
        )
    return pins


def requirements(lock: str) -> list[Requirement]:
    extra = SETS[lock]
    project = PYPROJECT["project"]
    listed = [*project["dependencies"], *(project["optional-dependencies"][extra] if extra else [])]
    # The build tools too: the project is built with the locked ones (--no-build-isolation).
    return [Requirement(r) for r in [*listed, *PYPROJECT["build-system"]["requires"], "pip"]]


@pytest.mark.parametrize("lock", list(SETS))
def test_every_dependency_in_pyproject_is_locked_with_its_hashes(lock: str) -> None:
    pins = read_lock(lock)
    for req in requirements(lock):
        pin = pins.get(canonicalize_name(req.name))
        assert pin is not None, f"{req.name} is not in {lock}.txt: run scripts/lock.sh"
        assert req.specifier.contains(pin.version, prereleases=True), (
            f"{lock}.txt pins {req.name}=={pin.version}, pyproject.toml asks {req}: run scripts/lock.sh"
        )
    unhashed = [name for name, pin in pins.items() if not pin.hashes]
    assert unhashed == [], f"{lock}.txt: no hash for {unhashed}"


@pytest.mark.parametrize("lock", ["postgres", "test"])
def test_a_package_has_the_same_version_in_every_lock(lock: str) -> None:
    station, other = read_lock("station"), read_lock(lock)
    # The station's hash names the station's packages wherever they are installed.
    differ = {n: (p.version, other[n].version) for n, p in station.items() if other.get(n) != p}
    assert differ == {}, f"station.txt and {lock}.txt disagree: {differ}"


def closure(roots: Iterable[Requirement]) -> set[str]:
    """Every distribution the roots need, per the metadata of what is installed here."""
    seen: set[str] = set()
    todo = [(r, tuple(sorted(r.extras))) for r in roots]
    while todo:
        req, extras = todo.pop()
        if req.marker is not None and not any(
            req.marker.evaluate({"extra": e}) for e in (extras or ("",))
        ):
            continue
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            needs = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue  # not installed here: the pin check above still covers it
        todo += [(Requirement(r), tuple(sorted(req.extras))) for r in needs]
    return {k.split("[")[0] for k in seen}


def test_the_test_lock_holds_everything_its_packages_need() -> None:
    # A package missing from a lock fails `pip install --require-hashes`; this says which, early.
    missing = closure(requirements("test")) - set(read_lock("test"))
    assert missing == set(), f"needed but not in test.txt: {missing}: run scripts/lock.sh"


def test_the_lock_hash_is_the_hash_of_the_station_lock() -> None:
    assert lock_hash() == hashlib.sha256((LOCKS / "station.txt").read_bytes()).hexdigest()
    assert lock_hash(LOCKS / "no-such.txt") is None  # a copy of the code without its data


# --- the wheelhouse and the installs --------------------------------------------------------------


def run_script(
    script: str, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


def test_build_wheelhouse_dry_run_downloads_the_locked_files(tmp_path: Path) -> None:
    done = run_script("build-wheelhouse.sh", "--dry-run", str(tmp_path / "wh"))
    assert done.returncode == 0, done.stderr
    assert "pip download --quiet --require-hashes" in done.stdout
    assert done.stdout.rstrip().endswith(f"--dest {tmp_path}/wh -r {LOCKS}/station.txt")
    assert not (tmp_path / "wh").exists()
    server = run_script("build-wheelhouse.sh", "--dry-run", "--with-server", str(tmp_path))
    assert server.stdout.rstrip().endswith(f"-r {LOCKS}/postgres.txt")
    other = run_script(
        "build-wheelhouse.sh", "--dry-run", "--platform", "manylinux_2_28_aarch64", "x"
    )
    assert (
        "--platform manylinux_2_28_aarch64 --python-version 3.11 --implementation cp"
        in other.stdout
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "name the directory to fill"),
        (["a", "b"], "one directory only"),
        (["--frobnicate", "a"], "unknown argument: --frobnicate"),
    ],
)
def test_build_wheelhouse_refuses_bad_arguments(args: list[str], message: str) -> None:
    done = run_script("build-wheelhouse.sh", "--dry-run", *args)
    assert (done.returncode, done.stdout) == (2, "") and message in done.stderr


def fake_repo(tmp_path: Path, files: dict[str, bytes]) -> tuple[Path, Path]:
    """A copy of the install script beside a lock of `files` (name -> content), and a
    wheelhouse holding them: install-station.sh reads the lock next to itself."""
    repo, wheelhouse = tmp_path / "repo", tmp_path / "wheelhouse"
    shutil.copytree(ROOT / "scripts", repo / "scripts")
    (repo / "kiosk" / "locks").mkdir(parents=True)
    wheelhouse.mkdir()
    lines = []
    for name, content in files.items():
        (wheelhouse / f"{name}-1.0-py3-none-any.whl").write_bytes(content)
        lines.append(f"{name}==1.0 \\\n    --hash=sha256:{hashlib.sha256(content).hexdigest()}")
    for lock in ("station", "postgres"):
        (repo / "kiosk" / "locks" / f"{lock}.txt").write_text("\n".join(lines) + "\n")
    return repo, wheelhouse


def install_plan(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(repo / "scripts" / "install-station.sh"), "--dry-run", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_a_wheelhouse_install_uses_no_index(tmp_path: Path) -> None:
    repo, wheelhouse = fake_repo(tmp_path, {"alpha": b"a", "beta": b"b"})
    done = install_plan(repo, "--prefix", "/opt/k", "--wheelhouse", str(wheelhouse))
    assert done.returncode == 0, done.stderr
    source = f"--no-index --find-links {wheelhouse}"
    lock = f"{repo}/kiosk/locks/station.txt"
    assert f"+ /opt/k/venv/bin/pip install {source} --require-hashes -r {lock}\n" in done.stdout
    assert f"+ /opt/k/venv/bin/pip install {source} --no-deps --no-build-isolation" in done.stdout
    server = install_plan(repo, "--with-server", "--wheelhouse", str(wheelhouse))
    assert f"--require-hashes -r {repo}/kiosk/locks/postgres.txt\n" in server.stdout


def test_a_wheelhouse_missing_a_locked_file_stops_before_anything(tmp_path: Path) -> None:
    repo, wheelhouse = fake_repo(tmp_path, {"alpha": b"a", "beta": b"b"})
    (wheelhouse / "beta-1.0-py3-none-any.whl").write_bytes(b"tampered")  # its hash no longer fits
    for args, build in (([], ""), (["--with-server"], " --with-server")):
        done = install_plan(repo, *args, "--wheelhouse", str(wheelhouse))
        assert (done.returncode, done.stdout) == (2, "")
        assert f"the wheelhouse {wheelhouse} has no file for: beta==1.0 (nothing" in done.stderr
        assert f"fill it with scripts/build-wheelhouse.sh{build} {wheelhouse})" in done.stderr
    missing = install_plan(repo, "--wheelhouse", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "--wheelhouse: no such directory" in missing.stderr


def offline(cmd: list[str]) -> list[str]:
    """`cmd` with no network at all where this machine can say so (a new network namespace)."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "--net", "true"], check=False).returncode == 0:
        return [unshare, "--net", *cmd]
    return cmd


def copy_of_the_project(tmp_path: Path) -> Path:
    """The project's files, without the checkout's build leftovers (and so the build writes
    nothing into the checkout)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "kiosk", src / "kiosk", ignore=shutil.ignore_patterns("__pycache__"))
    return src


def test_the_project_installs_with_no_index_and_carries_its_lock(tmp_path: Path) -> None:
    # A fresh venv whose dependencies are this (locked) environment's, read through a .pth:
    # the project itself must then build and install with no index, no network, no build deps
    # fetched, and bring its lock as package data.
    locked = read_lock("test")["setuptools"].version
    assert metadata.version("setuptools") == locked, "not the locked venv: ./dev installs it"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "locked-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    done = subprocess.run(
        offline([*pip, "--no-index", "--no-deps", "--no-build-isolation", "--ignore-installed",
                 str(copy_of_the_project(tmp_path))]),
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = subprocess.run(
        [python, "-c", "import kiosk.locks as k; print(k.STATION_LOCK); print(k.lock_hash())"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout.split()  # fmt: skip
    assert shown == [f"{site}/kiosk/locks/station.txt", lock_hash()]
    version = subprocess.run(
        [venv / "bin" / "kiosk", "--version"], capture_output=True, text=True, check=False
    )
    assert version.returncode == 0 and "0.1.0" in version.stdout


@pytest.mark.skipif(
    not os.environ.get("KIOSK_TEST_WHEELHOUSE"), reason="set KIOSK_TEST_WHEELHOUSE=1 or =DIR"
)
def test_a_station_installs_from_a_wheelhouse_with_no_index(tmp_path: Path) -> None:
    given = os.environ["KIOSK_TEST_WHEELHOUSE"]
    wheelhouse = Path(given) if given != "1" else tmp_path / "wheelhouse"
    if given == "1":
        built = run_script("build-wheelhouse.sh", str(wheelhouse))
        assert built.returncode == 0, built.stderr
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [
        str(venv / "bin" / "pip"),
        "install",
        "--quiet",
        "--no-index",
        "--find-links",
        str(wheelhouse),
    ]
    for args in (
        ["--require-hashes", "-r", str(STATION_LOCK)],
        ["--no-deps", "--no-build-isolation", str(copy_of_the_project(tmp_path))],
    ):
        done = subprocess.run(
            offline([*pip, *args]), capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, done.stderr
    checked = subprocess.run([venv / "bin" / "pip", "check"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout
    version = subprocess.run([venv / "bin" / "kiosk", "--version"], capture_output=True, text=True)
    assert version.returncode == 0, version.stderr


# --- the fleet: heartbeat, server, console ---------------------------------------------------------


async def test_a_station_reports_its_lock_and_the_server_keeps_it(
    live_server: LiveServer, tmp_path: Path
) -> None:
    svc = live_server.service
    token = live_server.token()
    async with running(live_server.url, token, tmp_path) as pilot:
        pilot.app.send_heartbeat()
        await settle(pilot)
    station = svc.authenticate(token)
    admin = svc.admin_session(station, Credentials(badge="90001", pin="9999")).token
    (status,) = [s for s in svc.overview(station, admin).stations if s.name == "DEMO-01"]
    assert status.heartbeat is not None and status.heartbeat.lock_hash == lock_hash()
    assert status.drift == () and not status.other_lock
    with svc.store.begin() as conn:
        stored = conn.execute(
            select(t.stations.c.lock_hash).where(t.stations.c.name == "DEMO-01")
        ).scalar_one()
    assert stored == lock_hash()


async def test_the_overview_names_a_station_on_another_lock(live_server: LiveServer) -> None:
    svc = live_server.service
    tokens = {n: svc.local_station_token(n, "ASSEMBLY") for n in ("ST-SAME", "ST-OTHER", "ST-OLD")}
    for name, lock in (("ST-SAME", lock_hash()), ("ST-OTHER", OTHER), ("ST-OLD", None)):
        async with ExecutionClient(live_server.url, tokens[name]) as client:
            await client.heartbeat(beat(lock_hash=lock))
    async with ExecutionClient(live_server.url, tokens["ST-SAME"]) as admin:
        session = await admin.admin_session(Credentials(badge="90001", pin="9999"))
        overview = await admin.overview(session.token)
    by_name = {s.name: s for s in overview.stations}
    plant = lock_hash()
    assert plant is not None
    assert by_name["ST-OTHER"].drift == (f"lock {OTHER[:12]} (plant {plant[:12]})",)
    assert by_name["ST-OTHER"].other_lock
    # The same lock, or a station of a release before locks (its app version tells): no flag.
    for same in ("ST-SAME", "ST-OLD"):
        assert by_name[same].drift == () and not by_name[same].other_lock


async def test_a_malformed_lock_hash_is_refused_and_changes_nothing(
    live_server: LiveServer,
) -> None:
    svc = live_server.service
    token = svc.local_station_token("ST-BAD", "ASSEMBLY")
    body = beat().model_dump(mode="json")
    async with raw_http(live_server.url, token) as http:
        for bad in ("abc", "F" * 64, OTHER + "0", 7):
            answer = await http.post("/api/v1/heartbeat", json={**body, "lock_hash": bad})
            assert answer.status_code == 422 and "lock_hash" in answer.text
    with svc.store.begin() as conn:
        row = conn.execute(select(t.stations).where(t.stations.c.name == "ST-BAD")).one()
        beats = conn.execute(select(t.heartbeats).where(t.heartbeats.c.station_id == row.id))
        assert row.lock_hash is None and beats.all() == []


def test_without_its_own_lock_the_server_goes_by_the_majority() -> None:
    a, b = "a" * 64, "b" * 64
    assert reference_lock(a, [b, b, b]) == (a, "plant")  # the server's own lock wins
    assert reference_lock(None, [a, a, b]) == (a, "most stations")
    assert reference_lock(None, [a, a, b, b]) is None  # half is not a majority: nothing flagged
    assert reference_lock(None, [a, None, None]) == (a, "most stations")  # unreported ones abstain
    assert reference_lock(None, [None]) is None


async def test_the_console_flags_a_station_on_another_lock_in_words(
    live_server: LiveServer,
) -> None:
    svc = live_server.service
    report(svc, "ST-01", NOW - timedelta(seconds=20), lock_hash=lock_hash())
    report(svc, "ST-09", NOW - timedelta(seconds=10), lock_hash=OTHER)
    svc.clock = lambda: NOW
    app = AdminApp(
        ExecutionClient(live_server.url, svc.local_station_token("ADMIN-PC", "ASSEMBLY"))
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await sign_in(pilot)
        stations = table_text(app, "stations")
        plant = lock_hash()
        assert plant is not None
        assert "ST-01 | ASSEMBLY | ✔ ok" in stations
        assert f"ST-09 | ASSEMBLY | ! DRIFT: lock {OTHER[:12]} (plant {plant[:12]})" in stations
        heading = str(app.screen.query_one("#admin-heading").render())
        assert "need attention (1 on another lock) ·" in heading
