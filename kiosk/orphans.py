"""A child that must not outlive its parent: the embedded server and the station that started it.

The station closes the server's stdin when it stops, but a station killed with SIGKILL closes
nothing in order, and a server busy or stuck may not be reading. So the server also asks the
kernel for SIGTERM when its parent dies (PR_SET_PDEATHSIG, Linux) and watches its parent's pid
(anywhere), and leaves within a grace period once either says the station is gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Mapping
from typing import Final

from kiosk.watchdog import ENV_VARS

PARENT_ENV: Final = "KIOSK_EMBEDDED_PARENT"
"""The station's pid, as the child should see it in os.getppid()."""
_PR_SET_PDEATHSIG: Final = 1  # <linux/prctl.h>


def child_environment(env: Mapping[str, str], parent: int) -> dict[str, str]:
    """env for the child: whose child it is, and not systemd's notify socket (only the station,
    the unit's main process, speaks for the unit)."""
    kept = {name: value for name, value in env.items() if name not in ENV_VARS}
    return {**kept, PARENT_ENV: str(parent)}


def expected_parent(env: Mapping[str, str] = os.environ) -> int | None:
    value = env.get(PARENT_ENV, "")
    return int(value) if value.isdigit() else None


def signal_on_parent_death(signum: int) -> bool:
    """Have the kernel send signum when the parent dies; False where prctl does not exist.

    The kernel means the parent *thread*: a child started from a worker thread gets the signal
    when that thread ends. The station starts the server from its main thread, and restarts it
    from the event loop's executor, whose threads live as long as the station's loop."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return int(libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0


def parent_alive(expected: int) -> bool:
    """An orphan is adopted by init or a subreaper: its parent pid changes, never back."""
    return os.getppid() == expected
