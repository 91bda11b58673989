"""The printable as-built record, as an auditor gets it: `kiosk export as-built TRV --format pdf`
and `GET /api/v1/travelers/TRV/as-built.pdf`, read back with the real poppler tools (pdftoppm draws
every page, pdftotext reads them, pdfdetach takes out the attached JSON)."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from kiosk.server import pdf, printable
from kiosk.server import schema as t
from kiosk.server.service import ExecutionService
from kiosk.wire import (
    ApproveDisposition,
    AsBuilt,
    Disposition,
    DispositionNcr,
    Meaning,
    PlaceHold,
    RaiseNcr,
    ReleaseHold,
)
from tests.helpers import ROOT, ServiceFloor, creds, item_of, needs_tool, step_of

if TYPE_CHECKING:
    from tests.conftest import LiveServer, Plant

pytestmark = pytest.mark.slow  # the real command and the real poppler tools, as child processes

POPPLER = ("pdftoppm", "pdftotext", "pdfdetach", "pdfinfo")
HEX64 = re.compile(r"[0-9a-f]{64}")


@pytest.fixture(autouse=True)
def _poppler() -> None:
    needs_tool(*POPPLER, package="poppler-utils")


def kiosk(plant: Plant, cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The real `kiosk` on the test's plant; bytes, since a PDF may come on standard output."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kiosk",
            *args,
            "--database-url",
            plant.database_url,
            "--secret-file",
            str(plant.secret_file),
        ],
        capture_output=True,
        cwd=cwd,
        env={**os.environ, "KIOSK_DATA_DIR": str(cwd), "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )


def pages_text(path: Path) -> list[str]:
    """pdftotext's reading of each page, whitespace folded: a table cell that wraps reads whole."""
    out = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, check=True).stdout
    pages = out.decode("utf-8").split("\f")[:-1]  # pdftotext ends every page with a form feed
    return [" ".join(page.split()) for page in pages]


def page_count(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, check=True, text=True)
    return int(re.search(r"^Pages:\s+(\d+)$", info.stdout, re.M).group(1))  # type: ignore[union-attr]


def attachment(path: Path, tmp_path: Path) -> bytes:
    """The files attached to the PDF: exactly one, the record's canonical JSON."""
    out = Path(tempfile.mkdtemp(dir=tmp_path))
    subprocess.run(["pdfdetach", "-saveall", "-o", str(out), str(path)], check=True)
    assert [p.name for p in out.iterdir()] == [pdf.ATTACHMENT]
    return (out / pdf.ATTACHMENT).read_bytes()


def work_trv_1001(service: ExecutionService) -> None:
    """TRV-1001 all the way: a bore out of tolerance with its NCR and hold, a value and a signature
    recorded offline, an inspector's buy-off, a supervisor's hold and its release."""
    floor = ServiceFloor(service)
    ids = floor.ids
    floor.work("ana", "TRV-1001", "10.1")
    trav = floor.do(floor.start("ana", service.traveler("TRV-1001"), "10.2")).traveler
    trav = floor.do(floor.record("ana", trav, "10.2", "Press tool", "TL-0003")).traveler
    trav = floor.do(floor.record("ana", trav, "10.2", "Bushing bore diameter", "12.75")).traveler
    bore = item_of(step_of(trav, "10.2"), "Bushing bore diameter")
    trav = floor.do(
        RaiseNcr(
            actor_id=ids["ana"],
            traveler="TRV-1001",
            item_id=bore.id,
            description="Bore 12.75 mm, over 12.71",
            defect_code="DIM",
        )
    ).traveler
    floor.do(
        DispositionNcr(
            actor_id=ids["sam"],
            traveler="TRV-1001",
            ncr=trav.ncrs[0].number,
            disposition=Disposition.USE_AS_IS,
            rationale="Bore within the bushing's press-fit allowance",
            credentials=creds("sam"),
        )
    )
    floor.do(
        ApproveDisposition(
            actor_id=ids["sam"], traveler="TRV-1001", ncr=trav.ncrs[0].number, credentials=creds("raj")
        )
    )
    floor.do(ReleaseHold(actor_id=ids["sam"], traveler="TRV-1001", credentials=creds("sam")))
    trav = service.traveler("TRV-1001")
    trav = floor.do(floor.record("ana", trav, "10.2", "Bushing bore diameter", "12.702")).traveler
    floor.do(floor.sign("ana", trav, "10.2"))

    # Step 20.1 as a station records it when the server has stopped answering.
    away = datetime.now(UTC) - timedelta(minutes=7)
    trav = floor.do(floor.start("ana", service.traveler("TRV-1001"), "20.1")).traveler
    trav = floor.do(floor.record("ana", trav, "20.1", "Torque wrench", "TL-0001")).traveler
    offline = {"offline": True, "station_time": away}
    trav = floor.do(
        floor.record("ana", trav, "20.1", "Fastener torque", "12.6", **offline)
    ).traveler
    trav = floor.do(floor.record("ana", trav, "20.1", "Torque stripe applied", "pass")).traveler
    floor.do(floor.sign("ana", trav, "20.1").model_copy(update=offline))

    floor.work("ana", "TRV-1001", "20.2")
    floor.do(
        floor.sign("ana", service.traveler("TRV-1001"), "20.2", Meaning.VERIFIED, signer="ivy")
    )
    floor.do(
        PlaceHold(actor_id=ids["sam"], traveler="TRV-1001", reason="Customer source inspection")
    )
    floor.do(ReleaseHold(actor_id=ids["sam"], traveler="TRV-1001", credentials=creds("sam")))
    floor.work("ana", "TRV-1001", "30.1")


def signers(record: AsBuilt) -> set[str]:
    trav = record.traveler
    names = {g.printed_name for s in trav.steps for g in s.signatures}
    names |= {n.disposition_signature.printed_name for n in trav.ncrs if n.disposition_signature}
    names |= {h.released.printed_name for h in record.holds if h.released}
    return names


def test_the_pdf_has_every_step_value_and_signer_and_the_digest_on_every_page(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    work_trv_1001(service)
    done = kiosk(plant, tmp_path, "export", "as-built", "trv-1001", "--format", "pdf")
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    wrote = re.fullmatch(
        rb"wrote TRV-1001-as-built.pdf: as-built record of TRV-1001, SHA-256 ([0-9a-f]{64})\n",
        done.stdout,
    )
    assert wrote, done.stdout
    digest = wrote.group(1).decode()
    made = tmp_path / "TRV-1001-as-built.pdf"

    # The attached JSON is the record the PDF was made from: its sha256sum is the printed digest.
    data = attachment(made, tmp_path)
    assert hashlib.sha256(data).hexdigest() == digest
    record = AsBuilt.model_validate_json(data)
    assert printable.canonical_json(record) == data

    # Every page draws (pdftoppm), and carries the traveler, its page number and the digest.
    count = page_count(made)
    assert count >= 2
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(made), str(tmp_path / "page")], check=True)
    drawn = sorted(tmp_path.glob("page-*.png"))
    assert len(drawn) == count
    for png in drawn:
        with Image.open(png) as image:
            darkest, _ = image.convert("L").getextrema()
            assert isinstance(darkest, int) and darkest < 100  # ink, not a blank sheet
    texts = pages_text(made)
    assert len(texts) == count
    with service.store.begin() as conn:
        head = conn.execute(select(t.audit_head.c.seq, t.audit_head.c.hash)).one()
    chain = f"Made from audit chain head: record {head.seq}, hash {bytes(head.hash).hex()}"
    for number, text in enumerate(texts, 1):
        assert "As-built record TRV-1001 · 7741-220" in text, number
        assert f"page {number} of {count}" in text
        assert f"Record SHA-256 {digest}" in text
        assert chain in text

    whole = " ".join(texts)
    trav = record.traveler
    assert [s.number for s in trav.steps] == ["10.1", "10.2", "20.1", "20.2", "30.1"]
    for step in trav.steps:
        assert f"Step {step.number} {step.title} · rev {step.revision}" in whole
    for value in record.values:
        assert value.entry.value in whole, value
    assert signers(record) == {"Ana Ortiz", "Ivy Chen", "Sam Patel"}
    for name in signers(record):
        assert f"by {name}, " in whole
    for step in trav.steps:
        for sig in step.signatures:
            assert f"Signed {sig.meaning.value.upper()} by {sig.printed_name}" in whole
            assert f"signed content SHA-256 {sig.content_hash}" in whole

    # Limits and verdicts, the superseded value, the NCR it raised.
    assert "12.7 ± 0.01 mm (12.69 – 12.71 mm)" in whole
    assert "12.75 (superseded) ✘ OUT OF TOLERANCE NCR-0001" in whole
    assert "12.702 ✔ in tolerance" in whole
    assert "✔ pass" in whole

    # Offline: the value and the signature recorded while the server was away say so.
    offline_value = next(v.entry for v in record.values if v.item == "Fastener torque")
    (offline_sig,) = step_of(trav, "20.1").signatures
    assert offline_value.offline and offline_sig.offline
    assert whole.count("OFFLINE: ") == 2
    assert f"OFFLINE: {offline_sig.station_time:%Y-%m-%d %H:%M:%S} UTC station time" in whole

    # Material, tools with calibration, NCRs, holds, and the deviations section left empty.
    assert "LOT-A100 7741-221 10.1 Ana Ortiz" in whole
    for use in record.tools:
        assert f"{use.tool} {use.calibration_due:%Y-%m-%d} ✔ yes {use.step}" in whole
    assert "NCR-0001 10.2 DIM ×1 Bore 12.75 mm, over 12.71 use as is" in whole
    assert "NCR-0001: Signed APPROVED by Sam Patel" in whole
    assert "Customer source inspection. Placed by Sam Patel" in whole
    assert whole.count("Released: Signed APPROVED by Sam Patel") == 2
    assert (
        "Deviations None: no value on this traveler relied on a deviation." in whole
    )


def test_a_long_traveler_carries_the_digest_on_each_of_its_pages(
    plant: Plant, tmp_path: Path
) -> None:
    """TRV-2000 has 200 steps; standard output is the PDF alone (`--output -`)."""
    done = kiosk(
        plant, tmp_path, "export", "as-built", "TRV-2000", "--format", "pdf", "--output", "-"
    )
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    assert done.stdout.startswith(b"%PDF-")
    made = tmp_path / "long.pdf"
    made.write_bytes(done.stdout)
    digest = hashlib.sha256(attachment(made, tmp_path)).hexdigest()
    texts = pages_text(made)
    assert len(texts) == page_count(made) > 10
    assert all(f"Record SHA-256 {digest}" in text for text in texts)
    whole = " ".join(texts)
    steps = AsBuilt.model_validate_json(attachment(made, tmp_path)).traveler.steps
    assert len(steps) == 200
    assert all(f"Step {step.number} {step.title}" in whole for step in steps)
    assert not (tmp_path / "-").exists()  # `-` is standard output, never a file of that name


def test_the_json_export_is_the_canonical_record_whose_sha256_the_pdf_prints(
    plant: Plant, tmp_path: Path
) -> None:
    piped = kiosk(plant, tmp_path, "export", "as-built", "TRV-1002")
    assert piped.returncode == 0 and piped.stderr == b""
    record = AsBuilt.model_validate_json(piped.stdout)
    assert piped.stdout == printable.canonical_json(record)  # sorted keys, indent 2, final newline
    assert list(json.loads(piped.stdout)) == sorted(json.loads(piped.stdout))

    done = kiosk(plant, tmp_path, "export", "as-built", "TRV-1002", "--output", "rec.json")
    assert done.returncode == 0, done.stderr
    digest = hashlib.sha256((tmp_path / "rec.json").read_bytes()).hexdigest()
    assert done.stdout.decode() == (
        f"wrote rec.json: as-built record of TRV-1002, SHA-256 {digest}\n"
    )
    assert (
        printable.record_sha256(AsBuilt.model_validate_json((tmp_path / "rec.json").read_bytes()))
        == digest
    )


def test_bad_output_and_unknown_travelers_are_one_line_errors(plant: Plant, tmp_path: Path) -> None:
    nowhere = tmp_path / "no" / "such" / "dir" / "x.pdf"
    done = kiosk(
        plant,
        tmp_path,
        "export",
        "as-built",
        "TRV-1001",
        "--format",
        "pdf",
        "--output",
        str(nowhere),
    )
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr.decode() == f"error: {nowhere}: No such file or directory\n"

    done = kiosk(plant, tmp_path, "export", "as-built", "TRV-9999", "--format", "pdf")
    assert (done.returncode, done.stdout) == (3, b"")
    assert done.stderr == b"error: Traveler TRV-9999 was not found.\n"
    assert not list(tmp_path.glob("*.pdf"))

    done = kiosk(plant, tmp_path, "export", "as-built", "TRV-1001", "--format", "docx")
    assert done.returncode == 2 and b"invalid choice: 'docx'" in done.stderr


def test_a_character_the_font_lacks_is_printed_as_its_code_point(
    service: ExecutionService, tmp_path: Path
) -> None:
    """DejaVu has no CJK: a name in it is written <U+XXXX>, never silently left out."""
    with service.store.begin() as conn:
        made = printable.read(conn, "TRV-1002")
    (first, *rest) = made.record.values
    entry = first.entry.model_copy(update={"value": "LOT-名A"})
    record = made.record.model_copy(
        update={"values": (first.model_copy(update={"entry": entry}), *rest)}
    )
    out = tmp_path / "cjk.pdf"
    out.write_bytes(pdf.render(printable.Printable(record=record, head=made.head)))
    assert "LOT-<U+540D>A" in " ".join(pages_text(out))


def test_the_pdf_route_needs_a_station_and_sends_the_digest(
    live_server: LiveServer, tmp_path: Path
) -> None:
    url = f"{live_server.url}/api/v1/travelers/trv-1002/as-built.pdf"
    token = live_server.token()
    answer = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"] == 'inline; filename="TRV-1002-as-built.pdf"'
    digest = answer.headers["x-record-sha256"]
    assert HEX64.fullmatch(digest)
    made = tmp_path / "route.pdf"
    made.write_bytes(answer.content)
    assert hashlib.sha256(attachment(made, tmp_path)).hexdigest() == digest
    assert all(f"Record SHA-256 {digest}" in text for text in pages_text(made))

    refused = httpx.get(url, timeout=30)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    missing = httpx.get(
        url.replace("trv-1002", "TRV-9999"),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert (
        missing.status_code == 404
        and missing.json()["detail"] == "Traveler TRV-9999 was not found."
    )

    documented = httpx.get(f"{live_server.url}/openapi.json", timeout=30).json()
    operation = documented["paths"]["/api/v1/travelers/{number}/as-built.pdf"]["get"]
    assert list(operation["responses"]["200"]["content"]) == ["application/pdf"]
    assert operation["responses"]["401"]["content"].keys() == {"application/problem+json"}


def test_a_pdf_is_not_poured_onto_a_terminal(plant: Plant, tmp_path: Path) -> None:
    master, slave = pty.openpty()
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "kiosk",
                "export",
                "as-built",
                "TRV-1001",
                "--format",
                "pdf",
                "--output",
                "-",
                "--database-url",
                plant.database_url,
            ],
            stdout=slave,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            env={**os.environ, "KIOSK_DATA_DIR": str(tmp_path)},
            timeout=120,
            check=False,
        )
    finally:
        os.close(slave)
        os.close(master)
    assert done.returncode == 2
    assert done.stderr == (
        b"error: not writing a PDF to a terminal: redirect standard output or give --output FILE\n"
    )
