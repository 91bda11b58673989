"""A photo from a phone, end to end: the station shows the upload code, a real headless Chromium
opens the link, picks a PNG in the page's file input and submits it, and the station (Pilot,
against the real server) shows it arrived, with its thumbnail and the recorded facts."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from kiosk.screens.upload import UploadScreen
from kiosk.widgets.data_item_entry import DataItemEntry
from kiosk.widgets.thumbnail import SHADES, thumbnail
from tests.browser import CHROMIUM, Browser
from tests.conftest import LiveServer
from tests.station import running, settle, work_on
from tests.station_helpers import screen_text
from tests.test_evidence import PHOTO, png


def _upload_in_browser(url: str, photo: Path) -> str:
    browser = Browser()
    try:
        browser.open(url)
        assert (
            browser.evaluate("document.querySelector('#file').getAttribute('capture')")
            == "environment"
        )
        browser.set_file("#file", str(photo))
        browser.evaluate("document.querySelector('#send').click()")
        browser.wait_for("document.querySelector('#message') !== null")
        return str(browser.evaluate("document.body.innerText"))
    finally:
        browser.close()


@pytest.mark.parametrize("plant", ["sqlite"], indirect=True)
async def test_a_photo_taken_on_a_phone_shows_at_the_station(
    live_server: LiveServer, tmp_path: Path
) -> None:
    if not Path(CHROMIUM).exists():
        why = "needs Debian's chromium: apt-get install chromium (.ci/run does)"
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)
    photo = tmp_path / "stripe.png"
    photo.write_bytes(png(16))
    async with running(live_server.url, live_server.token(), tmp_path) as pilot:
        await work_on(pilot, "TRV-4001")
        await pilot.press("ctrl+f")
        await pilot.pause()  # not settle: the screen's worker waits for the photo
        screen = pilot.app.screen
        assert isinstance(screen, UploadScreen)
        for _ in range(100):
            if screen.url:
                break
            await pilot.pause(0.05)
        assert screen.url is not None and "/upload/" in screen.url
        assert "good once, until" in screen_text(pilot.app)
        page = await asyncio.to_thread(_upload_in_browser, screen.url, photo)
        assert "recorded for Ana Ortiz on TRV-4001" in page
        started = time.monotonic()
        while "Arrived: PNG" not in screen_text(pilot.app) and time.monotonic() - started < 5:
            await pilot.pause(0.1)
        assert screen.arrived is not None, "the station did not see the photo arrive"
        assert "Arrived: PNG" in screen_text(pilot.app) and "by Ana Ortiz" in screen_text(pilot.app)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.pause(0.5)  # the traveler is read again
        await settle(pilot)
        entry = next(e for e in pilot.app.screen.query(DataItemEntry) if e.item.label == PHOTO)
        assert entry.item.latest is not None and "PNG" in screen_text(pilot.app)


def test_the_console_thumbnail_is_one_shaded_pixel_per_cell() -> None:
    drawn = thumbnail(png(40), width=10, height=5, console=True).plain.splitlines()
    assert len(drawn) == 5 and all(len(row) <= 10 for row in drawn)
    assert set("".join(drawn)) <= set(SHADES)
    colour = thumbnail(png(40), width=10, height=5)
    assert set(colour.plain) <= {"▀", "\n"} and len(colour.plain.splitlines()) == 5
    assert thumbnail(b"%PDF-1.7").plain == "(no preview of this file)"


async def test_capture_here_takes_one_frame_with_ffmpeg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The camera is the one thing mocked: a stand-in ffmpeg that writes a JPEG frame, as
    `ffmpeg -f v4l2 -i /dev/video0 -frames:v 1` does, and a v4l2 device that is listed."""
    from kiosk.screens import upload

    fake = tmp_path / "ffmpeg"
    fake.write_text(
        '#!/bin/sh\ncase "$*" in *"-i /dev/video0"*) printf "\\377\\330\\377frame";; *) exit 1;; esac\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr("glob.glob", lambda pattern: ["/dev/video0"])
    assert upload.camera() == "/dev/video0"
    assert await upload.capture("/dev/video0") == b"\xff\xd8\xffframe"
    assert await upload.capture("/dev/video9") is None  # the camera gave nothing
    monkeypatch.setattr("glob.glob", lambda pattern: [])
    assert upload.camera() is None  # no device: no "capture here"
