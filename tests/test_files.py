"""The plant's file store: a file is kept once under its SHA-256, only if its bytes are a type
the plant keeps and it is within the size limit; a file changed on disk is no longer intact."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from kiosk.rules import Refusal
from kiosk.server.app import ServerConfig
from kiosk.server.files import IMAGES, JPEG, PDF, PNG, SVG, FileStore, sniff
from kiosk.server.settings import ServerSettings

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 50
SVG_BYTES = b'<?xml version="1.0"?>\n<!-- drawing -->\n<svg xmlns="http://www.w3.org/2000/svg"/>'


def test_the_bytes_say_what_a_file_is_not_its_name() -> None:
    assert sniff(PNG_BYTES) == PNG
    assert sniff(b"\xff\xd8\xff\xe0rest") == JPEG
    assert sniff(b"%PDF-1.7\n") == PDF
    assert sniff(SVG_BYTES) == SVG and sniff(b"<svg>") == SVG
    for other in (b"MZ\x90\x00", b"<html><svg>", b"GIF89a", b"plain text"):
        assert sniff(other) is None


def test_a_file_is_kept_once_under_its_hash(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "files")
    first = store.put(PNG_BYTES)
    assert first.sha256 == hashlib.sha256(PNG_BYTES).hexdigest()
    assert (first.size, first.media_type) == (len(PNG_BYTES), PNG)
    assert store.put(PNG_BYTES) == first
    assert store.read(first.sha256) == PNG_BYTES and store.intact(first.sha256)
    assert [p.name for p in (tmp_path / "files").rglob("*") if p.is_file()] == [first.sha256]


def test_a_file_changed_or_gone_is_not_intact(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    kept = store.put(PNG_BYTES)
    store.path(kept.sha256).write_bytes(PNG_BYTES + b"x")
    assert not store.intact(kept.sha256)
    store.path(kept.sha256).unlink()
    assert not store.intact(kept.sha256)
    with pytest.raises(Refusal, match="not in the file store"):
        store.read(kept.sha256)


def test_the_size_limit_holds_at_its_boundary(tmp_path: Path) -> None:
    store = FileStore(tmp_path, max_bytes=len(PNG_BYTES))
    store.put(PNG_BYTES)
    with pytest.raises(Refusal, match="the limit is") as refused:
        store.put(PNG_BYTES + b"\x00")
    assert refused.value.status == 413
    assert len(list(tmp_path.rglob("*"))) == 2  # the folder and the one file: nothing else kept


@pytest.mark.parametrize(
    ("data", "allowed", "rule"),
    [
        (b"", IMAGES, "file_empty"),
        (b"MZ\x90\x00", IMAGES, "file_type_refused"),
        (b"%PDF-1.7", IMAGES, "file_type_refused"),
    ],
)
def test_what_the_plant_does_not_keep_is_refused_and_nothing_stored(
    tmp_path: Path, data: bytes, allowed: frozenset[str], rule: str
) -> None:
    store = FileStore(tmp_path / "files")
    with pytest.raises(Refusal) as refused:
        store.put(data, allowed)
    assert refused.value.rule == rule
    assert "JPEG, PNG only" in refused.value.detail or rule == "file_empty"
    assert not (tmp_path / "files").exists()


LINKS_OUT = [
    b'<image href="/home/kiosk/badge.png"/>',
    b"<image xlink:href='file:///etc/kiosk/x.png'/>",
    b'<use href="other.svg#part"/>',
    b'<rect style="fill: url( other.svg#g)"/>',
    b'<style>@import "https://example.com/s.css";</style>',
]
SELF_CONTAINED = b'<use href="#part"/><rect fill="url(#g)"/><image href="data:image/png;base64,AA"/>'


@pytest.mark.parametrize("link", LINKS_OUT)
def test_an_svg_that_links_outside_itself_is_refused_and_nothing_stored(
    tmp_path: Path, link: bytes
) -> None:
    store = FileStore(tmp_path / "files")
    with pytest.raises(Refusal) as refused:
        store.put(b'<svg xmlns="http://www.w3.org/2000/svg">' + link + b"</svg>")
    assert refused.value.rule == "file_links_out" and "outside itself" in refused.value.detail
    assert not (tmp_path / "files").exists()
    kept = store.put(b'<svg xmlns="http://www.w3.org/2000/svg">' + SELF_CONTAINED + b"</svg>")
    assert kept.media_type == SVG


def test_a_name_that_is_not_a_hash_names_no_file(tmp_path: Path) -> None:
    with pytest.raises(Refusal, match="No such file"):
        FileStore(tmp_path).path("../plant-secret")


def test_the_files_live_in_the_data_directory_unless_set(tmp_path: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path, max_file_mb=2)
    store = ServerConfig.of(settings).file_store()
    assert (store.root, store.max_bytes) == (tmp_path / "files", 2 * 1024 * 1024)
    elsewhere = ServerSettings(data_dir=tmp_path, files_dir=tmp_path / "nfs")
    assert ServerConfig.of(elsewhere).file_store().root == tmp_path / "nfs"
    assert ServerConfig("sqlite://", tmp_path / "secret").file_store().root == tmp_path / "files"
    beside = ServerSettings(data_dir=tmp_path, secret_file=tmp_path / "etc" / "plant-secret")
    assert ServerConfig.of(beside).file_store().root == tmp_path / "etc" / "files"
