"""The document viewer: a step's drawings and specifications at the revisions it names.

The file comes through kiosk.client (the station's checked copy, else the server's), and is
drawn by kiosk.widgets.document_view: zoom with + and -, pan with the arrow keys, turn a PDF's
pages with PgUp/PgDn, Tab for the step's next document. Q shows a QR code of a short-lived
signed link to the file, for a tablet beside the station: the link holds no token, only an
expiry and the server's MAC, and opens that one file for a few minutes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Static

from kiosk.client import BackendError
from kiosk.widgets.document_view import DocumentView, Pages
from kiosk.widgets.key_footer import KeyFooter
from kiosk.wire import Document

if TYPE_CHECKING:
    from kiosk.client.link import StationLink


def document_line(doc: Document) -> str:
    """How a step names a document: "DWG-8810-011 rev C  Actuator bracket assembly"."""
    later = f"  (superseded by rev {doc.superseded_by})" if doc.superseded_by else ""
    return f"{doc.number} rev {doc.revision}  {doc.title}{later}"


class DocumentScreen(Screen[None]):
    """One step's documents, one at a time, drawn in the terminal."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # The footer names one key of each pair, so all of them fit 80 columns.
        Binding("plus,equals_sign", "zoom(1)", "Zoom +/-"),
        Binding("minus", "zoom(-1)", "Zoom -", show=False),
        Binding("left", "pan(-1, 0)", "Pan"),
        Binding("right", "pan(1, 0)", "Pan", show=False),
        Binding("up", "pan(0, -1)", "Pan", show=False),
        Binding("down", "pan(0, 1)", "Pan", show=False),
        Binding("pageup", "page(-1)", "Page -", show=False),
        Binding("pagedown", "page(1)", "Pages"),
        Binding("tab", "next_document", "Next doc"),
        Binding("q", "qr", "Tablet QR"),
        Binding("escape", "close", "Back"),
    ]
    """
    | Key | Does |
    | :- | :- |
    | + / - | Zoom in and out (1x: the whole page). |
    | arrows | Pan the zoomed page. |
    | PgUp / PgDn | The PDF's previous and next page. |
    | tab | The step's next document. |
    | q | Show or hide the QR code of the document's link, for a tablet. |
    | escape | Back to the traveler. |
    """

    DEFAULT_CSS = """
    DocumentScreen {
        & #doc-title { text-style: bold; color: $accent; padding: 0 1; }
        & #doc-state { color: $text-muted; padding: 0 1; }
        & #doc-body { height: 1fr; }
        & #doc-qr { display: none; width: auto; height: auto; padding: 0 1; }
        & #doc-qr.-shown { display: block; }
        & #doc-qr-code { width: auto; height: auto; color: black; background: white; }
    }
    """

    def __init__(self, link: StationLink, docs: tuple[Document, ...], first: int = 0) -> None:
        super().__init__()
        self.link = link
        self.docs = docs
        self.shown = first
        self.pages: Pages | None = None
        self.page_no = 0
        self.problem = ""

    def compose(self) -> ComposeResult:
        yield Static(id="doc-title", markup=False)
        yield Static(id="doc-state", markup=False)
        with Horizontal(id="doc-body"):
            yield DocumentView()
            with Vertical(id="doc-qr"):
                yield Static(id="doc-qr-caption", markup=False)
                yield Static(id="doc-qr-code", markup=False)
        yield KeyFooter(compact=True)

    def on_mount(self) -> None:
        self._open()

    @property
    def doc(self) -> Document:
        return self.docs[self.shown]

    @property
    def view(self) -> DocumentView:
        return self.query_one(DocumentView)

    def _open(self) -> None:
        self.pages, self.page_no, self.problem = None, 0, ""
        self.view.show(None)
        self.query_one("#doc-qr").remove_class("-shown")
        self.query_one("#doc-title", Static).update(document_line(self.doc))
        self._state("opening...")
        self._load(self.doc)

    @work(exclusive=True, group="document")
    async def _load(self, doc: Document) -> None:
        try:
            data = await self.link.document_file(doc)
        except BackendError as exc:
            self.problem = str(exc)
            self._state(self.problem)
            return
        import asyncio

        try:  # decoding and rendering a PDF page take a moment: off the event loop
            pages = await asyncio.to_thread(Pages, data, doc.media_type)
            page = await asyncio.to_thread(pages.page, 0) if pages.count else None
        except Exception as exc:  # a file its library cannot read: say so, keep the station
            self.problem = f"This file cannot be drawn here ({type(exc).__name__})."
            self._state(self.problem)
            return
        if doc is not self.doc:
            return
        self.pages = pages
        self.view.show(page)
        if page is None:
            self.problem = "This file has no page to draw: press q for the tablet's QR code."
        self._state()

    def _state(self, text: str | None = None) -> None:
        if text is None:
            text = self.problem or self._where()
        self.query_one("#doc-state", Static).update(text)

    def _where(self) -> str:
        count = self.pages.count if self.pages else 0
        others = f" · document {self.shown + 1} of {len(self.docs)}" if len(self.docs) > 1 else ""
        return (
            f"page {self.page_no + 1} of {count} · zoom {self.view.view.zoom:g}x · "
            f"{self.doc.media_type} · sha256 {self.doc.sha256[:12]}{others}"
        )

    def action_zoom(self, steps: int) -> None:
        self.view.zoom(steps)
        self._state()

    def action_pan(self, dx: int, dy: int) -> None:
        self.view.pan(dx, dy)
        self._state()

    async def action_page(self, step: int) -> None:
        if self.pages is None or not self.pages.count:
            return
        wanted = max(0, min(self.pages.count - 1, self.page_no + step))
        if wanted == self.page_no:
            return
        import asyncio

        page = await asyncio.to_thread(self.pages.page, wanted)
        self.page_no = wanted
        self.view.show(page)
        self._state()

    def action_next_document(self) -> None:
        if len(self.docs) > 1:
            self.shown = (self.shown + 1) % len(self.docs)
            self._open()

    def action_qr(self) -> None:
        box = self.query_one("#doc-qr")
        if box.has_class("-shown"):
            box.remove_class("-shown")
            return
        self._show_qr(self.doc)

    @work(exclusive=True, group="document-qr")
    async def _show_qr(self, doc: Document) -> None:
        try:
            link = await self.link.client.document_link(doc.number, doc.revision)
        except BackendError as exc:
            self._state(f"No tablet link: {exc}")
            return
        from kiosk.screens.handoff import qr_rows

        # The console's fonts lack half blocks: there a module is two whole cells, if they fit.
        console = self.view.mode == "console"
        rows = qr_rows(link.url, whole_cells=console)
        if len(rows[0]) + 2 > self.app.size.width or len(rows) + 4 > self.app.size.height:
            width, height = self.app.size
            self._state(
                f"This screen ({width}x{height}) is too small for the tablet's QR code "
                f"({len(rows[0]) + 2}x{len(rows) + 4}): open the drawing on a larger screen."
            )
            return
        code = Text("\n".join(rows), no_wrap=True)
        self.query_one("#doc-qr-code", Static).update(code)
        self.query_one("#doc-qr-caption", Static).update(
            f"Scan with a tablet: opens {doc.number} rev {doc.revision} until "
            f"{link.expires_at:%H:%M} UTC"
        )
        self.query_one("#doc-qr").add_class("-shown")

    def action_close(self) -> None:
        self.dismiss(None)
