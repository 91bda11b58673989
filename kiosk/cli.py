"""The `kiosk` command: the station app by default, and the plant's server-side tools.

Imports stay inside each command so that starting the station pays only for the station.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from kiosk import __version__

if TYPE_CHECKING:
    from pydantic import ValidationError

    from kiosk.wire import Deviation

_Doc = TypeVar("_Doc")


def _add_database(parser: argparse.ArgumentParser) -> None:
    """The flags every server-side command shares; the rest comes from ServerSettings."""
    parser.add_argument(
        "--config",
        dest="server_config",
        type=Path,
        default=None,
        metavar="FILE",
        help="server settings TOML file; default: $KIOSK_SERVER_CONFIG_FILE or server.toml "
        "in the user config directory",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL or postgresql://…; default: database_url of the server settings "
        "($KIOSK_DATABASE_URL), else the embedded SQLite file",
    )
    parser.add_argument(
        "--secret-file", type=Path, default=None, help="plant secret (keys badge hashes)"
    )


# Flags of `kiosk serve` that override a ServerSettings field of the same name.
_SERVE_FLAGS = (
    "host",
    "port",
    "workers",
    "database_connections",
    "tls_cert",
    "tls_key",
    "log_format",
    "log_level",
)


def _server_settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The one settings object of server-side commands: file < KIOSK_* < these flags."""
    from kiosk.server.settings import load_server_settings

    flags = {name: getattr(args, name, None) for name in ("database_url", "secret_file")}
    flags.update({name: getattr(args, name, None) for name in _SERVE_FLAGS})
    return load_server_settings(getattr(args, "server_config", None), **flags)


def _server_config(args: argparse.Namespace, demo: bool = False):  # type: ignore[no-untyped-def]
    from kiosk.server.app import ServerConfig

    return ServerConfig.of(_server_settings(args), demo=demo)


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
    from kiosk.client.station_db import open_outbox, outbox_json, outbox_report
    from kiosk.config import load_settings

    outbox = open_outbox(load_settings(args.config).data_dir)
    if args.json:
        import json

        print(json.dumps(outbox_json(outbox), indent=2, ensure_ascii=False))
    else:
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
    from kiosk.station import require_terminal

    settings = load_settings(args.config, server_url=args.server)
    require_terminal("the admin console")
    return run_admin(settings)


def cmd_board(args: argparse.Namespace) -> int:
    from kiosk.board import run_board
    from kiosk.config import load_settings
    from kiosk.station import require_terminal

    settings = load_settings(args.config, server_url=args.server)
    require_terminal("the board")
    return run_board(settings)


def cmd_serve(args: argparse.Namespace) -> int:
    if args.embedded:
        if args.tls_cert or args.tls_key:
            print(
                "error: the embedded server is plain http on loopback: no --tls-*", file=sys.stderr
            )
            return 2
        from kiosk.server.embedded import serve_embedded

        serve_embedded(
            _server_config(args, demo=args.demo), args.station_name, args.work_center, args.run_file
        )
        return 0
    from kiosk.server.asgi import TLSFilesError, check_tls_files, serve

    settings = _server_settings(args)
    if settings.events_mqtt_url and _missing("aiomqtt"):
        from kiosk.server.mqtt import MISSING

        print(f"error: events_mqtt_url is set, but {MISSING}", file=sys.stderr)
        return 3
    try:
        # Before the database is opened: a typo in a path costs nothing.
        tls = check_tls_files(settings.tls_cert, settings.tls_key)
    except TLSFilesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Warnings (plain http beyond loopback, an open /metrics) come as log lines, in the format.
    serve(settings, demo=args.demo, tls=tls)
    return 0


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from kiosk.server import audit
    from kiosk.server.store import Store

    settings = _server_settings(args)
    store = Store.open(settings.database, create=False)
    secret_file = settings.plant_secret
    keys = _audit_keys(secret_file)
    files = list(args.witness or [])
    if audit.witness_path(secret_file).exists():
        files.insert(0, audit.witness_path(secret_file))
    try:
        witnesses = [w for path in files for w in audit.read_witnesses(path)]
    except audit.WitnessUnreadable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    kept = _server_config(args).file_store()  # documents, photos, files: each must be intact
    with store.begin() as conn:
        verdict = audit.verify(conn, keys, witnesses, files=kept)
    print(verdict)
    if verdict.ok and witnesses:
        agree = (
            "1 checkpoint agrees" if len(witnesses) == 1 else f"{len(witnesses)} checkpoints agree"
        )
        print(f"witnesses: {agree} ({', '.join(f.name for f in files)})")
    if keys is None:
        print(
            "note: no plant secret here, so record seals and signed checkpoints were not checked",
            file=sys.stderr,
        )
    return 0 if verdict.ok else 1


def _audit_keys(path: Path):  # type: ignore[no-untyped-def]
    from kiosk.server.audit import Keys
    from kiosk.server.security import PlantSecret

    if not path.exists():
        return None
    secret = PlantSecret.load(path)
    return Keys(record=secret.audit_key(), checkpoint=secret.checkpoint_key())


def cmd_audit_witness(args: argparse.Namespace) -> int:
    """At a station: the latest audit checkpoint it received, as a witness line."""
    from kiosk.client.station_db import latest_checkpoint
    from kiosk.config import load_settings

    checkpoint = latest_checkpoint(load_settings(args.config).data_dir)
    if checkpoint is None:
        print("error: this station has received no audit checkpoint yet", file=sys.stderr)
        return 1
    print(checkpoint.model_dump_json())
    return 0


def cmd_audit_seal(args: argparse.Namespace) -> int:
    sealed = _service(args).seal_audit()
    print(f"sealed at record {sealed.seq}" if sealed else "already sealed at its head")
    return 0


def _read_document(path: Path, read: Callable[[Path], _Doc], nothing: str = "") -> _Doc | None:
    """A JSON document read by `read`; one that cannot be read or is not valid is said in one
    line (with `nothing`: what that means for the plant), and gives None."""
    from pydantic import ValidationError

    try:
        return read(path)
    except OSError as exc:
        print(f"error: {path}: {exc.strerror or exc}", file=sys.stderr)
    except ValidationError as exc:
        print(f"error: {path}: {_validation_summary(exc)}{nothing}", file=sys.stderr)
    return None


def cmd_import(args: argparse.Namespace) -> int:
    from kiosk.server import erp

    plant = _read_document(args.file, erp.read_import)
    if plant is None:
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
    # Not in the plant (a person, a drawing), or an asset the plant has as another kind.
    except (erp.UnknownPerson, erp.UnknownDocument, erp.AssetRefused) as exc:
        print(f"error: {args.file}: {exc}; nothing was imported", file=sys.stderr)
        return 1
    print(
        f"imported {done.work_orders} work orders, {done.travelers} travelers, {done.steps} steps, "
        f"{done.tools} tools, {done.material_lots} material lots"
        + (f", {done.certifications} certifications" if done.certifications else "")
        + (f", {done.assets} assets" if done.assets else "")
    )
    return 0


def cmd_revise(args: argparse.Namespace) -> int:
    """An engineering change from a JSON file: refused whole with a one-line reason, or issued."""
    from datetime import UTC, datetime

    from kiosk.rules import Refusal
    from kiosk.server import revise

    doc = _read_document(args.file, revise.read_revision, "; nothing changed")
    if doc is None:
        return 2
    try:
        done = revise.issue(_service(args).store, doc, datetime.now(UTC))
    except Refusal as refusal:
        print(f"error: {args.file}: {refusal.detail}", file=sys.stderr)
        return 1
    print(done.message)
    for line in done.steps:
        print(f"  {line}")
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
    from kiosk.server import printable

    pdf = args.format == "pdf"
    # JSON goes to standard output unless told otherwise; a PDF to <traveler>-as-built.pdf.
    to_stdout = _is_stdout(args.output) or (args.output is None and not pdf)
    if pdf and to_stdout and _refuse_binary_on_terminal("a PDF"):
        return 2
    with _read_store(args).read() as conn:
        made = printable.read(conn, args.traveler)
    if pdf:
        from kiosk.server.pdf import default_filename, render

        evidence = _server_config(args).file_store().checked  # each photo or file, attached
        data, output = render(made, evidence), args.output or Path(default_filename(made))
    else:
        data, output = made.json, args.output
    what = f"as-built record of {made.record.traveler.number}, SHA-256 {made.sha256}"
    return _write_output(data, None if to_stdout else output, what)


def cmd_export_history(args: argparse.Namespace) -> int:
    from kiosk.server import printable

    pdf = args.format == "pdf"
    to_stdout = _is_stdout(args.output) or (args.output is None and not pdf)
    if pdf and to_stdout and _refuse_binary_on_terminal("a PDF"):
        return 2
    with _read_store(args).read() as conn:
        made = printable.read_history(conn, args.asset)
    if pdf:
        from kiosk.server.pdf import history_filename, render_history

        data, output = render_history(made), args.output or Path(history_filename(made))
    else:
        data, output = made.json, args.output
    tasks = len(made.record.tasks)
    what = f"as-maintained record of {made.record.asset.id} ({tasks} tasks), SHA-256 {made.sha256}"
    return _write_output(data, None if to_stdout else output, what)


def _since(text: str):  # type: ignore[no-untyped-def]
    """A date (midnight UTC) or an ISO 8601 time, for --since."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: give YYYY-MM-DD or an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_export_labour(args: argparse.Namespace) -> int:
    import csv
    import io
    import json
    from datetime import UTC, datetime

    from kiosk.server import labour

    with _read_store(args).read() as conn:
        found = labour.intervals(conn, datetime.now(UTC), since=args.since)
    if args.format == "json":
        data = json.dumps([i.model_dump(mode="json") for i in found], indent=2) + "\n"
    else:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=labour.CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(labour.csv_rows(found))
        data = text.getvalue()
    output = None if args.output is None or _is_stdout(args.output) else args.output
    what = f"{len(found)} labour intervals since {args.since:%Y-%m-%d %H:%M} UTC"
    return _write_output(data.encode(), output, what)


def _is_stdout(output: Path | None) -> bool:
    return output is not None and str(output) == "-"


def _refuse_binary_on_terminal(what: str) -> bool:
    """Bytes of a binary format would garble a terminal: say so instead (exit 2)."""
    if not sys.stdout.isatty():
        return False
    print(
        f"error: not writing {what} to a terminal: redirect standard output or give --output FILE",
        file=sys.stderr,
    )
    return True


def _write_output(data: bytes, output: Path | None, what: str) -> int:
    """`data` into the file `output`, saying what was written; to standard output (None) only
    the data, so that it can be piped."""
    if output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    try:
        output.write_bytes(data)
    except OSError as exc:
        print(f"error: {output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"wrote {output}: {what}")
    return 0


def cmd_station_add(args: argparse.Namespace) -> int:
    code = _service(args).add_station(args.name, args.work_center)
    print(f"station {args.name} ({args.work_center}): enrollment code {code} (valid 24 h, once)")
    return 0


def cmd_station_revoke(args: argparse.Namespace) -> int:
    _service(args).revoke_station(args.name)
    print(f"station {args.name} revoked: its token no longer works")
    return 0


def cmd_certifications(args: argparse.Namespace) -> int:
    """Certifications expired or expiring within --expiring days, soonest first."""
    import json
    from datetime import UTC, datetime

    from kiosk.server import quality

    today = datetime.now(UTC).date()
    with _read_store(args).read() as conn:
        found = quality.expiring(conn, today, args.expiring)
    if args.json:
        print(json.dumps([f.model_dump(mode="json") for f in found], indent=2))
        return 0
    if not found:
        print(f"no certification expires within {args.expiring} days")
    for f in found:
        when = "EXPIRED" if f.expired else "expires"
        days = (f.expires - today).days
        print(f"{f.person:<24} {f.operation:<16} {when} {f.expires:%Y-%m-%d} ({days:+d} days)")
    return 0


# --- deviations ------------------------------------------------------------------------------------


def cmd_deviation_raise(args: argparse.Namespace) -> int:
    """Raise a deviation on the plant's database; a station's quality person approves it."""
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from kiosk.server import deviations
    from kiosk.wire import RaiseDeviation

    try:
        body = RaiseDeviation(
            part_number=args.part, travelers=tuple(args.traveler), steps=tuple(args.step),
            item=args.item, lower=args.lower, upper=args.upper, substitute=args.substitute,
            reason=args.reason, units=args.units, until=args.until,
        )  # fmt: skip
    except ValidationError as exc:
        print(f"error: {_validation_summary(exc)}; nothing was raised", file=sys.stderr)
        return 2
    svc = _service(args)
    with svc.store.begin() as conn:
        dev = deviations.raise_deviation(conn, body, args.by.strip()[:120], datetime.now(UTC))
    print(f"{dev.number} raised, not yet in effect: approve it at a station (quality).")
    print(f"  {_deviation_line(dev)}")
    return 0


def _deviation_line(dev: Deviation) -> str:
    from kiosk import rules

    scope = ", ".join(filter(None, [dev.part_number, *dev.travelers])) or "-"
    steps = f" steps {', '.join(dev.steps)}" if dev.steps else ""
    return f"{rules.deviation_text(dev)} [{dev.status}] for {scope}{steps}: {dev.reason}"


def cmd_deviation_list(args: argparse.Namespace) -> int:
    import json

    from kiosk.server import deviations

    with _read_store(args).read() as conn:
        found = deviations.all_deviations(conn)
    if args.json:
        print(json.dumps([d.model_dump(mode="json") for d in found], indent=2))
        return 0
    if not found:
        print("no deviations: raise one with `kiosk deviation raise …`")
    for dev in found:
        print(_deviation_line(dev))
    return 0


def _add_deviation_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from datetime import date

    group = sub.add_parser(
        "deviation", help="deviations: planned, approved departures (raise, list)"
    ).add_subparsers(metavar="ACTION", required=True)
    raise_ = group.add_parser(
        "raise",
        help="raise a deviation (it takes effect once approved by signature at a station)",
        description="Against a part number and/or travelers (and steps), for one data item by "
        "its label: widened limits (--lower/--upper) or a substitute part number or tool "
        "(--substitute); reaching --units units and/or --until a last day.",
    )
    raise_.add_argument("--part", metavar="PART_NUMBER", help="every traveler of this part")
    raise_.add_argument("--traveler", action="append", default=[], metavar="NUMBER",
                        help="a traveler it covers (repeat for more)")  # fmt: skip
    raise_.add_argument("--step", action="append", default=[], metavar="NUMBER",
                        help="only this step (repeat for more); default: every step")  # fmt: skip
    raise_.add_argument("--item", required=True, help="the data item's label, as on the step")
    raise_.add_argument("--lower", type=float, help="the widened lower limit")
    raise_.add_argument("--upper", type=float, help="the widened upper limit")
    raise_.add_argument("--substitute", help="the part number or tool code accepted instead")
    raise_.add_argument("--reason", required=True, help="why (at least 3 characters)")
    raise_.add_argument("--units", type=int, help="how many units (travelers) it reaches")
    raise_.add_argument("--until", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="the last day it applies")  # fmt: skip
    raise_.add_argument("--by", default="quality (kiosk deviation raise)",
                        help="who raises it, as recorded (default: %(default)s)")  # fmt: skip
    _add_database(raise_)
    raise_.set_defaults(func=cmd_deviation_raise)
    listing = group.add_parser("list", help="every deviation: status, reach and units used")
    listing.add_argument("--json", action="store_true", help="as one JSON document, for scripts")
    _add_database(listing)
    listing.set_defaults(func=cmd_deviation_list)


# --- documents at revision ------------------------------------------------------------------------


def cmd_document_add(args: argparse.Namespace) -> int:
    """Keep a drawing or specification at a revision (kiosk.server.documents)."""
    from pydantic import ValidationError

    from kiosk.rules import Refusal
    from kiosk.server import documents

    try:
        data = args.file.read_bytes()
        spec = documents.DocumentSpec(number=args.number, revision=args.revision, title=args.title)
    except OSError as exc:
        print(f"error: {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"error: {_validation_summary(exc)}", file=sys.stderr)
        return 2
    svc = _service(args)
    try:
        with svc.store.begin() as conn:
            doc, new = documents.add(conn, svc.files, spec, data, actor=None, now=svc.clock())
    except Refusal as refused:  # wrong type, too large, the revision there with other bytes
        print(f"error: {args.file}: {refused.detail} Nothing was added.", file=sys.stderr)
        return 2 if refused.status in (413, 415, 422) else 1
    said = "added" if new else "already there, unchanged:"
    print(f"{said} {doc.number} rev {doc.revision} {doc.title!r} ({doc.media_type}, "
          f"{doc.size} bytes, sha256 {doc.sha256})")  # fmt: skip
    return 0


def cmd_document_list(args: argparse.Namespace) -> int:
    import json

    from kiosk.server import documents

    with _read_store(args).read() as conn:
        found = documents.listing(conn)
    if args.json:
        print(json.dumps([d.model_dump(mode="json") for d in found], indent=2))
        return 0
    if not found:
        print("no documents: add one with `kiosk document add FILE --number N --revision R "
              "--title T`")  # fmt: skip
    for d in found:
        state = f"superseded by {d.superseded_by}" if d.superseded_by else "current"
        print(f"{d.number:<18} rev {d.revision:<4} {d.title:<32} {d.media_type:<16} "
              f"{state:<18} {d.sha256[:12]}")  # fmt: skip
    return 0


def _add_document_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doc = sub.add_parser(
        "document", help="drawings and specifications at revision, shown by steps"
    ).add_subparsers(metavar="ACTION", required=True)
    add = doc.add_parser("add", help="keep a PDF, PNG, JPEG or SVG as a document at a revision")
    add.add_argument("file", type=Path)
    add.add_argument("--number", required=True, help="e.g. DWG-8810-011")
    add.add_argument("--revision", required=True, help="e.g. C")
    add.add_argument("--title", required=True, help="e.g. 'Bracket assembly'")
    _add_database(add)
    add.set_defaults(func=cmd_document_add)
    listing = doc.add_parser("list", help="every document and revision, current or superseded")
    listing.add_argument("--json", action="store_true", help="as one JSON document, for scripts")
    _add_database(listing)
    listing.set_defaults(func=cmd_document_list)


# --- the plant's database: upgrade, backup, restore ------------------------------------------------


def _read_store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """For commands that only read: a missing database (or plant secret) is an error, never
    made anew; a typo in --database-url must not become an empty plant."""
    from kiosk.server.store import Store

    return Store.open(_server_settings(args).database, create=False)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from kiosk.server.migrations.chain import UpgradeRefused
    from kiosk.server.upgrade import upgrade

    settings = _server_settings(args)
    try:
        done = upgrade(settings.database, settings.plant_secret, args.backup_dir)
    except UpgradeRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if done.backup is None:
        print(f"already at schema version {done.to_version}: nothing to do")
        return 0
    print(f"backup of schema version {done.from_version}: {done.backup}")
    print(f"upgraded to schema version {done.to_version}")
    print(done.verdict)
    if not done.ok:
        print(f"to go back: kiosk restore {done.backup} --force --database-url …", file=sys.stderr)
    return 0 if done.ok else 1


def cmd_backup(args: argparse.Namespace) -> int:
    from kiosk.server.backup import backup

    settings = _server_settings(args)
    manifest = backup(settings.database, settings.plant_secret, args.dest, files_dir=settings.files)
    head = manifest["audit_head"]
    size = sum(entry["bytes"] for entry in manifest["files"])
    print(
        f"backed up {manifest['database']['source']} (schema version "
        f"{manifest['schema_version']}, audit record {head['seq']}) into {args.dest}: "
        f"{len(manifest['files'])} files, {size} bytes"
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from kiosk.server.backup import restore

    if args.database_url is None:
        print("error: give --database-url: the database to restore into", file=sys.stderr)
        return 2
    settings = _server_settings(args)
    done = restore(
        args.src, settings.database, settings.plant_secret, force=args.force,
        files_dir=settings.files,
    )  # fmt: skip
    head = done.manifest["audit_head"]
    print(
        f"restored the backup of {done.manifest['created_at']} (audit record {head['seq']}) "
        f"into {done.manifest['database']['backend']} at {args.database_url}"
    )
    for note in done.notes:
        print(f"note: {note}", file=sys.stderr)
    print(done.verdict)
    return 0 if done.ok else 1


def _add_plant_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """db upgrade, backup and restore: what an admin runs on the server host."""
    db = sub.add_parser("db", help="the plant database").add_subparsers(
        metavar="ACTION", required=True
    )
    upgrade = db.add_parser(
        "upgrade",
        help="upgrade the database to this release's schema, after a backup",
        description="Stop every server on the database first. The backup goes into a new folder\n"
        "kiosk-backup-<time>-schema-<version> beside the SQLite file (PostgreSQL: beside the\n"
        "plant secret) or under --backup-dir; `kiosk restore` it to go back.",
    )
    upgrade.add_argument(
        "--backup-dir", type=Path, default=None, metavar="DIR", help="where the backup goes"
    )
    _add_database(upgrade)
    upgrade.set_defaults(func=cmd_db_upgrade)

    back = sub.add_parser(
        "backup", help="back up the database, the plant secret and its witness into DEST"
    )
    back.add_argument("dest", type=Path, metavar="DEST", help="a new (or empty) folder")
    _add_database(back)
    back.set_defaults(func=cmd_backup)

    restore = sub.add_parser(
        "restore", help="restore a backup, then verify the audit trail of the result"
    )
    restore.add_argument("src", type=Path, metavar="SRC", help="a folder made by `kiosk backup`")
    restore.add_argument(
        "--force",
        action="store_true",
        help="replace a database that is already there (and move a different plant secret aside)",
    )
    _add_database(restore)
    restore.set_defaults(func=cmd_restore)


# --- integration: service accounts of ERP, MES and QMS ----------------------------------------------


def cmd_integration_add(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from kiosk.rules import Refusal
    from kiosk.server import integration

    svc = _service(args)
    try:
        scopes = integration.parse_scopes(args.scope)
        key = integration.add_account(svc.store, svc.secret, args.name, scopes, datetime.now(UTC))
    except Refusal as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    print(f"service account {args.name} ({', '.join(s.value for s in scopes)}): key {key}")
    print("the key is shown only now: give it to the system, then forget it", file=sys.stderr)
    return 0


def cmd_integration_list(args: argparse.Namespace) -> int:
    from kiosk.server import integration

    accounts = integration.list_accounts(_read_store(args))
    if args.json:
        import json

        print(json.dumps([a.model_dump(mode="json") for a in accounts], indent=2))
        return 0
    if not accounts:
        print("no service accounts: add one with `kiosk integration add NAME --scope …`")
    for a in accounts:
        state = f"revoked {a.revoked_at:%Y-%m-%d %H:%M}" if a.revoked_at else "active"
        scopes = ",".join(s.value for s in a.scopes)
        print(f"{a.name:<20} {scopes:<20} added {a.created_at:%Y-%m-%d %H:%M}  {state}")
    return 0


def cmd_integration_revoke(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from kiosk.rules import Refusal
    from kiosk.server import integration

    try:
        integration.revoke_account(_service(args).store, args.name, datetime.now(UTC))
    except Refusal as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    print(f"service account {args.name} revoked: its key no longer works")
    return 0


def _add_integration_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "integration", help="service accounts of ERP, MES and QMS (the integration API)"
    ).add_subparsers(metavar="ACTION", required=True)
    add = group.add_parser(
        "add",
        help="create a service account and print its API key, once",
        description="Scopes: import (POST /api/v1/import), read (GET /api/v1/as-built/…),\n"
        "events (GET /api/v1/events), deviations (POST and GET /api/v1/deviations).\n"
        "A service account is a system, never a person:\n"
        "it cannot act or sign on the floor.",
    )
    add.add_argument("name", help="e.g. ERP, MES, QMS: letters, digits, '.', '_', '-'")
    add.add_argument(
        "--scope",
        required=True,
        metavar="SCOPES",
        help="comma-separated: import,read,events,deviations",
    )
    _add_database(add)
    add.set_defaults(func=cmd_integration_add)
    listing = group.add_parser("list", help="the service accounts, active and revoked")
    listing.add_argument("--json", action="store_true", help="as one JSON document, for scripts")
    _add_database(listing)
    listing.set_defaults(func=cmd_integration_list)
    revoke = group.add_parser("revoke", help="revoke a service account's key")
    revoke.add_argument("name")
    _add_database(revoke)
    revoke.set_defaults(func=cmd_integration_revoke)


def cmd_label(args: argparse.Namespace) -> int:
    from kiosk import labels

    try:
        label = labels.make_label(args.kind, args.code, args.caption)
        # Find `lp` before drawing anything, so a missing printer client costs nothing.
        printing = labels.lp_command(args.format, args.printer) if args.print else None
        to_stdout = _is_stdout(args.output)
        if to_stdout and args.format == "png" and _refuse_binary_on_terminal("a PNG"):
            return 2
        data = labels.render(label, args.format)
        if to_stdout:
            _write_output(data, None, "")  # the label alone, so that it can be piped
        elif args.output is not None or printing is None:
            path = args.output or labels.default_output(label, args.format)
            path.write_bytes(data)
            print(f"wrote {path}: Code 128 {label.code!r} ({label.kind})")
        if printing is not None:
            labels.send_to_printer(printing, data)
            done = f"sent {label.kind} label {label.code!r} to the printer"
            print(done, file=sys.stderr if to_stdout else sys.stdout)
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
    label.add_argument(
        "--output",
        type=Path,
        default=None,
        help="file, or - for standard output; default: <code>.<format>",
    )
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


EXIT_CODES = """exit codes:
  0    done; a check (audit verify, doctor) found everything in order
  1    a check found a problem, or the server refused or failed part of the work
  2    bad input: a wrong argument, a file that cannot be read or written, a refused label
  3    stopped with a one-line error: database, server, configuration, a missing driver, no terminal
  124  the station's shutdown overran its 5 s deadline and was forced
  130  interrupted (Ctrl+C)
"""


def _document_exit_codes(parser: argparse.ArgumentParser) -> None:
    """The same exit-code table at the end of every command's --help, subcommands included."""
    parser.epilog = parser.epilog or EXIT_CODES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _document_exit_codes(child)


def _add_station_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server", default=None, help="execution API URL (default: embedded demo server)"
    )
    parser.add_argument("--config", type=Path, default=None, help="station config TOML file")
    parser.set_defaults(func=cmd_station)


def _station_args(argv: Sequence[str] | None) -> argparse.Namespace | None:
    """`kiosk` itself, no command: parsed without building every command's parser, which the
    station's start would pay (~30 sub-parsers with their gettext look-ups, kiosk.labels and the
    scanner parsers it imports for choices). None: let the full parser have it (a command,
    --help, --version, or a mistake it explains)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(arg in ("-h", "--help", "--version") for arg in args):
        return None
    parser = argparse.ArgumentParser(prog="kiosk", add_help=False, exit_on_error=False)
    _add_station_options(parser)
    try:
        known, rest = parser.parse_known_args(args)
    except (argparse.ArgumentError, SystemExit):
        return None
    return None if rest else known


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kiosk", description="Shop-floor station kiosk.")
    parser.add_argument("--version", action="version", version=f"kiosk {__version__}")
    _add_station_options(parser)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    outbox = sub.add_parser("outbox", help="what this station has recorded and not yet delivered")
    outbox.add_argument("--json", action="store_true", help="as one JSON document, for scripts")
    outbox.set_defaults(func=cmd_outbox)
    outbox_actions = outbox.add_subparsers(metavar="ACTION")
    outbox_actions.add_parser("sync", help="deliver now, with a progress bar").set_defaults(
        func=cmd_outbox_sync
    )

    admin = sub.add_parser("admin", help="the admin console (admin badge and PIN required)")
    admin.set_defaults(func=cmd_admin)
    board = sub.add_parser(
        "board", help="the live board (a supervisor's, quality's or an admin's badge and PIN)"
    )
    board.set_defaults(func=cmd_board)

    serve = sub.add_parser("serve", help="run the reference execution API")
    # Defaults live in ServerSettings (kiosk/server/settings.py): a flag given overrides file and env.
    serve.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="TCP port (default 8600)")
    serve.add_argument(
        "--workers", type=int, default=None, help="server processes sharing the database"
    )
    serve.add_argument(
        "--database-connections",
        type=int,
        default=None,
        metavar="N",
        help="PostgreSQL connections each server process holds at most (default 10)",
    )
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="text lines (default) or one JSON object per line",
    )
    serve.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=None)
    serve.add_argument(
        "--demo", action="store_true", help="seed the demo plant into an empty database"
    )
    serve.add_argument(
        "--tls-cert",
        type=Path,
        default=None,
        metavar="FILE",
        help="serve https with this PEM certificate (chain), issued by the plant CA",
    )
    serve.add_argument(
        "--tls-key", type=Path, default=None, metavar="FILE", help="its unencrypted PEM key"
    )
    serve.add_argument("--embedded", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument("--station-name", default="STATION-01", help=argparse.SUPPRESS)
    serve.add_argument("--work-center", default="ASSEMBLY", help=argparse.SUPPRESS)
    # The embedded server's lock and record of itself, for the other tools of its data directory.
    serve.add_argument("--run-file", type=Path, default=None, help=argparse.SUPPRESS)
    _add_database(serve)
    serve.set_defaults(func=cmd_serve)

    audit = sub.add_parser("audit", help="audit trail tools").add_subparsers(
        metavar="ACTION", required=True
    )
    verify = audit.add_parser(
        "verify", help="check the audit chain, and every record it vouches for"
    )
    _add_database(verify)
    verify.add_argument(
        "--witness",
        type=Path,
        action="append",
        metavar="FILE",
        help="checkpoints kept outside the database (a station's `kiosk audit witness`, a copy "
        "of the server's witness file); the one beside the plant secret is always read",
    )
    verify.set_defaults(func=cmd_audit_verify)
    witness = audit.add_parser(
        "witness", help="at a station: print the latest audit checkpoint it received"
    )
    witness.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS, help="station config TOML file"
    )
    witness.set_defaults(func=cmd_audit_witness)
    seal = audit.add_parser("seal", help="sign a checkpoint of the chain's head now")
    _add_database(seal)
    seal.set_defaults(func=cmd_audit_seal)

    imp = sub.add_parser("import", help="load work orders with routings from a JSON file")
    imp.add_argument("file", type=Path)
    _add_database(imp)
    imp.set_defaults(func=cmd_import)

    rev = sub.add_parser(
        "revise",
        help="issue an engineering change: a new revision of a routing's steps from a JSON file",
        description="Travelers not yet at a changed step get the new revision; those in work on\n"
        "it get a redline the operator acknowledges before continuing; signed steps keep\n"
        "their revision. The same change again changes nothing. Exit codes: 0 issued (or\n"
        "already issued), 1 refused by the plant, 2 the file cannot be read.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rev.add_argument("file", type=Path, help="the change as JSON, as examples/revise-ecn-0042.json")
    _add_database(rev)
    rev.set_defaults(func=cmd_revise)

    export = sub.add_parser("export", help="export records").add_subparsers(
        metavar="WHAT", required=True
    )
    as_built = export.add_parser(
        "as-built",
        help="a traveler's complete as-built record, as JSON or a printable PDF",
        description="The JSON is the record's canonical form (sorted keys, 2-space indent,\n"
        "UTF-8): its sha256sum is the SHA-256 a PDF of the same record prints on every\n"
        "page, and the PDF carries that JSON as its attachment as-built.json.",
    )
    as_built.add_argument("traveler")
    as_built.add_argument(
        "--format",
        choices=("json", "pdf"),
        default="json",
        help="json (default) or a printable pdf",
    )
    as_built.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="file, or - for standard output; default: standard output for JSON, "
        "<TRAVELER>-as-built.pdf for a PDF",
    )
    _add_database(as_built)
    as_built.set_defaults(func=cmd_export_as_built)
    history = export.add_parser(
        "history",
        help="an asset's as-maintained record: the as-built of each of its maintenance tasks",
        description="Every maintenance task imported on the asset (tail number or equipment\n"
        "id), in the order imported, each as its as-built record; JSON (canonical, like\n"
        "`export as-built`) or a PDF carrying that JSON as its attachment as-maintained.json.",
    )
    history.add_argument("asset")
    history.add_argument("--format", choices=("json", "pdf"), default="json", help="json (default)")
    history.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="file, or - for standard output; default: standard output for JSON, "
        "<ASSET>-history.pdf for a PDF",
    )
    _add_database(history)
    history.set_defaults(func=cmd_export_history)
    labour = export.add_parser(
        "labour",
        help="labour intervals per person per step, for the ERP's costing (CSV or JSON)",
        description="Every interval open now, or ended at or after --since (so one crossing\n"
        "midnight is in both days' exports; its id tells them apart). Times are ISO 8601\n"
        "UTC; an open interval has no end and counts its minutes up to now.",
    )
    labour.add_argument(
        "--since", type=_since, required=True, metavar="DATE", help="YYYY-MM-DD or ISO 8601 time"
    )
    labour.add_argument("--format", choices=("csv", "json"), default="csv", help="csv (default)")
    labour.add_argument(
        "--output", type=Path, default=None, metavar="FILE", help="default: standard output"
    )
    _add_database(labour)
    labour.set_defaults(func=cmd_export_labour)

    certs = sub.add_parser(
        "certifications", help="people's certifications expired or expiring soon"
    )
    certs.add_argument(
        "--expiring", type=int, default=30, metavar="DAYS",
        help="list those expired or expiring within DAYS days (default: 30)",
    )  # fmt: skip
    certs.add_argument("--json", action="store_true", help="as one JSON document, for scripts")
    _add_database(certs)
    certs.set_defaults(func=cmd_certifications)
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
    _add_plant_commands(sub)
    _add_integration_commands(sub)
    _add_deviation_commands(sub)
    _add_document_commands(sub)
    _document_exit_codes(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _station_args(argv) or build_parser().parse_args(argv)
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
    if _missing_postgres_driver(exc):
        return "PostgreSQL needs the postgres extra: pip install 'station-kiosk[postgres]'"
    if "kiosk.station" in sys.modules:
        from kiosk.station import CannotStart

        if isinstance(exc, CannotStart):  # no terminal, or a station already running here
            return str(exc)
    if "kiosk.server.store" in sys.modules:
        from kiosk.server.store import StoreError

        if isinstance(exc, StoreError):
            return str(exc)
    if type(exc).__module__.startswith("sqlalchemy"):
        return f"database: {str(exc).splitlines()[0]}"
    return None


def _missing_postgres_driver(exc: Exception) -> bool:
    """SQLAlchemy imports psycopg only when a postgresql:// engine is made (kiosk/server/store.py):
    without the extra that import fails there, deep in a traceback."""
    return isinstance(exc, ImportError) and (exc.name or "").split(".")[0] in (
        "psycopg",
        "psycopg2",
    )
