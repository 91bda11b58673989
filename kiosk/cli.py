"""The `kiosk` command: the station app by default, and the plant's server-side tools.

Imports stay inside each command so that starting the station pays only for the station.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kiosk import __version__

if TYPE_CHECKING:
    from pydantic import ValidationError


def _data_dir() -> Path:
    from kiosk.config import default_data_dir

    return default_data_dir()


def _default_database_url() -> str:
    return os.environ.get("KIOSK_DATABASE_URL") or f"sqlite:///{_data_dir() / 'plant.db'}"


def _default_secret_file() -> Path:
    return Path(os.environ.get("KIOSK_SECRET_FILE") or _data_dir() / "plant-secret")


def _add_database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL or postgresql://…; default: $KIOSK_DATABASE_URL or the embedded SQLite file",
    )
    parser.add_argument(
        "--secret-file", type=Path, default=None, help="plant secret (keys badge hashes)"
    )


def _server_config(args: argparse.Namespace, demo: bool = False):  # type: ignore[no-untyped-def]
    from kiosk.server.app import ServerConfig

    return ServerConfig(
        database_url=args.database_url or _default_database_url(),
        secret_file=args.secret_file or _default_secret_file(),
        demo=demo,
    )


def _service(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from kiosk.server.app import open_service

    return open_service(_server_config(args))


# --- commands -----------------------------------------------------------------------------------


def cmd_station(args: argparse.Namespace) -> int:
    from kiosk.config import load_settings
    from kiosk.station import run_station

    settings = load_settings(args.config, server_url=args.server)
    return run_station(settings)


def cmd_outbox(args: argparse.Namespace) -> int:
    from kiosk.client.station_db import open_outbox, outbox_report
    from kiosk.config import load_settings

    outbox = open_outbox(load_settings(args.config).data_dir)
    print("\n".join(outbox_report(outbox)))
    return 0


def cmd_outbox_sync(args: argparse.Namespace) -> int:
    import asyncio

    from rich.progress import Progress

    from kiosk.client.api import ExecutionClient
    from kiosk.client.sender import Sender
    from kiosk.client.station_db import open_outbox
    from kiosk.config import load_settings
    from kiosk.station import backend

    settings = load_settings(args.config, server_url=args.server)
    outbox = open_outbox(settings.data_dir)
    total = outbox.waiting()

    async def sync(url: str, token: str | None) -> int:
        async with ExecutionClient(url, token) as client:
            with Progress(transient=False) as progress:
                task = progress.add_task("delivering", total=total or 1)
                report = await Sender(outbox, client).deliver(
                    progress=lambda done: progress.update(task, completed=done)
                )
                progress.update(task, completed=total or 1)
        print(
            f"applied: {report.applied}   refused: {report.refused}   waiting: {outbox.waiting()}"
        )
        if report.failed:
            print(f"error: {report.failed}", file=sys.stderr)
            return 1
        return 0

    with backend(settings) as found:
        return asyncio.run(sync(found.url, found.token))


def cmd_admin(args: argparse.Namespace) -> int:
    from kiosk.admin import run_admin
    from kiosk.config import load_settings

    return run_admin(load_settings(args.config, server_url=args.server))


def cmd_serve(args: argparse.Namespace) -> int:
    config = _server_config(args, demo=args.demo)
    if args.embedded:
        from kiosk.server.embedded import serve_embedded

        serve_embedded(config, args.station_name, args.work_center)
        return 0
    from kiosk.server.asgi import serve

    serve(config, host=args.host, port=args.port, workers=args.workers)
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from kiosk.server import audit
    from kiosk.server.store import Store

    store = Store.open(args.database_url or _default_database_url(), create=False)
    key = _checkpoint_key(args)
    with store.begin() as conn:
        verdict = audit.verify(conn, key)
    print(verdict)
    if key is None:
        print("note: no plant secret here, so signed checkpoints were not checked", file=sys.stderr)
    return 0 if verdict.ok else 1


def _checkpoint_key(args: argparse.Namespace) -> bytes | None:
    from kiosk.server.security import PlantSecret

    path = args.secret_file or _default_secret_file()
    return PlantSecret.load(path).checkpoint_key() if path.exists() else None


def cmd_audit_seal(args: argparse.Namespace) -> int:
    sealed = _service(args).seal_audit()
    print(f"sealed at record {sealed}" if sealed else "already sealed at its head")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from kiosk.server import erp

    try:
        plant = erp.read_import(args.file)
    except OSError as exc:
        print(f"error: {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"error: {args.file}: {_validation_summary(exc)}", file=sys.stderr)
        return 2
    svc = _service(args)
    from sqlalchemy.exc import IntegrityError

    try:
        with svc.store.begin() as conn:
            done = erp.load(conn, plant)
    except IntegrityError:
        print(
            f"error: {args.file}: an entry already exists in the plant; nothing was imported",
            file=sys.stderr,
        )
        return 1
    print(
        f"imported {done.work_orders} work orders, {done.travelers} travelers, {done.steps} steps, "
        f"{done.tools} tools, {done.material_lots} material lots"
    )
    return 0


def _validation_summary(exc: ValidationError) -> str:
    """pydantic's findings as one line: where and what, without its links and input dumps."""
    problems = exc.errors(include_url=False, include_input=False)
    parts = []
    for err in problems[:5]:
        where = ".".join(str(part) for part in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    if len(problems) > 5:
        parts.append(f"and {len(problems) - 5} more")
    return "; ".join(parts)


def cmd_export_as_built(args: argparse.Namespace) -> int:
    from kiosk.server import erp

    svc = _service(args)
    with svc.store.begin() as conn:
        record = erp.as_built(conn, args.traveler.strip().upper())
    print(record.model_dump_json(indent=2))
    return 0


def cmd_station_add(args: argparse.Namespace) -> int:
    code = _service(args).add_station(args.name, args.work_center)
    print(f"station {args.name} ({args.work_center}): enrollment code {code} (valid 24 h, once)")
    return 0


def cmd_station_revoke(args: argparse.Namespace) -> int:
    _service(args).revoke_station(args.name)
    print(f"station {args.name} revoked: its token no longer works")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from kiosk import labels

    try:
        label = labels.make_label(args.kind, args.code, args.caption)
        # Find `lp` before drawing anything, so a missing printer client costs nothing.
        printing = labels.lp_command(args.format, args.printer) if args.print else None
        data = labels.render(label, args.format)
        if args.output is not None or printing is None:
            path = args.output or labels.default_output(label, args.format)
            path.write_bytes(data)
            print(f"wrote {path}: Code 128 {label.code!r} ({label.kind})")
        if printing is not None:
            labels.send_to_printer(printing, data)
            print(f"sent {label.kind} label {label.code!r} to the printer")
    except (labels.LabelError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    from kiosk.client.enrollment import enroll
    from kiosk.config import default_config_file, load_settings

    config_file = args.config or default_config_file()
    backend = args.keyring_backend or load_settings(config_file).keyring_backend
    done = enroll(args.server, args.code, config_file=config_file, keyring_backend=backend)
    print(
        f"enrolled as station {done.station.name} ({done.station.work_center}) at "
        f"{args.server}; token stored in {done.keyring}; settings in {done.config_file}"
    )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from kiosk import doctor
    from kiosk.config import load_settings

    return doctor.run(load_settings(args.config, server_url=args.server), os.environ)


def _add_fleet_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """label, enroll and doctor: what an admin runs at (or for) one station."""
    from kiosk.labels import FORMATS, KINDS

    label = sub.add_parser("label", help="write a Code 128 label (SVG, PNG or Zebra ZPL)")
    label.add_argument("kind", choices=KINDS)
    label.add_argument("code", help="e.g. TRV-1001, 10001, TL-0001, LOT-A100")
    label.add_argument("--format", choices=FORMATS, default="svg")
    label.add_argument("--caption", default=None, help="a second text line under the code")
    label.add_argument("--output", type=Path, default=None, help="default: <code>.<format>")
    label.add_argument("--print", action="store_true", help="send to a printer with lp (CUPS)")
    label.add_argument("--printer", default=None, help="CUPS printer name (lp -d)")
    label.set_defaults(func=cmd_label)

    # SUPPRESS: when not given here, `kiosk --server URL enroll` / `kiosk --config F doctor`
    # keep the value given before the command.
    enroll = sub.add_parser("enroll", help="enroll this station with a one-time code")
    enroll.add_argument("--server", required=True, help="execution API URL")
    enroll.add_argument("--code", required=True, help="from `kiosk station add` on the server")
    enroll.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS, help="station config TOML file"
    )
    enroll.add_argument(
        "--keyring-backend",
        default=None,
        help="keyring class, e.g. keyrings.cryptfile.cryptfile.CryptFileKeyring",
    )
    enroll.set_defaults(func=cmd_enroll)

    doctor = sub.add_parser("doctor", help="check terminal, keyring, server and clock")
    doctor.add_argument("--server", default=argparse.SUPPRESS, help="execution API URL")
    doctor.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS, help="station config TOML file"
    )
    doctor.set_defaults(func=cmd_doctor)


# --- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kiosk", description="Shop-floor station kiosk.")
    parser.add_argument("--version", action="version", version=f"kiosk {__version__}")
    parser.add_argument(
        "--server", default=None, help="execution API URL (default: embedded demo server)"
    )
    parser.add_argument("--config", type=Path, default=None, help="station config TOML file")
    parser.set_defaults(func=cmd_station)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    outbox = sub.add_parser("outbox", help="what this station has recorded and not yet delivered")
    outbox.set_defaults(func=cmd_outbox)
    outbox_actions = outbox.add_subparsers(metavar="ACTION")
    outbox_actions.add_parser("sync", help="deliver now, with a progress bar").set_defaults(
        func=cmd_outbox_sync
    )

    admin = sub.add_parser("admin", help="the admin console (admin badge and PIN required)")
    admin.set_defaults(func=cmd_admin)

    serve = sub.add_parser("serve", help="run the reference execution API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8600)
    serve.add_argument(
        "--workers", type=int, default=1, help="server processes sharing the database"
    )
    serve.add_argument(
        "--demo", action="store_true", help="seed the demo plant into an empty database"
    )
    serve.add_argument("--embedded", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument("--station-name", default="STATION-01", help=argparse.SUPPRESS)
    serve.add_argument("--work-center", default="ASSEMBLY", help=argparse.SUPPRESS)
    _add_database(serve)
    serve.set_defaults(func=cmd_serve)

    audit = sub.add_parser("audit", help="audit trail tools").add_subparsers(
        metavar="ACTION", required=True
    )
    verify = audit.add_parser("verify", help="check the audit hash chain")
    _add_database(verify)
    verify.set_defaults(func=cmd_audit_verify)
    seal = audit.add_parser("seal", help="sign a checkpoint of the chain's head now")
    _add_database(seal)
    seal.set_defaults(func=cmd_audit_seal)

    imp = sub.add_parser("import", help="load work orders with routings from a JSON file")
    imp.add_argument("file", type=Path)
    _add_database(imp)
    imp.set_defaults(func=cmd_import)

    export = sub.add_parser("export", help="export records").add_subparsers(
        metavar="WHAT", required=True
    )
    as_built = export.add_parser("as-built", help="a traveler's complete as-built record as JSON")
    as_built.add_argument("traveler")
    _add_database(as_built)
    as_built.set_defaults(func=cmd_export_as_built)

    station = sub.add_parser("station", help="manage stations").add_subparsers(
        metavar="ACTION", required=True
    )
    add = station.add_parser("add", help="create a station and print a one-time enrollment code")
    add.add_argument("name")
    add.add_argument("--work-center", required=True)
    _add_database(add)
    add.set_defaults(func=cmd_station_add)
    revoke = station.add_parser("revoke", help="revoke a station's token")
    revoke.add_argument("name")
    _add_database(revoke)
    revoke.set_defaults(func=cmd_station_revoke)
    _add_fleet_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line instead of a traceback for the errors we know
        message = _known_error(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 3


def _known_error(exc: Exception) -> str | None:
    from kiosk.client.errors import BackendError
    from kiosk.config import ConfigError
    from kiosk.rules import Refusal

    if isinstance(exc, ConfigError | BackendError):
        return str(exc)
    if isinstance(exc, Refusal):
        return exc.detail
    if "kiosk.server.store" in sys.modules:
        from kiosk.server.store import StoreError

        if isinstance(exc, StoreError):
            return str(exc)
    if type(exc).__module__.startswith("sqlalchemy"):
        return f"database: {str(exc).splitlines()[0]}"
    return None
