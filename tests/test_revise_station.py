"""A redline at the station, under Pilot against the real reference server: the step shows what
changed, the change number, the reason and the revisions; nothing proceeds until the operator
acknowledges it, with Ctrl+L on the step or from the notice of a revision changed while the
traveler was open; each acknowledgement is recorded on the server in the operator's name."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiosk.screens.prompt import ChoiceScreen
from kiosk.server import erp, revise
from tests.conftest import LiveServer
from tests.helpers import ServiceFloor, snapshot, step_of
from tests.station import burst, running, settle
from tests.station_helpers import message, screen_text
from tests.test_revise import _step, example

pytestmark = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)


def issue(live_server: LiveServer, **changes: object) -> None:
    doc = revise.RevisionDocument.model_validate(example(**changes))
    revise.issue(live_server.service.store, doc, datetime.now(UTC))


async def test_the_operator_acknowledges_a_redline_before_work_goes_on(
    live_server: LiveServer, tmp_path: Path
) -> None:
    service = live_server.service
    floor = ServiceFloor(service)
    floor.do(floor.start("ana", service.traveler("TRV-1002"), "20.1"))
    issue(live_server)
    async with running(live_server.url, live_server.token(), tmp_path, size=(100, 40)) as pilot:
        app = pilot.app
        await burst(pilot, "10001")  # Ana Ortiz
        await burst(pilot, "TRV-1002")  # opens at 20.1, in work
        shown = screen_text(app)
        assert "REDLINE ECN-0042: rev C -> D. Supplier changed the bushing press fit" in shown
        assert "item Fastener torque: nominal 12.5 -> 13.0" in shown
        assert "Ctrl+L: acknowledge the change" in shown

        before = snapshot(service, "TRV-1002")
        await pilot.press("f2")
        await settle(pilot)
        assert "Step 20.1 has a redline to acknowledge first: ECN-0042" in message(app)
        assert snapshot(service, "TRV-1002") == before  # refused at the station: nothing sent

        await pilot.press("ctrl+l")
        await settle(pilot)
        assert "Ana Ortiz acknowledged ECN-0042 on step 20.1: now at rev D." in message(app)
        assert "REDLINE" not in screen_text(app)
        assert step_of(service.traveler("TRV-1002"), "20.1").redlines == ()

        # Another change while the traveler is on screen: the revision notice says which and
        # why, and reading it is the recorded acknowledgement.
        issue(live_server, change="ECN-0043", steps=[_step("20.1", revision="E")])
        await pilot.press("f4")
        await settle(pilot)
        assert isinstance(app.screen, ChoiceScreen)
        notice = screen_text(app)
        assert "step 20.1: rev D → rev E" in notice and "ECN-0043: Supplier" in notice
        await pilot.press("enter")
        await settle(pilot)
        assert "Ana Ortiz acknowledged ECN-0043 on step 20.1: now at rev E." in message(app)
    assert step_of(service.traveler("TRV-1002"), "20.1").redlines == ()
    with service.store.read() as conn:
        acks = [(r.change, r.acknowledged_by) for r in erp.as_built(conn, "TRV-1002").revisions]
    assert acks == [("ECN-0042", "Ana Ortiz"), ("ECN-0043", "Ana Ortiz")]
