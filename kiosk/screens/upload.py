"""Upload a photo or file from a phone: the one-use link as a QR code, then the photo as it
arrives, with its thumbnail.

The link is asked for on the signed-in person's session (the phone holds no credentials) and
is good for a few minutes; the screen asks the server every second whether the file arrived.
A station with a camera (ffmpeg and /dev/video*) offers capture here as well.
"""

from __future__ import annotations

import asyncio
import glob
import shutil
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from kiosk.client import BackendError, BackendUnreachable, ExecutionClient
from kiosk.screens.dialog import dialog_css
from kiosk.themes.console import on_linux_console
from kiosk.wire import DataItem, ItemKind, RequestUpload, UploadStatus

POLL_SECONDS = 1.0
"""How often the screen asks whether the file arrived: it shows within about a second."""


def camera() -> str | None:
    """The camera device when this station can capture a photo itself (ffmpeg and a v4l2 device)."""
    devices = sorted(glob.glob("/dev/video*"))
    return devices[0] if devices and shutil.which("ffmpeg") else None


class UploadScreen(ModalScreen[bool]):
    """The upload code for one photo or file item; dismissed with whether a file arrived."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter", "close", "Close"),
        Binding("c", "capture", "Capture here", show=False),
    ]
    """
    | Key | Does |
    | :- | :- |
    | escape, enter | Close (the link stays good until it expires). |
    | c | Take the photo with this station's camera, when it has one. |
    """

    DEFAULT_CSS = dialog_css(
        "UploadScreen",
        width=76,
        extra="""
        & #code { width: auto; height: auto; color: black; background: white; }
        & #code-box { align-horizontal: center; height: auto; }
        & #state { height: auto; }
        """,
    )

    def __init__(self, client: ExecutionClient, request: RequestUpload, item: DataItem) -> None:
        super().__init__()
        self.client = client
        self.request = request
        self.item = item
        self.arrived: UploadStatus | None = None
        self.url: str | None = None

    def compose(self) -> ComposeResult:
        what = "photo" if self.item.kind is ItemKind.PHOTO else "file"
        with Vertical():
            yield Static(f"Upload {what}: {self.item.label}", classes="heading", markup=False)
            with Vertical(id="code-box"):
                yield Static(id="code", markup=False)
            yield Static("Asking the server for an upload link...", id="state", markup=False)

    def on_mount(self) -> None:
        self.wait_for_file()

    @work(exclusive=True, group="upload")
    async def wait_for_file(self) -> None:
        from kiosk.screens.handoff import qr_rows  # segno loads with the first upload code

        state = self.query_one("#state", Static)
        try:
            link = await self.client.request_upload(self.request)
        except BackendError as refused:
            state.update(refused.detail)
            return
        self.url = link.url
        self.query_one("#code", Static).update(
            Text("\n".join(qr_rows(link.url, border=2)), no_wrap=True)
        )
        device = camera()
        here = f" Or press C: this station's camera ({device})." if device else ""
        state.update(
            f"Scan with a phone on the plant network: good once, until "
            f"{link.expires_at:%H:%M} UTC.{here}\n{link.url}"
        )
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                status = await self.client.upload_status(link.id)
            except BackendError:
                continue  # the network blinked: ask again
            if status.state == "expired":
                state.update(
                    "The link expired with nothing uploaded. Close and press Ctrl+F again."
                )
                return
            if status.state == "arrived":
                await self.show_arrived(status)
                return

    async def show_arrived(self, status: UploadStatus) -> None:
        from kiosk.widgets.thumbnail import thumbnail

        self.arrived = status
        file = status.file
        assert file is not None
        preview = Text("(a PDF: no preview)")
        if file.media_type.startswith("image/"):
            try:
                data = await self.client.evidence(file.sha256)
                preview = thumbnail(data, console=on_linux_console())
            except BackendError:
                preview = Text("(preview not available)")
        self.query_one("#code", Static).update(preview)
        at = f"{status.uploaded_at:%H:%M:%S} UTC" if status.uploaded_at else ""
        self.query_one("#state", Static).update(
            f"Arrived: {file.facts()}, by {status.uploaded_by} at {at}. Enter: close."
        )

    @work(exclusive=True, group="capture")
    async def action_capture(self) -> None:
        """One frame from the station's camera, sent through the same link as a phone's photo
        (so it is checked and recorded the same way); the poll then shows it arrived."""
        device = camera()
        if device is None or self.url is None or self.arrived is not None:
            return
        state = self.query_one("#state", Static)
        frame = await capture(device)
        if frame is None:
            state.update("The camera gave no picture. Use a phone instead.")
            return
        try:
            await self.client.upload_through(self.url, frame, "capture.jpg", "image/jpeg")
        except BackendUnreachable:
            state.update("Cannot reach the server to send the picture. Try again.")

    def action_close(self) -> None:
        self.dismiss(self.arrived is not None)


async def capture(device: str) -> bytes | None:
    """One JPEG frame from a v4l2 camera, by ffmpeg; None when it fails."""
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-loglevel", "error", "-f", "v4l2", "-i", device, "-frames:v", "1",
        "-f", "image2", "-c:v", "mjpeg", "-",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=15)
    except TimeoutError:
        process.kill()
        return None
    return out if process.returncode == 0 and out else None
