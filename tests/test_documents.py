"""Documents at revision on the real server: `kiosk document add` and `list` run in process on
the test's own copy of the demo plant (SQLite, and PostgreSQL when configured), the integration
route and the station routes over loopback, the import's references, and `audit verify`
catching an edited document row, a swapped file and a step whose drawing changed under its
signatures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import select, update

from kiosk import cli
from kiosk.client import BackendUnreachable, BadResponse, NotFound
from kiosk.client.api import ExecutionClient
from kiosk.client.documents import DocumentCache
from kiosk.rules import Refusal
from kiosk.server import audit, demo_drawings, documents, integration
from kiosk.server import schema as t
from kiosk.server.app import ServerConfig
from kiosk.server.service import ExecutionService
from kiosk.wire import DocumentRef, Scope
from tests.helpers import count, step_of

if TYPE_CHECKING:
    from tests.conftest import LiveServer, Plant

PNG = demo_drawings.bracket_png("C")
PDF = demo_drawings.bushing_pdf()


@pytest.fixture(autouse=True)
def _data_dir_beside_the_plant(plant: Plant, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's data directory (its file store) is the plant's, as on a server host."""
    monkeypatch.setenv("KIOSK_DATA_DIR", str(plant.secret_file.parent))


def run(plant: Plant, *args: str) -> int:
    where = ["--database-url", plant.database_url, "--secret-file", str(plant.secret_file)]
    return cli.main([*args, *where])


def kept_files(plant: Plant) -> list[str]:
    root = plant.secret_file.with_name("files")
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def state(service: ExecutionService, plant: Plant) -> tuple[Any, ...]:
    """What a refused addition must leave as it was: rows, audit records, kept files."""
    return (count(service, t.documents), count(service, t.audit_log), kept_files(plant))


def verdict(service: ExecutionService, plant: Plant) -> audit.Verdict:
    files = ServerConfig(plant.database_url, plant.secret_file).file_store()
    with service.store.begin() as conn:
        return audit.verify(conn, files=files)


def test_a_document_is_added_listed_and_superseded_by_its_next_revision(
    plant: Plant, service: ExecutionService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    drawing = tmp_path / "bracket.png"
    drawing.write_bytes(demo_drawings.bracket_png("B") + b"\x00")  # other bytes than the demo's
    code = run(plant, "document", "add", str(drawing), "--number", "dwg-9000-001",
               "--revision", "a", "--title", "Hinge fitting")  # fmt: skip
    assert code == 0 and "added DWG-9000-001 rev A 'Hinge fitting'" in capsys.readouterr().out
    again = run(plant, "document", "add", str(drawing), "--number", "DWG-9000-001",
                "--revision", "A", "--title", "Hinge fitting")  # fmt: skip
    assert again == 0 and "already there, unchanged" in capsys.readouterr().out
    drawing.write_bytes(PNG)
    assert run(plant, "document", "add", str(drawing), "--number", "DWG-9000-001",
               "--revision", "B", "--title", "Hinge fitting") == 0  # fmt: skip
    capsys.readouterr()
    assert run(plant, "document", "list", "--json") == 0
    listed = {(d["number"], d["revision"]): d for d in json.loads(capsys.readouterr().out)}
    assert listed[("DWG-9000-001", "A")]["superseded_by"] == "B"
    assert listed[("DWG-9000-001", "B")]["superseded_by"] is None
    assert listed[("DWG-8810-011", "B")]["superseded_by"] == "C"  # the demo's redline
    assert listed[("SPEC-NAS75-05", "A")]["media_type"] == "application/pdf"
    assert run(plant, "document", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("DWG-9000-001" in line and "superseded by B" in line for line in lines)
    assert verdict(service, plant).ok


@pytest.mark.parametrize(
    ("content", "args", "says", "exit_code"),
    [
        (b"MZ\x90\x00 not a drawing", (), "PDF, PNG, SVG only", 2),
        (b"", (), "The file is empty", 2),
        (PNG, ("--number", "BAD/NUMBER"), "number", 2),
        (PNG + b"\x00", ("--number", "DWG-8810-011", "--revision", "C"), "a new revision", 1),
    ],
    ids=["wrong-type", "empty", "bad-number", "changed-revision"],
)
def test_what_the_plant_cannot_keep_is_refused_and_nothing_changes(
    plant: Plant,
    service: ExecutionService,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    args: tuple[str, ...],
    says: str,
    exit_code: int,
) -> None:
    before = state(service, plant)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(content)
    given = {"--number": "DWG-1", "--revision": "A", "--title": "T"}
    given.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [x for pair in given.items() for x in pair]
    assert run(plant, "document", "add", str(upload), *flat) == exit_code
    assert says in capsys.readouterr().err
    assert state(service, plant) == before


def test_an_oversized_file_is_refused_with_the_limit(
    plant: Plant, service: ExecutionService, tmp_path: Path
) -> None:
    files = ServerConfig(plant.database_url, plant.secret_file, max_file_bytes=1024).file_store()
    before = state(service, plant)
    spec = documents.DocumentSpec(number="DWG-2", revision="A", title="Big")
    with pytest.raises(Refusal, match="the limit is 1 kB"), service.store.begin() as conn:
        documents.add(conn, files, spec, PNG, actor=None, now=datetime.now(UTC))
    assert state(service, plant) == before


def _import(**step: Any) -> dict[str, Any]:
    step = {"number": "10.1", "title": "Fit", "instructions": "Fit it.", **step}
    routing = [{"number": "10", "name": "Fit", "work_center": "ASSEMBLY", "steps": [step]}]
    order = {"number": "WO-8001", "part_number": "8001", "part_name": "Fitting", "quantity": 1,
             "travelers": [{"number": "TRV-8001"}], "routing": routing}  # fmt: skip
    return {"work_orders": [order]}


def test_steps_name_documents_in_the_import_and_unknown_ones_are_refused_whole(
    live_server: LiveServer, service: ExecutionService
) -> None:
    key = integration.add_account(
        service.store, service.secret, "PLM", (Scope.IMPORT,), datetime.now(UTC)
    )
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=live_server.url, headers=auth, timeout=30) as http:
        before = (count(service, t.steps), count(service, t.audit_log))
        for refs, says in (
            ([{"number": "DWG-0000-404", "revision": "A"}], "no document DWG-0000-404"),
            (
                [{"number": "DWG-8810-011", "revision": "D"}],
                "no revision D of document DWG-8810-011 (it has B, C)",
            ),  # fmt: skip
        ):
            refused = http.post("/api/v1/import", json=_import(documents=refs))
            assert refused.status_code == 422, refused.text
            assert refused.json()["rule"] == "document_unknown"
            assert f"step 10.1: The plant has {says}" in refused.json()["detail"]
            assert (count(service, t.steps), count(service, t.audit_log)) == before
        refs = [
            {"number": "dwg-8810-011", "revision": "c"},
            {"number": "SPEC-NAS75-05", "revision": "A"},
        ]
        done = http.post("/api/v1/import", json=_import(documents=refs))
        assert done.status_code == 200, done.text
        added = http.post(
            "/api/v1/documents", params={"number": "DWG-8001", "revision": "A", "title": "Fitting"},
            content=PDF, headers={"Content-Type": "application/pdf"},
        )  # fmt: skip
        assert added.status_code == 201 and added.json()["media_type"] == "application/pdf"
        wrong = http.post(
            "/api/v1/documents", params={"number": "DWG-8002", "revision": "A", "title": "T"},
            content=b"GIF89a", headers={"Content-Type": "image/gif"},
        )  # fmt: skip
        assert wrong.status_code == 415 and wrong.json()["rule"] == "file_type_refused"
        station = {"Authorization": f"Bearer {live_server.token()}", "Content-Type": "image/png"}
        as_station = http.post(
            "/api/v1/documents", params={"number": "DWG-8003", "revision": "A", "title": "T"},
            content=PNG, headers=station,
        )  # fmt: skip
        assert as_station.status_code == 401  # a station token is no service account key
    step = service.traveler("TRV-8001").steps[0]
    assert [(d.number, d.revision, d.title) for d in step.documents] == [
        ("DWG-8810-011", "C", "Actuator bracket assembly"),
        ("SPEC-NAS75-05", "A", "Bushing installation"),
    ]


async def test_a_station_reads_a_document_and_keeps_a_checked_copy_for_offline(
    live_server: LiveServer, client: ExecutionClient, tmp_path: Path
) -> None:
    doc = step_of(live_server.service.traveler("TRV-1001"), "10.1").documents[0]
    assert (doc.number, doc.revision, doc.superseded_by) == ("DWG-8810-011", "C", None)
    assert await client.document("DWG-8810-011", "C") == doc
    old = await client.document("dwg-8810-011", "b")
    assert old.superseded_by == "C"
    with pytest.raises(NotFound, match=r"no revision E of document DWG-8810-011 \(it has B, C\)"):
        await client.document("DWG-8810-011", "E")
    cache = DocumentCache(tmp_path / "documents")
    assert await cache.read(client, doc) == PNG
    async with ExecutionClient("http://127.0.0.1:9", None) as offline:  # nothing listens there
        assert await cache.read(offline, doc) == PNG  # the kept copy, checked
        (tmp_path / "documents" / doc.sha256).write_bytes(PNG + b"x")  # a copy changed on disk
        with pytest.raises(BackendUnreachable, match="not available offline"):
            await cache.read(offline, doc)
    forged = doc.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(BadResponse, match="not DWG-8810-011 rev C"):
        await cache.read(client, forged)  # bytes that are not the document's are never shown
    async with httpx.AsyncClient(base_url=live_server.url) as anonymous:
        no_token = await anonymous.get("/api/v1/documents/DWG-8810-011/C/file")
        assert no_token.status_code == 401


async def test_the_tablet_link_opens_one_file_until_it_expires_and_holds_no_token(
    live_server: LiveServer, client: ExecutionClient
) -> None:
    link = await client.document_link("SPEC-NAS75-05", "A")
    assert live_server.token() not in link.url and "until=" in link.url
    assert link.expires_at - datetime.now(UTC) <= documents.LINK_LIFETIME
    async with httpx.AsyncClient() as tablet:
        opened = await tablet.get(link.url)
        assert opened.status_code == 200 and opened.content == PDF
        assert opened.headers["content-type"] == "application/pdf"
        assert "sandbox" in opened.headers["content-security-policy"]
        other = link.url.replace("SPEC-NAS75-05/A", "DWG-8810-011/C")
        tampered = link.url[:-1] + ("0" if link.url[-1] != "0" else "1")
        for bad in (other, tampered):
            refused = await tablet.get(bad)
            assert refused.status_code == 403 and refused.json()["rule"] == "document_link_invalid"
    svc = live_server.service
    with svc.store.read() as conn:
        doc = documents.find(conn, "SPEC-NAS75-05", "A")
    path, _ = documents.link_path(svc.secret, doc, datetime.now(UTC) - timedelta(minutes=11))
    async with httpx.AsyncClient(base_url=live_server.url) as tablet:
        assert (await tablet.get(path)).status_code == 403  # expired


def test_verify_names_an_edited_document_row_and_a_swapped_file(
    plant: Plant, service: ExecutionService
) -> None:
    assert verdict(service, plant).ok
    with service.store.begin() as conn:
        row = conn.execute(select(t.documents).where(t.documents.c.revision == "C")).one()
    path = plant.secret_file.with_name("files") / row.sha256[:2] / row.sha256
    path.write_bytes(demo_drawings.bracket_png("B"))  # the superseded drawing in C's place
    found = verdict(service, plant)
    assert not found.ok and "DWG-8810-011 rev C" in str(found) and "swapped" in str(found)
    path.write_bytes(PNG)
    with service.store.begin() as conn:
        conn.execute(update(t.documents).where(t.documents.c.id == row.id).values(title="Other"))
    found = verdict(service, plant)
    assert not found.ok and "document" in str(found) and "title is 'Other'" in str(found)


def test_a_signed_steps_drawing_changed_in_place_breaks_its_signature(
    plant: Plant, service: ExecutionService
) -> None:
    """TRV-1002's 10.1 was signed showing DWG-8810-011 rev C: pointing the step at rev B in the
    database (the redline undone behind the server's back) no longer matches what was signed."""
    step = step_of(service.traveler("TRV-1002"), "10.1")
    assert step.signatures and [d.revision for d in step.documents] == ["C"]
    with service.store.begin() as conn:
        conn.execute(
            update(t.steps)
            .where(t.steps.c.id == step.id)
            .values(
                documents=documents.refs_json([DocumentRef(number="DWG-8810-011", revision="B")])
            )
        )
    found = verdict(service, plant)
    assert not found.ok and "TRV-1002 step 10.1" in str(found) and "no longer matches" in str(found)


def test_the_as_built_names_each_steps_documents_in_json_and_pdf(service: ExecutionService) -> None:
    import pypdfium2

    from kiosk.server import pdf, printable

    with service.store.begin() as conn:
        made = printable.read(conn, "TRV-1002")
    signed = step_of(made.record.traveler, "10.2")
    assert [d.number for d in signed.documents] == ["SPEC-NAS75-05", "DWG-8810-011"]
    assert '"sha256"' in made.record.model_dump_json()
    printed = pypdfium2.PdfDocument(pdf.render(made))
    text = " ".join(page.get_textpage().get_text_range() for page in printed)
    assert (
        f"Document DWG-8810-011 rev C Actuator bracket assembly · SHA-256 {signed.documents[1].sha256}"
        in " ".join(text.split())
    )
