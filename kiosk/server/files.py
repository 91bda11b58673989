"""Files the plant keeps as evidence or as documents (photos, drawings, specifications).

Each file is stored once, named by its SHA-256, in a folder outside the database tables
(`files_dir`, beside the plant secret unless set): the database keeps only the hash, size and type,
and the audit chain carries the hash, so a file swapped on disk no longer matches the record
that names it (`intact` re-hashes it; `kiosk audit verify` asks). On PostgreSQL with several
server hosts the folder is a shared mount, as the plant secret already is.

A file is accepted only if its bytes are what its type says (PNG, JPEG, PDF, SVG), whatever the
uploader claimed, and only up to the plant's size limit: both refusals say what was wrong.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kiosk.rules import Refusal

PNG, JPEG, PDF, SVG = "image/png", "image/jpeg", "application/pdf", "image/svg+xml"
MEDIA_TYPES: frozenset[str] = frozenset({PNG, JPEG, PDF, SVG})
IMAGES: frozenset[str] = frozenset({PNG, JPEG})
DEFAULT_MAX_BYTES = 25 * 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SVG_ROOT = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*|<!DOCTYPE[^>]*>\s*)*<svg[\s>]", re.S)
# A link out of the SVG: an href, a url() or an @import naming anything but a part of the same
# file (#id) or inline data. Renderers follow such links to files on the machine drawing it.
_SVG_LINK = re.compile(
    rb"""(?:href\s*=\s*["']\s*|url\(\s*["']?\s*|@import\s+["']?\s*)(?!#|data:)([^"')\s>]+)""",
    re.I,
)


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    media_type: str


def sniff(data: bytes) -> str | None:
    """The media type the bytes themselves are, of those the plant keeps; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"%PDF-"):
        return PDF
    if _SVG_ROOT.match(data[:4096]):
        return SVG
    return None


def _words(types: frozenset[str]) -> str:
    names = {PNG: "PNG", JPEG: "JPEG", PDF: "PDF", SVG: "SVG"}
    return ", ".join(sorted(names[t] for t in types))


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} kB"


class FileStore:
    """A content-addressed folder: root/ab/abcdef… for the file whose SHA-256 is abcdef…"""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def check(self, data: bytes, allowed: frozenset[str] = MEDIA_TYPES) -> str:
        """The file's type if the plant keeps such a file; otherwise the refusal that says why."""
        if not data:
            raise Refusal("file_empty", "The file is empty.", 422)
        if len(data) > self.max_bytes:
            raise Refusal(
                "file_too_large",
                f"The file is {_size(len(data))}: the limit is {_size(self.max_bytes)}.",
                413,
            )
        media_type = sniff(data)
        if media_type not in allowed:
            raise Refusal(
                "file_type_refused",
                f"This file is not one the plant keeps here: {_words(allowed)} only.",
                415,
            )
        if media_type == SVG and (link := _SVG_LINK.search(data)):
            named = link.group(1)[:80].decode("utf-8", "replace")
            raise Refusal(
                "file_links_out",
                f"This SVG links to {named!r} outside itself: a drawing must hold everything "
                "it shows (embed pictures as data: URLs), so it looks the same at every station.",
                422,
            )
        return media_type

    def put(self, data: bytes, allowed: frozenset[str] = MEDIA_TYPES) -> StoredFile:
        """Keep `data` (checked first); storing the same bytes twice keeps one copy."""
        media_type = self.check(data, allowed)
        digest = hashlib.sha256(data).hexdigest()
        path = self.path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Written whole and synced under a temporary name, then renamed: a reader never sees
            # half a file, and a crash leaves at most a stray temporary.
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        return StoredFile(digest, len(data), media_type)

    def path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise Refusal("file_unknown", "No such file.", 404)
        return self.root / sha256[:2] / sha256

    def read(self, sha256: str) -> bytes:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise Refusal(
                "file_missing", f"File {sha256[:12]}… is not in the file store.", 404
            ) from None

    def intact(self, sha256: str) -> bool:
        """Whether the file is there and still has the hash it is named by."""
        return self.checked(sha256) is not None

    def checked(self, sha256: str) -> bytes | None:
        """The file's bytes if it is there and still has the hash it is named by."""
        try:
            data = self.path(sha256).read_bytes()
        except FileNotFoundError:
            return None
        return data if hashlib.sha256(data).hexdigest() == sha256 else None
