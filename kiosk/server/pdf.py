"""The as-built record as a PDF an auditor can file and check.

Every step with each value recorded (limits, verdict, who, when, where, offline or not), the
signature manifestations (printed name, date-time, meaning), material, tools with calibration,
NCRs, holds and deviations; the audit chain head it was read with; and on every page the record's
SHA-256 (kiosk/server/printable.py). The record's canonical JSON rides along as the attachment
`as-built.json`, so the digest can be checked from the PDF alone (`pdfdetach -saveall`), and so
does each photo or file recorded as evidence, named on its row, whose SHA-256 the row prints.

The only module that imports fpdf2: the CLI and the API route import it when a PDF is asked for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace, TTFFont

from kiosk import __version__, rules
from kiosk.server.printable import Printable, PrintableHistory
from kiosk.wire import (
    AsBuilt,
    AsBuiltValue,
    DataItem,
    ItemKind,
    Ncr,
    RecordedValue,
    SignatureManifest,
    Step,
    Traveler,
)

FONT_DIR = Path(__file__).parent / "fonts"
FAMILY = "DejaVuSansCondensed"
ATTACHMENT = "as-built.json"
KIND_NAMES = {
    ItemKind.MEASUREMENT: "measurement",
    ItemKind.PASS_FAIL: "pass / fail",
    ItemKind.TEXT: "text",
    ItemKind.TOOL: "tool scan",
    ItemKind.MATERIAL: "material scan",
    ItemKind.ACKNOWLEDGEMENT: "acknowledgement",
    ItemKind.PHOTO: "photo",
    ItemKind.FILE: "file",
}
HEADINGS = FontFace(emphasis="BOLD", fill_color=(225, 225, 225))
NO_DEVIATIONS = "None: no value on this traveler relied on a deviation."


Evidence = Callable[[str], bytes | None]
"""An evidence file's bytes by its SHA-256, or None when the file store lacks those bytes."""


def render(made: Printable, evidence: Evidence | None = None) -> bytes:
    """The whole record as PDF bytes, with each evidence file `evidence` gives attached."""
    pdf = RecordPdf(made, evidence)
    pdf.add_page()
    write_record(pdf, made)
    desc = f"The as-built record; its SHA-256 is {made.sha256}"
    return _finish(pdf, made.json, ATTACHMENT, made.record.generated_at, desc)


def evidence_name(value: AsBuiltValue) -> str:
    """The attachment an evidence file rides in, by its hash: `evidence-3f2a9c01b7de.jpg` (its
    row names the step and item; the hash is short enough to print whole in a table cell)."""
    assert value.file is not None
    ext = {"image/png": "png", "image/jpeg": "jpg", "application/pdf": "pdf"}.get(
        value.file.media_type, "bin"
    )
    return f"evidence-{value.file.sha256[:12]}.{ext}"


def write_record(pdf: RecordPdf, made: Printable) -> None:
    """One traveler's as-built, from its title block on: alone, or as a task of an asset's history."""
    _title_block(pdf, made)
    _steps(pdf, made.record)
    _material(pdf, made.record)
    _tools(pdf, made.record)
    _ncrs(pdf, made.record)
    _holds(pdf, made.record)
    _labour(pdf, made.record)
    _andon(pdf, made.record)
    _revisions(pdf, made.record)
    _deviations(pdf, made.record)


def _finish(pdf: RecordPdf, data: bytes, name: str, made_at: datetime, desc: str) -> bytes:
    pdf.embed_file(
        bytes=data,
        basename=name,
        modification_date=made_at,
        mime_type="application/json",
        desc=desc,
    )
    return bytes(pdf.output())


def default_filename(made: Printable) -> str:
    """`<traveler>-as-built.pdf`, safe as a file name and in a header whatever the number holds."""
    number = re.sub(r"[^A-Za-z0-9._-]", "_", made.record.traveler.number)
    return f"{number}-as-built.pdf"


class RecordPdf(FPDF):
    """A4 pages whose header names the traveler and whose footer carries the record's digest."""

    def __init__(self, made: Printable, evidence: Evidence | None = None) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.made = made
        self.evidence = evidence
        self.digest = made.sha256
        self.add_font(FAMILY, "", FONT_DIR / "DejaVuSansCondensed.ttf")
        self.add_font(FAMILY, "B", FONT_DIR / "DejaVuSansCondensed-Bold.ttf")
        self.set_margins(14, 14, 14)
        self.set_auto_page_break(True, margin=20)
        trav = made.record.traveler
        self.set_title(f"As-built record {trav.number}")
        self.set_subject(f"Record SHA-256 {self.digest}")
        self.set_creator(f"station-kiosk {__version__}")
        self.set_lang("en")
        # The record's own time, not now: the same record makes the same document.
        self.set_creation_date(made.record.generated_at)
        self.set_font(FAMILY, size=8.5)

    def attach(self, value: AsBuiltValue) -> str:
        """Embed one evidence file, if this PDF carries them; what its row says of it."""
        if self.evidence is None or value.file is None:
            return ""
        data = self.evidence(value.file.sha256)
        if data is None:
            return "NOT ATTACHED: the file store lacks these bytes (see kiosk audit verify)"
        name = evidence_name(value)
        self.embed_file(
            bytes=data, basename=name, modification_date=value.entry.server_time,
            mime_type=value.file.media_type, desc=f"Evidence, SHA-256 {value.file.sha256}",
        )  # fmt: skip
        return f"attached as {name}"

    def text_of(self, text: str) -> str:
        """`text` as the font can draw it: a character it lacks is written as <U+XXXX>, so a
        name or value in another script is never silently dropped from the evidence."""
        font = self.fonts.get(FAMILY.lower())
        if not isinstance(font, TTFFont):
            return text
        cmap = font.cmap
        return "".join(c if c == "\n" or ord(c) in cmap else f"<U+{ord(c):04X}>" for c in text)

    def header(self) -> None:
        trav = self.made.record.traveler
        self.set_font(FAMILY, "B", 8)
        left = f"As-built record {trav.number} · {trav.part_number} {trav.part_name}"
        self.cell(self.epw * 0.8, 5, self.text_of(left))
        self.cell(self.epw * 0.2, 5, f"page {self.page_no()} of {{nb}}", align="R")
        self.ln(7)
        self.set_font(FAMILY, size=8.5)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(FAMILY, size=7)
        head = self.made.head
        self.cell(0, 4, f"Record SHA-256 {self.digest}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.cell(
            0,
            4,
            f"Made from audit chain head: record {head.seq}, hash {head.hash}",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )

    def paragraph(self, text: str, size: float = 8.5, style: str = "") -> None:
        self.set_font(FAMILY, style, size)
        self.multi_cell(
            0, size * 0.5, self.text_of(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        self.set_font(FAMILY, size=8.5)

    def grid(
        self, widths: Sequence[float], head: Sequence[str] | None, rows: Iterable[Sequence[str]]
    ) -> None:
        """A table; its heading row, if any, is repeated on each page it runs onto."""
        self.set_font(FAMILY, size=8)
        with self.table(
            col_widths=tuple(widths),
            first_row_as_headings=head is not None,
            headings_style=HEADINGS,
            line_height=3.8,
            text_align="LEFT",
            padding=0.8,
        ) as table:
            for row in ([head] if head else []) + list(rows):
                cells = table.row()
                for text in row:
                    cells.cell(self.text_of(text))
        self.ln(2)
        self.set_font(FAMILY, size=8.5)


# --- sections -----------------------------------------------------------------------------------


def _section(pdf: RecordPdf, title: str) -> None:
    pdf.ln(2)
    pdf.set_font(FAMILY, "B", 11)
    pdf.cell(0, 7, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FAMILY, size=8.5)


def _title_block(pdf: RecordPdf, made: Printable) -> None:
    trav, head = made.record.traveler, made.head
    pdf.set_font(FAMILY, "B", 15)
    pdf.cell(
        0, 9, pdf.text_of(f"As-built record {trav.number}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    sealed = (
        f"record {head.checkpoint.seq}, signed by the server at {_when(head.checkpoint.server_time)}"
        if head.checkpoint
        else "none yet"
    )
    identity = ", ".join(
        part
        for part in (trav.serial and f"serial {trav.serial}", trav.lot and f"lot {trav.lot}")
        if part
    )
    rows = [
        ("Work order", trav.work_order),
        ("Part", f"{trav.part_number} {trav.part_name}"),
        *_asset_rows(trav),
        ("Serial / lot", identity or "—"),
        ("Status", _status(trav)),
        ("Record made", _when(made.record.generated_at)),
        ("Record SHA-256", made.sha256),
        ("Audit chain head", f"record {head.seq}, hash {head.hash}"),
        ("Latest signed checkpoint", sealed),
    ]
    pdf.grid((24, 76), None, rows)
    pdf.paragraph(
        "The SHA-256 is that of the record's canonical JSON (keys sorted, 2-space indent, UTF-8), "
        f"attached to this PDF as {ATTACHMENT}: `pdfdetach -saveall` and `sha256sum {ATTACHMENT}` "
        "check it. `kiosk export as-built --format json` writes the same form. The audit chain head "
        "is the last audit record when this record was read; `kiosk audit verify` proves the chain "
        "up to it.",
        size=7.5,
    )


def _status(trav: Traveler) -> str:
    """Scrapped or returned says by which NCR, so no one reads the record as a finished unit."""
    if trav.status not in rules.ENDED_WORDS:
        return _words(trav.status.value)
    ncr = next((n for n in trav.ncrs if n.disposition in rules.ENDING), None)
    by = f" by {ncr.number} ({_words(ncr.disposition.value)})" if ncr and ncr.disposition else ""
    return f"{rules.ENDED_WORDS[trav.status].upper()}{by}: nothing more was recorded on it"


def _steps(pdf: RecordPdf, record: AsBuilt) -> None:
    _section(pdf, "Steps")
    operations = {op.number: op for op in record.traveler.operations}
    shown = None
    for step in record.traveler.steps:
        op = operations.get(step.number.split(".")[0])
        if op is not None and op is not shown:
            pdf.paragraph(
                f"Operation {op.number} {op.name} · work center {op.work_center}", 9.5, "B"
            )
            shown = op
        _step(pdf, step, [v for v in record.values if v.step == step.number])


def _step(pdf: RecordPdf, step: Step, values: list[AsBuiltValue]) -> None:
    inspection = " · inspection: second signer required" if step.inspection else ""
    if step.certification:
        inspection += f" · needs certification {step.certification}"
    pdf.paragraph(
        f"Step {step.number} {step.title} · rev {step.revision}{inspection} · {_words(step.status.value)}",
        9,
        "B",
    )
    pdf.paragraph(step.instructions, 7.5)
    if step.documents:  # the drawings at the revisions the step showed, with their files' hashes
        pdf.paragraph(
            "\n".join(
                f"Document {d.number} rev {d.revision} {d.title} · SHA-256 {d.sha256}"
                for d in step.documents
            ),
            7,
        )
    rows = [row for item in step.items for row in _item_rows(item, values, pdf.attach)]
    if rows:
        pdf.grid(
            (32, 28, 30, 24, 68),
            ("Item", "Limits", "Value", "Verdict", "Recorded"),
            rows,
        )
    signatures = [_manifest(sig) for sig in step.signatures] + _voided(step)
    pdf.paragraph("\n".join(signatures) if signatures else "Not signed.", 8)
    pdf.ln(1.5)


def _item_rows(
    item: DataItem, values: list[AsBuiltValue], attach: Callable[[AsBuiltValue], str]
) -> list[Sequence[str]]:
    mine = [v.entry for v in values if v.item == item.label]
    files = {v.entry.id: v.file for v in values if v.item == item.label and v.file is not None}
    label = item.label if item.required else f"{item.label} (optional)"
    limits = _limits(item)
    if not mine:
        return [(label, limits, "—", "not recorded", "")]
    current = item.latest.id if item.latest else None
    rows: list[Sequence[str]] = []
    corrected = {e.corrects for e in mine if e.corrects is not None}
    for entry in mine:
        shown = entry.value
        if entry.id in files:  # a photo or file: its type, size, whole SHA-256, attachment
            kept = files[entry.id]
            shown = f"{kept.media_type}, {kept.size} bytes, SHA-256 {kept.sha256}"
            if where := attach(next(v for v in values if v.entry.id == entry.id)):
                shown += f"\n{where}"
        value = shown if entry.id == current else f"{shown} (superseded)"
        value = _corrected(entry, value, corrected)
        if entry.deviation:
            value += f"\nunder {entry.deviation}"
        rows.append((label, limits, value, _verdict(item, entry), _recorded(entry)))
    return rows


def _material(pdf: RecordPdf, record: AsBuilt) -> None:
    _section(pdf, "Material consumed")
    rows = [
        (m.lot, m.part_number, m.step, m.recorded_by, _when(m.server_time)) for m in record.material
    ]
    _grid_or_none(
        pdf, (30, 30, 20, 40, 40), ("Lot", "Part number", "Step", "Recorded by", "When"), rows
    )


def _tools(pdf: RecordPdf, record: AsBuilt) -> None:
    _section(pdf, "Tools used")
    rows = [
        (
            u.tool,
            f"{u.calibration_due:%Y-%m-%d}",
            "✔ yes" if u.calibration_due >= u.server_time.astimezone(UTC).date() else "✘ NO",
            u.step,
            u.recorded_by,
            _when(u.server_time),
        )
        for u in record.tools
    ]
    _grid_or_none(
        pdf,
        (24, 26, 26, 16, 34, 34),
        ("Tool", "Calibration due", "In calibration at use", "Step", "Recorded by", "When"),
        rows,
    )


def _ncrs(pdf: RecordPdf, record: AsBuilt) -> None:
    _section(pdf, "Nonconformances (NCRs)")
    ncrs = record.traveler.ncrs
    rows = [
        (
            n.number,
            n.step_number or "—",
            f"{n.defect_code} ×{n.quantity}",
            n.description,
            _words(n.disposition.value) if n.disposition else "open: not dispositioned",
            f"{n.raised_by}, {_when(n.raised_at)}",
        )
        for n in ncrs
    ]
    _grid_or_none(
        pdf,
        (18, 14, 18, 62, 30, 40),
        ("NCR", "Step", "Defect", "Description", "Disposition", "Raised"),
        rows,
    )
    signed = [line for n in ncrs for line in _disposition_lines(n)]
    if signed:
        pdf.paragraph("\n".join(signed), 8)


def _disposition_lines(ncr: Ncr) -> list[str]:
    """Why, what to do, who decided and who gave the second approval (or that it is missing)."""
    lines = []
    if ncr.rationale:
        lines.append(f"{ncr.number} rationale: {ncr.rationale}")
    if ncr.instructions:
        lines.append(f"{ncr.number} instructions: {ncr.instructions}")
    if ncr.disposition_signature:
        lines.append(f"{ncr.number}: {_manifest(ncr.disposition_signature)}")
    if ncr.approval_signature:
        lines.append(f"{ncr.number} second approval: {_manifest(ncr.approval_signature)}")
    elif ncr.status == "awaiting_approval":
        role = ncr.approval_role.value if ncr.approval_role else "second approver"
        lines.append(f"{ncr.number}: awaiting second approval ({role})")
    return lines


def _holds(pdf: RecordPdf, record: AsBuilt) -> None:
    _section(pdf, "Holds")
    if not record.holds:
        pdf.paragraph("None.")
    for n, hold in enumerate(record.holds, 1):
        ncr = (
            f" ({hold.ncr_number})"
            if hold.ncr_number and hold.ncr_number not in hold.reason
            else ""
        )
        released = (
            f"Released: {_manifest(hold.released)}"
            if hold.released
            else "Not released: the traveler is on hold."
        )
        pdf.paragraph(
            f"Hold {n}{ncr}: {hold.reason}. Placed by {hold.placed_by}, {_when(hold.placed_at)}.\n"
            f"{released}",
            8,
        )
        pdf.ln(1)


def _labour(pdf: RecordPdf, record: AsBuilt) -> None:
    _section(pdf, "Labour")
    rows = [
        (
            i.step,
            i.person,
            i.station,
            _when(i.started_at),
            _when(i.ended_at) if i.ended_at else "clocked on",
            _words(i.end_reason) if i.end_reason else "—",
            f"{i.minutes:.1f}",
        )
        for i in record.labour
    ]
    head = ("Step", "Person", "Station", "From", "To", "Ended by", "Minutes")
    _grid_or_none(pdf, (14, 32, 22, 36, 36, 22, 18), head, rows)
    if record.labour:
        total = sum(i.minutes for i in record.labour)
        pdf.paragraph(f"Total labour: {total:.1f} minutes.", 8)


def _andon(pdf: RecordPdf, record: AsBuilt) -> None:
    _section(pdf, "Help and stop requests")
    if not record.andon:
        pdf.paragraph("None.")
    for r in record.andon:
        answered = "open"
        if r.resolved_by and r.resolved_at:
            answered = f"resolved by {r.resolved_by}, {_when(r.resolved_at)}: {r.resolution}"
        elif r.acknowledged_by and r.acknowledged_at:
            answered = f"acknowledged by {r.acknowledged_by}, {_when(r.acknowledged_at)}"
        pdf.paragraph(
            f"{r.kind.upper()} on step {r.step}: {r.reason}. Raised by {r.raised_by} at "
            f"{r.station}, {_when(r.raised_at)}; {answered}.",
            8,
        )


def _revisions(pdf: RecordPdf, record: AsBuilt) -> None:
    """Each step shows the revision it is at (signed steps: the one they were done at); here,
    every engineering change its steps took and who acknowledged each redline."""
    _section(pdf, "Engineering changes")
    if not record.revisions:
        pdf.paragraph("None: every step is at the revision it was issued at.")
    for r in record.revisions:
        if not r.redline:
            taken = "Taken before the step was started"
        elif r.acknowledged_by and r.acknowledged_at:
            taken = f"Redline acknowledged by {r.acknowledged_by} at {r.station}, {_when(r.acknowledged_at)}"
        else:
            taken = "Redline NOT YET ACKNOWLEDGED"
        changes = "; ".join(r.changes) or "revision only"
        pdf.paragraph(
            f"{r.change} on step {r.step}: rev {r.old_revision} -> {r.new_revision}, issued "
            f"{_when(r.issued_at)}: {r.reason}. Changed: {changes}. {taken}.",
            8,
        )


def _deviations(pdf: RecordPdf, record: AsBuilt) -> None:
    """Each deviation a value relied on: what it allowed, why, its reach and its approvals."""
    _section(pdf, "Deviations")
    if not record.deviations:
        pdf.paragraph(NO_DEVIATIONS)
    for dev in record.deviations:
        approvals = "; ".join(_manifest(sig) for sig in dev.approvals) or "not approved"
        pdf.paragraph(
            f"{rules.deviation_text(dev)}. Why: {dev.reason} Raised by {dev.raised_by}, "
            f"{_when(dev.raised_at)}. Approved: {approvals}.",
            8,
        )


def _grid_or_none(
    pdf: RecordPdf, widths: Sequence[float], head: Sequence[str], rows: Sequence[Sequence[str]]
) -> None:
    if rows:
        pdf.grid(widths, head, rows)
    else:
        pdf.paragraph("None.")


# --- words --------------------------------------------------------------------------------------


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _words(value: str) -> str:
    return value.replace("_", " ")


def _num(value: float) -> str:
    """The shortest text that reads back as the same float: 12.69, not 12.6899999."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _limits(item: DataItem) -> str:
    if item.kind is not ItemKind.MEASUREMENT:
        return KIND_NAMES[item.kind]
    unit = f" {item.unit}" if item.unit else ""
    low, high, nominal = item.lower, item.upper, item.nominal
    if low is not None and high is not None:
        span = f"{_num(low)} – {_num(high)}{unit}"
        if nominal is None:
            return span
        below, above = (
            Decimal(repr(nominal)) - Decimal(repr(low)),
            Decimal(repr(high)) - Decimal(repr(nominal)),
        )
        if below == above:
            return f"{_num(nominal)} ± {below.normalize():f}{unit}\n({span})"
        return f"nominal {_num(nominal)}{unit}\n({span})"
    if low is not None:
        return f"≥ {_num(low)}{unit}"
    if high is not None:
        return f"≤ {_num(high)}{unit}"
    return f"nominal {_num(nominal)}{unit}" if nominal is not None else f"no limits{unit}"


def _verdict(item: DataItem, entry: RecordedValue) -> str:
    ncr = f"\n{item.ncr_number}" if entry.passed is False and item.ncr_number else ""
    if entry.passed is None:
        return "— (not judged)"
    if item.kind is ItemKind.MEASUREMENT:
        return ("✔ in tolerance" if entry.passed else "✘ OUT OF TOLERANCE") + ncr
    return ("✔ pass" if entry.passed else "✘ FAIL") + ncr


def _recorded(entry: RecordedValue) -> str:
    return f"{entry.recorded_by}, {_at(entry.server_time, entry.offline, entry.station_time)}, {entry.station}"


def _manifest(sig: SignatureManifest) -> str:
    """The signature manifestation of 21 CFR 11.50: printed name, date-time, meaning."""
    when = _at(sig.server_time, sig.offline, sig.station_time)
    return (
        f"Signed {sig.meaning.value.upper()} by {sig.printed_name}, {when}, station {sig.station}; "
        f"signed content SHA-256 {sig.content_hash}"
    )


def _at(server_time: datetime, offline: bool, station_time: datetime | None) -> str:
    """When it happened: for an action recorded offline, the station's time and the server's
    receipt, marked OFFLINE (the server's clock did not see it happen)."""
    if not offline:
        return _when(server_time)
    at = f"{_when(station_time)} station time, " if station_time else ""
    return f"OFFLINE: {at}received by the server {_when(server_time)}"


# --- corrections and voids --------------------------------------------------------------------------


def _corrected(entry: RecordedValue, value: str, corrected: set[str]) -> str:
    """A correction names what it corrected and why; the value it corrected says so."""
    if entry.corrects is not None:
        return f"{entry.value} (corrects {entry.corrects}: {entry.reason})"
    if value.endswith("(superseded)") and entry.value in corrected:
        return f"{entry.value} (corrected)"
    return value


def _voided(step: Step) -> list[str]:
    """Voided signatures stay in the record, marked void, with who voided them, when and why."""
    lines = []
    for sig in step.voided:
        by = sig.voided
        who = f" by {by.printed_name}, {_at(by.server_time, by.offline, by.station_time)}" if by else ""
        lines.append(f"VOID: {_manifest(sig)} -- voided{who}: {sig.void_reason}")
    return lines
# --- an asset's as-maintained record ------------------------------------------------------------

HISTORY_ATTACHMENT = "as-maintained.json"


def _asset_rows(trav: Traveler) -> list[tuple[str, str]]:
    """A maintenance task names its asset where a unit names its serial."""
    if trav.asset is None:
        return []
    asset = trav.asset
    return [
        ("Asset", f"{asset.id} ({asset.kind.value}) {asset.description}"),
        ("Task", trav.task or "—"),
    ]


def render_history(history: PrintableHistory) -> bytes:
    """The asset's summary, then each task's as-built exactly as `render` lays it out."""
    pdf = HistoryPdf(history)
    pdf.add_page()
    _asset_block(pdf, history)
    for made in history.tasks():
        pdf.made, pdf.on_task = made, True
        pdf.add_page()
        write_record(pdf, made)
    desc = f"The as-maintained record; its SHA-256 is {history.sha256}"
    return _finish(pdf, history.json, HISTORY_ATTACHMENT, history.record.generated_at, desc)


def history_filename(history: PrintableHistory) -> str:
    code = re.sub(r"[^A-Za-z0-9._-]", "_", history.record.asset.id)
    return f"{code}-history.pdf"


class HistoryPdf(RecordPdf):
    """The pages of every task of one asset; the footer carries the whole history's digest."""

    def __init__(self, history: PrintableHistory) -> None:
        super().__init__(history.tasks()[0])
        self.history = history
        self.digest = history.sha256
        self.on_task = False
        """Whether the pages being made are a task's (headed as its as-built's are)."""
        asset = history.record.asset
        self.set_title(f"As-maintained record {asset.id}")
        self.set_subject(f"Record SHA-256 {self.digest}")
        self.set_creation_date(history.record.generated_at)

    def header(self) -> None:
        if not self.on_task:
            asset = self.history.record.asset
            self.set_font(FAMILY, "B", 8)
            self.cell(self.epw * 0.8, 5, self.text_of(f"As-maintained record {asset.id}"))
            self.cell(self.epw * 0.2, 5, f"page {self.page_no()} of {{nb}}", align="R")
            self.ln(7)
            self.set_font(FAMILY, size=8.5)
            return
        super().header()


def _asset_block(pdf: HistoryPdf, history: PrintableHistory) -> None:
    record, head = history.record, history.head
    asset = record.asset
    pdf.set_font(FAMILY, "B", 15)
    pdf.cell(
        0, 9, pdf.text_of(f"As-maintained record {asset.id}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT
    )
    rows = [
        ("Asset", f"{asset.id} ({asset.kind.value})"),
        ("Description", asset.description),
        ("Tasks", str(len(record.tasks))),
        ("Record made", _when(record.generated_at)),
        ("Record SHA-256", history.sha256),
        ("Audit chain head", f"record {head.seq}, hash {head.hash}"),
    ]
    pdf.grid((24, 76), None, rows)
    _section(pdf, "Tasks, in the order imported")
    pdf.grid(
        (22, 18, 40, 20, 40),
        ("Task", "Traveler", "Work order", "Status", "Last signed"),
        [
            (
                task.traveler.task or "—",
                task.traveler.number,
                f"{task.traveler.work_order} {task.traveler.part_name}",
                _status(task.traveler),
                _last_signed(task),
            )
            for task in record.tasks
        ],
    )
    pdf.paragraph(
        f"Each task follows on its own pages as its as-built record. The SHA-256 above is that of "
        f"this whole record's canonical JSON, attached as {HISTORY_ATTACHMENT} (here in place of "
        "as-built.json); `kiosk export history "
        f"{asset.id} --format json` writes the same form. A task's own Record SHA-256 is that of "
        "its entry in the attachment's tasks, in the same canonical form.",
        size=7.5,
    )


def _last_signed(record: AsBuilt) -> str:
    signed = [s for step in record.traveler.steps for s in step.signatures]
    if not signed:
        return "—"
    last = max(signed, key=lambda s: s.server_time)
    return f"{last.printed_name}, {_when(last.server_time)}"
