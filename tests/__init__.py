"""The station's and the reference server's tests.

Imported before any test module or conftest, so before anything imports kiosk: argon2 runs at
its floor in the test process and every process it starts (kiosk.server.security), because the
real cost (about 0.2 s of CPU a badge-in) was half of the suite's time. tests/test_trust.py checks
that a server started without the variable uses the real cost.
"""

import os

os.environ["KIOSK_ARGON2_FLOOR"] = "1"
