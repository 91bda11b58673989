"""The station's copies of documents' files, for showing a drawing again at once and offline.

A document revision never changes, so its file is kept under its SHA-256 in the station's data
directory and checked against that hash each time it is read: a copy changed on disk is read
again from the server, never shown. The folder keeps the most recently used files only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from kiosk.client.errors import BackendUnreachable, BadResponse
from kiosk.wire import Document

if TYPE_CHECKING:
    from kiosk.client.api import ExecutionClient

KEEP_FILES = 64
"""Files kept: a routing's drawings many times over, and a bounded folder on a small disk."""
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class DocumentCache:
    def __init__(self, root: Path, keep: int = KEEP_FILES) -> None:
        self.root = root
        self.keep = keep

    def _path(self, doc: Document) -> Path:
        if not _SHA256.match(doc.sha256):
            raise BadResponse("The server named a document file this station cannot keep.")
        return self.root / doc.sha256

    def cached(self, doc: Document) -> bytes | None:
        """The kept copy, if there is one and it still has the document's hash."""
        path = self._path(doc)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if hashlib.sha256(data).hexdigest() != doc.sha256:
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # used now: pruned last
        return data

    def keep_copy(self, doc: Document, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = self.root / f".{doc.sha256}.part"
        temp.write_bytes(data)
        os.replace(temp, self._path(doc))
        self._prune()

    def _prune(self) -> None:
        kept = sorted(
            (p for p in self.root.iterdir() if _SHA256.match(p.name)),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in kept[self.keep :]:
            with contextlib.suppress(OSError):
                old.unlink()

    async def read(self, client: ExecutionClient, doc: Document) -> bytes:
        """The document's file: the kept copy, else the server's (checked, then kept)."""
        data = await asyncio.to_thread(self.cached, doc)
        if data is not None:
            return data
        try:
            data = await client.document_file(doc.number, doc.revision)
        except BackendUnreachable:
            raise BackendUnreachable(
                f"The server cannot be reached and {doc.number} rev {doc.revision} was not "
                "opened on this station before, so it is not available offline."
            ) from None
        if hashlib.sha256(data).hexdigest() != doc.sha256:
            raise BadResponse(
                f"The file the server sent is not {doc.number} rev {doc.revision} (its SHA-256 "
                "differs): it is not shown. Call quality."
            )
        await asyncio.to_thread(self.keep_copy, doc, data)
        return data
