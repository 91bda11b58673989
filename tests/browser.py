"""A real headless Chromium, driven over its DevTools protocol on a pipe (--remote-debugging-pipe:
JSON messages ending in NUL on file descriptors 3 and 4). No browser download, no driver, no
websocket: the system's /usr/bin/chromium and the standard library."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Browser:
    def __init__(self) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="kiosk-chromium-")
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()

        # The child finds the pipes at fds 3 (commands in) and 4 (answers out).
        def at_3_and_4() -> None:
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             f"--user-data-dir={self._profile.name}", "--no-first-run", "about:blank"],
            preexec_fn=at_3_and_4, pass_fds=(3, 4, to_browser, from_browser),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_browser)
        os.close(from_browser)
        self._next = 0
        self._buffer = b""
        self.session = ""

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session or self.session:
            message["sessionId"] = session if session is not None else self.session
        if not message.get("sessionId"):
            message.pop("sessionId", None)
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read()
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return dict(answer.get("result", {}))

    def _read(self, timeout: float = 15) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._in], [], [], timeout)
            if not ready:
                raise TimeoutError("chromium did not answer on its DevTools pipe")
            chunk = os.read(self._in, 65536)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(line))

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", session="", url="about:blank")["targetId"]
        self.session = self.call(
            "Target.attachToTarget", session="", targetId=target, flatten=True
        )["sessionId"]
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && !!document.body")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(
            f"(() => {{ try {{ return !!({expression}) }} catch (e) {{ return false }} }})()"
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(expression)
            time.sleep(0.05)

    def set_file(self, selector: str, path: str) -> None:
        """What a person does by picking a file (or taking a photo) in the file input."""
        self.call("DOM.enable")
        node = self.call(
            "Runtime.evaluate", expression=f"document.querySelector({json.dumps(selector)})"
        )
        self.call("DOM.setFileInputFiles", files=[path], objectId=node["result"]["objectId"])

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError, TimeoutError):
            self.call("Browser.close", session="")
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._in)
        os.close(self._out)
        self._profile.cleanup()
