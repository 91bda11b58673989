"""The house rules on imports (DESIGN.md): the station reaches the backend only through
`kiosk.client`, and the server never loads Textual.

Checked twice: by importing in a fresh interpreter and looking at `sys.modules` (catches imports
made by anything imported), and by reading the import statements of the station's own files
(catches imports hidden inside functions, which run only when that code path does).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KIOSK = ROOT / "kiosk"

STATION_SOURCES = [
    KIOSK / "app.py",
    *sorted((KIOSK / "screens").rglob("*.py")),
    *sorted((KIOSK / "widgets").rglob("*.py")),
    *sorted((KIOSK / "client").rglob("*.py")),
]


def modules_after_import(*modules: str) -> list[str]:
    """Names in `sys.modules` after importing `modules` in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def under(loaded: list[str], package: str) -> list[str]:
    return [m for m in loaded if m == package or m.startswith(package + ".")]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(path: Path) -> list[str]:
    """Every module an import statement in `path` names, anywhere in the file, made absolute."""
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    return imported_names_in(path.read_text(), package, filename=str(path))


def imported_names_in(source: str, package: str, *, filename: str = "<source>") -> list[str]:
    """The same for `source` as a module of `package` (relative imports resolve against it)."""
    tree = ast.parse(source, filename=filename)
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.append(module)
            # `from kiosk import server` imports kiosk.server as well.
            names.extend(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and (dynamic := dynamic_import(node)) is not None:
            names.append(dynamic)
    return names


def dynamic_import(call: ast.Call) -> str | None:
    """The module of `__import__("x")` or `importlib.import_module("x")`, if `call` is one."""
    func = call.func
    called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    if called not in ("__import__", "import_module") or not call.args:
        return None
    first = call.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def names_server(name: str) -> bool:
    return name == "kiosk.server" or name.startswith("kiosk.server.")


def test_the_station_app_loads_nothing_of_the_server() -> None:
    from kiosk.app import BEHIND_THE_BADGE_SCREEN  # what it loads after its first frame

    loaded = modules_after_import("kiosk.app", *BEHIND_THE_BADGE_SCREEN)
    assert "kiosk.app" in loaded and "kiosk.screens.traveler" in loaded
    assert under(loaded, "kiosk.server") == []


def test_the_badge_screen_paints_before_pydantic_loads() -> None:
    """What runs before the first frame (the command, the settings, the lifecycle guard, the
    app and its badge screen) loads no pydantic: its import is a quarter of a minimal Textual
    app's start. The wire models load after the first frame."""
    loaded = modules_after_import(
        "kiosk.cli", "kiosk.config", "kiosk.station", "kiosk.app", "kiosk.driver"
    )
    assert "kiosk.screens.badge" in loaded
    assert under(loaded, "pydantic") == []


def test_the_client_loads_no_textual() -> None:
    """`kiosk.client` is plain Python + HTTP: usable by the CLI and tests without a terminal."""
    loaded = modules_after_import("kiosk.client")
    assert under(loaded, "textual") == []
    assert under(loaded, "kiosk.server") == []


def test_the_server_loads_no_textual() -> None:
    loaded = modules_after_import("kiosk.server.app", "kiosk.server.asgi")
    assert "kiosk.server.asgi" in loaded
    assert under(loaded, "textual") == []


def test_the_station_sources_are_found() -> None:
    names = {p.relative_to(KIOSK).as_posix() for p in STATION_SOURCES}
    assert {"app.py", "screens/traveler.py", "widgets/step_list.py", "client/api.py"} <= names


@pytest.mark.parametrize("path", STATION_SOURCES, ids=lambda p: p.relative_to(KIOSK).as_posix())
def test_station_source_never_imports_the_server(path: Path) -> None:
    offending = [name for name in imported_names(path) if names_server(name)]
    assert offending == [], f"{path.relative_to(ROOT)} imports {offending}"


def test_the_scan_sees_hidden_relative_and_dynamic_imports() -> None:
    """The static check itself: imports inside functions, relative and dynamic ones count."""
    source = (
        "def later():\n"
        "    from ..server import store\n"
        "    import kiosk.server.app\n"
        "    __import__('kiosk.server.demo')\n"
        "from kiosk import server\n"
        "from . import step_list\n"
    )
    names = set(imported_names_in(source, "kiosk.widgets"))
    assert {"kiosk.server.store", "kiosk.server.app", "kiosk.server.demo", "kiosk.server"} <= names
    assert "kiosk.widgets.step_list" in names


def test_the_pdf_library_loads_only_when_a_pdf_is_made() -> None:
    """fpdf2 (and its fontTools) costs start-up time: neither the station nor the server loads
    it until an as-built PDF is asked for (`kiosk export … --format pdf`, `GET …/as-built.pdf`)."""
    loaded = modules_after_import(
        "kiosk.cli",
        "kiosk.app",
        "kiosk.station",
        "kiosk.server.app",
        "kiosk.server.asgi",
        "kiosk.server.api",
        "kiosk.server.printable",
    )
    assert "kiosk.server.api" in loaded
    assert under(loaded, "fpdf") == [] and under(loaded, "fontTools") == []
    assert "kiosk.server.pdf" not in loaded
    assert "fpdf" in modules_after_import("kiosk.server.pdf")  # the check itself can see it


def test_only_the_pdf_module_imports_the_pdf_library() -> None:
    importers = {
        path.relative_to(KIOSK).as_posix()
        for path in KIOSK.rglob("*.py")
        if any(name == "fpdf" or name.startswith("fpdf.") for name in imported_names(path))
    }
    assert importers == {"server/pdf.py"}


def test_the_station_loads_no_metrics_or_structured_logging() -> None:
    """prometheus-client and python-json-logger serve `kiosk serve` only: the station's start
    path (the command, the app, its file log) loads neither, nor structlog."""
    loaded = modules_after_import("kiosk.cli", "kiosk.app", "kiosk.station", "kiosk.station_log")
    assert "kiosk.station_log" in loaded and "kiosk.redact" in loaded
    for heavy in ("prometheus_client", "pythonjsonlogger", "structlog"):
        assert under(loaded, heavy) == [], heavy
    server = modules_after_import("kiosk.server.asgi")
    assert "prometheus_client" in server and "pythonjsonlogger" in server  # the check can see them


# --- Alembic stays on the upgrade path --------------------------------------------------------------

# The files that may import Alembic (a revision need not).
ALEMBIC_IMPORTERS = {
    "kiosk/server/upgrade.py",  # `kiosk db upgrade`
    "kiosk/server/migrations/env.py",  # read by Alembic, from the above
    *(p.relative_to(ROOT).as_posix() for p in (KIOSK / "server/migrations/versions").glob("*.py")),
}


def test_neither_the_station_nor_the_server_loads_alembic() -> None:
    """The station, `kiosk serve` (the store creates a new database and stamps it without
    Alembic), backup and restore: none of them pays for Alembic."""
    for modules in (
        ("kiosk.app", "kiosk.cli"),
        ("kiosk.server.app", "kiosk.server.asgi", "kiosk.server.store"),
        ("kiosk.server.backup", "kiosk.server.migrations", "kiosk.server.migrations.chain"),
    ):
        loaded = modules_after_import(*modules)
        assert under(loaded, "alembic") == [], modules


def test_the_upgrade_does_load_alembic() -> None:
    """The check above would pass vacuously if Alembic were never loaded at all."""
    assert under(modules_after_import("kiosk.server.upgrade"), "alembic") != []


def test_only_the_upgrade_path_imports_alembic() -> None:
    found = {
        path.relative_to(ROOT).as_posix()
        for path in sorted(KIOSK.rglob("*.py"))
        if any(n == "alembic" or n.startswith("alembic.") for n in imported_names(path))
    }
    assert "kiosk/server/upgrade.py" in found
    assert found <= ALEMBIC_IMPORTERS, found - ALEMBIC_IMPORTERS
