"""systemd's service notifications and watchdog, pinged from the station's event loop.

Under the station unit (Type=notify, WatchdogSec=) systemd passes $NOTIFY_SOCKET and $WATCHDOG_USEC.
The station says READY=1 once its first screen is drawn and WATCHDOG=1 every third of the watchdog
time from the app's own message queue, so a UI loop that stalls (a blocking call, a deadlock, a
shutdown stuck in the terminal writer) stops the pings and systemd kills and restarts the station.
Without those variables (a developer's terminal, tests, `kiosk admin`) nothing is sent.

The protocol is one datagram per message on an AF_UNIX socket (sd_notify(3)); it needs no library.
"""

from __future__ import annotations

import faulthandler
import os
import socket
import sys
from collections.abc import Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from textual.app import App

ENV_VARS: Final = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
"""What systemd hands its main process; children must not inherit them (they are not the unit)."""
PINGS_PER_TIMEOUT: Final = 3
"""sd_watchdog_enabled(3) asks for a ping every half of the timeout; a third leaves room for load."""


def _address(env: Mapping[str, str]) -> str | None:
    path = env.get("NOTIFY_SOCKET")
    if not path or path[0] not in "/@":
        return None  # unset, or a vsock address a thin client never gets
    return "\0" + path[1:] if path[0] == "@" else path  # "@name": the abstract namespace


def notify(message: str, env: Mapping[str, str] = os.environ) -> bool:
    """Send one sd_notify message ("READY=1", "WATCHDOG=1", "STOPPING=1"); False when no manager
    listens. Never blocks: a full socket drops the message rather than freezing the caller."""
    address = _address(env)
    if address is None:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            sock.sendto(message.encode(), address)
        except OSError:
            return False
    return True


def watchdog_seconds(env: Mapping[str, str] = os.environ) -> float | None:
    """The watchdog timeout systemd set for this process, as sd_watchdog_enabled(3) reads it."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6


def dump_stacks_when_killed() -> None:
    """Under systemd's watchdog: when it fires (SIGABRT), the journal gets every thread's Python
    stack, which says where the station was stuck. Written to fd 2 directly, since Textual has
    sys.stderr redirected while it runs."""
    if watchdog_seconds() is not None and sys.__stderr__ is not None:
        with suppress(OSError, ValueError):  # no usable fd 2: restarted all the same, no stacks
            faulthandler.enable(file=sys.__stderr__, all_threads=True)


def start(app: App[Any]) -> None:
    """Say READY=1 after the first refresh and ping the watchdog through the app's message queue."""
    if _address(os.environ) is None:
        return
    app.call_after_refresh(notify, "READY=1")
    timeout = watchdog_seconds()
    if timeout is None:
        return
    # The timer only posts; the ping itself runs when the app's queue gets to it, so a stalled
    # message loop (not just a stalled asyncio loop) stops the pings.
    app.set_interval(timeout / PINGS_PER_TIMEOUT, lambda: app.call_later(notify, "WATCHDOG=1"))
