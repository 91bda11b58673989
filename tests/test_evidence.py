"""Photos and files as evidence, over the real server: a one-use upload link issued on the
person's session, the phone's page and its upload; every bad upload refused with its status
and a sentence and nothing recorded; a swapped file caught by `kiosk audit verify`."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from kiosk.client import ExecutionClient
from kiosk.server import audit, evidence
from kiosk.server import schema as t
from kiosk.server.files import FileStore
from kiosk.server.service import ExecutionService
from kiosk.wire import EvidenceFile, RequestUpload, UploadLink, UploadStatus
from tests.conftest import LiveServer, Plant
from tests.helpers import ServiceFloor, item_of, kiosk, record_count, step_of
from tests.test_as_built_pdf import pages_text

pytestmark = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)

TRAVELER, STEP, PHOTO, FILE = (
    "TRV-4001",
    "10.1",
    "Photo of torque stripe",
    "Certificate of conformance",
)


def png(size: int = 8) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 40, 40)).save(out, "PNG")
    return out.getvalue()


@dataclass
class Desk:
    """Ana signed in at DEMO-01 with TRV-4001's step 10.1 started, and an HTTP client."""

    server: LiveServer
    floor: ServiceFloor
    http: httpx.Client

    @property
    def service(self) -> ExecutionService:
        return self.server.service

    def item_id(self, label: str = PHOTO) -> int:
        return item_of(step_of(self.service.traveler(TRAVELER), STEP), label).id

    def ask(self, label: str = PHOTO, session: str | None = None) -> httpx.Response:
        assert self.floor.signed_in is not None
        body = RequestUpload(
            actor_id=self.floor.ids["ana"],
            traveler=TRAVELER,
            item_id=self.item_id(label),
            session=session or self.floor.signed_in[1],
        )
        return self.http.post("/api/v1/uploads", content=body.model_dump_json(),
                              headers={"Content-Type": "application/json"})  # fmt: skip

    def link(self, label: str = PHOTO) -> UploadLink:
        answer = self.ask(label)
        assert answer.status_code == 200, answer.text
        return UploadLink.model_validate_json(answer.text)

    def upload(self, link: UploadLink, data: bytes, name: str = "photo.png") -> httpx.Response:
        return httpx.post(link.url, files={"file": (name, data, "image/png")}, timeout=10)


@pytest.fixture
def desk(live_server: LiveServer) -> Iterator[Desk]:
    floor = ServiceFloor(live_server.service)
    floor.do(floor.start("ana", live_server.service.traveler(TRAVELER), STEP))
    headers = {"Authorization": f"Bearer {live_server.token()}"}
    with httpx.Client(base_url=live_server.url, headers=headers, timeout=10) as http:
        yield Desk(live_server, floor, http)


def kept_files(service: ExecutionService) -> list[Path]:
    """Files in the store apart from the demo's drawings (documents share the store)."""
    from sqlalchemy import select

    from kiosk.server import schema as t

    with service.store.read() as conn:
        drawings = set(conn.execute(select(t.documents.c.sha256)).scalars())
    root = service.files.root
    found = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    return [p for p in found if p.name not in drawings]


def attachments(pdf: Path) -> dict[str, bytes]:
    """What pdfdetach takes out of the PDF, by name."""
    out = pdf.with_name("attached")
    out.mkdir()
    subprocess.run(["pdfdetach", "-saveall", "-o", str(out), str(pdf)], check=True)
    return {p.name: p.read_bytes() for p in out.iterdir()}


def test_a_photo_uploaded_through_its_link_is_recorded_in_the_persons_name(desk: Desk) -> None:
    link = desk.link()
    assert link.expires_at - desk.service.clock() <= timedelta(minutes=evidence.LINK_MINUTES)
    page = httpx.get(link.url, timeout=10)
    assert page.status_code == 200
    assert 'capture="environment"' in page.text and 'accept="image/*"' in page.text
    assert (
        "Ana Ortiz" in page.text
        and "<script" not in page.text
        and "http" not in page.text.split("<body>")[1]
    )
    before = httpx.get(f"{desk.server.url}/api/v1/uploads/{link.id}", headers=desk.http.headers)
    assert UploadStatus.model_validate_json(before.text).state == "waiting"

    data = png()
    done = desk.upload(link, data)
    assert done.status_code == 200, done.text
    assert "recorded for Ana Ortiz on TRV-4001" in done.text

    latest = item_of(step_of(desk.service.traveler(TRAVELER), STEP), PHOTO).latest
    assert latest is not None and latest.recorded_by == "Ana Ortiz"
    kept = EvidenceFile.of_value(latest.value)
    assert kept is not None and (kept.size, kept.media_type) == (len(data), "image/png")
    assert desk.service.files.read(kept.sha256) == data
    status = UploadStatus.model_validate_json(desk.http.get(f"/api/v1/uploads/{link.id}").text)
    assert (status.state, status.file, status.uploaded_by) == ("arrived", kept, "Ana Ortiz")
    assert desk.http.get(f"/api/v1/evidence/{kept.sha256}").content == data
    # In the as-built with its facts, and in the chain: verify re-derives the value.
    built = desk.http.get(f"/api/v1/travelers/{TRAVELER}/as-built").json()
    row = next(v for v in built["values"] if v["item"] == PHOTO)
    assert row["file"] == kept.model_dump() and row["entry"]["recorded_by"] == "Ana Ortiz"
    printed = desk.http.get(f"/api/v1/travelers/{TRAVELER}/as-built.pdf")
    assert printed.status_code == 200
    printed_at = desk.server.service.files.root.parent / "as-built.pdf"
    printed_at.write_bytes(printed.content)
    text = "".join(pages_text(printed_at))
    assert kept.sha256[:18] in text and f"image/png, {len(data)} bytes, SHA-256" in text
    # The photo itself rides in the PDF, named on its row: the PDF alone shows the evidence.
    name = f"evidence-{kept.sha256[:12]}.png"
    assert f"attachedas{name}".replace("-", "") in text.replace(" ", "").replace("-", "")
    assert attachments(printed_at)[name] == data

    with desk.service.store.begin() as conn:
        assert audit.verify(conn, files=desk.service.files).ok
        # The secret is nowhere in the database: the link is kept by its hash.
        secret = link.url.rsplit("/", 1)[1]
        dump = "\n".join(
            str(r) for tab in (t.upload_links, t.audit_log) for r in conn.execute(select(tab))
        )
        assert secret not in dump


def refused_nothing_changed(desk: Desk, answer: httpx.Response, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text
    assert words in answer.text and 'class="refused"' in answer.text
    assert item_of(step_of(desk.service.traveler(TRAVELER), STEP), PHOTO).latest is None


def test_a_link_that_expired_takes_nothing(desk: Desk) -> None:
    link = desk.link()
    before, kept = record_count(desk.service), kept_files(desk.service)
    real = desk.service.clock
    desk.service.clock = lambda: real() + timedelta(minutes=evidence.LINK_MINUTES, seconds=1)
    try:
        refused_nothing_changed(desk, httpx.get(link.url), 410, "This upload link expired")
        refused_nothing_changed(desk, desk.upload(link, png()), 410, "links last 5 minutes")
    finally:
        desk.service.clock = real
    assert (record_count(desk.service), kept_files(desk.service)) == (before, kept)


def test_a_link_takes_one_file_only(desk: Desk) -> None:
    link = desk.link()
    assert desk.upload(link, png()).status_code == 200
    before, kept = record_count(desk.service), kept_files(desk.service)
    again = desk.upload(link, png(9))
    assert again.status_code == 410 and "already used" in again.text
    assert (record_count(desk.service), kept_files(desk.service)) == (before, kept)


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"%PDF-1.7\n%%EOF\n", 415, "JPEG, PNG only"),  # a photo item takes no PDF
        (b"GIF89a" + b"\x00" * 20, 415, "JPEG, PNG only"),
        (b"\x89PNG\r\n\x1a\n-but a program really", None, "the limit is"),  # one byte too many
        (b"", 422, "The file is empty"),
    ],
)
def test_a_wrong_or_oversized_file_is_refused_and_nothing_kept(
    desk: Desk, data: bytes, status: int | None, words: str
) -> None:
    link = desk.link()
    if status is None:  # at the boundary: the limit is exactly a good photo's size
        good = png()
        desk.service.files.max_bytes = len(good)
        data = good + b"\x00"
        status = 413
    before = record_count(desk.service)
    refused_nothing_changed(desk, desk.upload(link, data), status, words)
    assert record_count(desk.service) == before and kept_files(desk.service) == []
    if desk.service.files.max_bytes == len(png()):
        assert (
            desk.upload(link, png()).status_code == 200
        )  # the link still works: exactly at the limit


def test_a_file_item_takes_a_pdf(desk: Desk) -> None:
    link = desk.link(FILE)
    page = httpx.get(link.url).text
    assert "application/pdf" in page and "capture=" not in page
    assert desk.upload(link, b"%PDF-1.7\n%%EOF\n", "coc.pdf").status_code == 200
    latest = item_of(step_of(desk.service.traveler(TRAVELER), STEP), FILE).latest
    kept = None if latest is None else EvidenceFile.of_value(latest.value)
    assert kept is not None and kept.media_type == "application/pdf"


def test_a_link_is_only_for_the_persons_own_session_and_ends_with_it(desk: Desk) -> None:
    with desk.service.store.begin() as conn:
        links = len(conn.execute(select(t.upload_links)).all())
    forged = desk.ask(session="not-a-session")
    assert forged.status_code == 403 and forged.json()["rule"] == "session_invalid"
    typed = desk.http.post("/api/v1/uploads", json={"actor_id": desk.floor.ids["ana"],
                           "traveler": TRAVELER, "item_id": desk.item_id(), "session": None})  # fmt: skip
    assert typed.status_code == 403 and typed.json()["rule"] == "session_needed"
    with desk.service.store.begin() as conn:
        assert len(conn.execute(select(t.upload_links)).all()) == links
    link = desk.link()
    assert desk.floor.signed_in is not None
    desk.service.logout(desk.floor.station, _sign_out(desk.floor.signed_in[1]))
    refused_nothing_changed(desk, desk.upload(link, png()), 410, "signed out")


def _sign_out(session: str):  # type: ignore[no-untyped-def]
    from kiosk.wire import SignOut

    return SignOut(session=session)


def test_a_typed_value_on_a_photo_item_and_a_link_for_a_text_item_are_refused(desk: Desk) -> None:
    refusal = desk.floor.refuse(
        desk.floor.record("ana", desk.service.traveler(TRAVELER), STEP, PHOTO, "photo.png")
    )
    assert refusal.rule == "value_by_upload" and "uploading it from a phone" in refusal.detail
    trav = desk.service.traveler("TRV-1002")
    assert desk.floor.signed_in is not None
    body = RequestUpload(actor_id=desk.floor.ids["ana"], traveler="TRV-1002",
                         item_id=item_of(step_of(trav, "20.1"), "Torque stripe applied").id,
                         session=desk.floor.signed_in[1])  # fmt: skip
    answer = desk.http.post("/api/v1/uploads", json=body.model_dump(mode="json"))
    assert answer.status_code == 422 and answer.json()["rule"] == "not_evidence"


def test_a_swapped_photo_is_caught_by_audit_verify(
    desk: Desk, plant: Plant, tmp_path: Path
) -> None:
    assert desk.upload(desk.link(), png()).status_code == 200
    (path,) = kept_files(desk.service)
    args = (
        "audit",
        "verify",
        "--database-url",
        plant.database_url,
        "--secret-file",
        str(plant.secret_file),
    )
    assert path.parent.parent == tmp_path / "files"
    with desk.service.store.begin() as conn:
        assert audit.verify(conn, files=desk.service.files).ok
    path.write_bytes(png(9))  # same name, other bytes: someone swapped the photo
    done = kiosk(*args, data_dir=tmp_path)
    assert done.returncode == 1
    assert "no longer has that hash" in done.stdout and "Photo of torque stripe" in done.stdout
    # The as-built never carries the swapped bytes under the recorded hash: its row says so.
    printed = tmp_path / "as-built.pdf"
    exported = kiosk("export", "as-built", TRAVELER, "--format", "pdf", "--output",
                     str(printed), *args[2:], data_dir=tmp_path)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert "NOT ATTACHED: the file store lacks these bytes" in "".join(pages_text(printed))
    assert list(attachments(printed)) == ["as-built.json"]


def test_a_backup_keeps_the_photos_and_a_restore_puts_them_back(
    desk: Desk, plant: Plant, tmp_path: Path
) -> None:
    from kiosk.server.backup import BackupError, backup, restore
    from kiosk.server.store import Store

    assert desk.upload(desk.link(), png()).status_code == 200
    (kept,) = kept_files(desk.service)
    manifest = backup(plant.database_url, plant.secret_file, tmp_path / "bk",
                      files_dir=desk.service.files.root)  # fmt: skip
    backed_up = [e["name"] for e in manifest["files"] if e["what"] == "kept file"]
    assert f"file-{kept.name}" in backed_up and len(backed_up) == 4  # and the demo's 3 drawings
    elsewhere = tmp_path / "restored"
    done = restore(tmp_path / "bk", f"sqlite:///{elsewhere / 'plant.db'}",
                   elsewhere / "plant-secret", files_dir=elsewhere / "files")  # fmt: skip
    assert done.ok, done.verdict
    restored = elsewhere / "files" / kept.name[:2] / kept.name
    assert restored.read_bytes() == kept.read_bytes()
    store = Store.open(f"sqlite:///{elsewhere / 'plant.db'}", create=False)
    try:
        with store.begin() as conn:
            assert audit.verify(conn, files=FileStore(elsewhere / "files")).ok
    finally:
        store.dispose()
    (tmp_path / "bk" / f"file-{kept.name}").write_bytes(png(9))  # a backup changed since
    with pytest.raises(BackupError, match="does not match its SHA-256"):
        restore(tmp_path / "bk", f"sqlite:///{tmp_path / 'again.db'}", tmp_path / "s2",
                files_dir=tmp_path / "f2")  # fmt: skip


async def test_the_station_sends_its_cameras_frame_through_the_link_as_a_phone_does(
    desk: Desk,
) -> None:
    link = desk.link()
    async with ExecutionClient(desk.server.url, desk.server.token()) as client:
        await client.upload_through(link.url, png(), "capture.png", "image/png")
    latest = item_of(step_of(desk.service.traveler(TRAVELER), STEP), PHOTO).latest
    assert latest is not None and latest.recorded_by == "Ana Ortiz"
