"""Working through an outage: cached reads, offline identity, signatures marked offline, the window."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiosk.client import BackendUnreachable, ExecutionClient, Refused
from kiosk.client.link import StationLink
from kiosk.wire import Credentials, Meaning, RecordValue, SignStep, StartStep
from tests.conftest import LiveServer

pytestmark = pytest.mark.parametrize("plant", ["sqlite"], indirect=True)


class Cable:
    """A loopback proxy standing in for the station's network cable: plug it in or pull it."""

    def __init__(self, target: str) -> None:
        self.host, port = target.removeprefix("http://").split(":")
        self.target_port = int(port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.links: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def plug(self) -> None:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def pull(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.links:
            writer.close()
        self.links.clear()
        await self.server.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        self.links += [writer, up_writer]

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))


@pytest.fixture
async def cable(live_server: LiveServer) -> AsyncIterator[Cable]:
    cable = Cable(live_server.url)
    await cable.plug()
    yield cable
    if cable.server is not None:
        cable.server.close()


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def open_link(cable: Cable, token: str, data_dir: Path, clock: Clock) -> StationLink:
    link = StationLink(ExecutionClient(cable.url, token, timeout=2.0), data_dir, clock=clock)
    await link.station()
    link.start()
    return link


async def test_an_operator_keeps_working_and_signing_through_an_outage(
    live_server: LiveServer, cable: Cable, tmp_path: Path
) -> None:
    clock = Clock()
    link = await open_link(cable, live_server.token(), tmp_path, clock)
    await link.login("10001")
    trav = await link.traveler("TRV-1001")
    step = trav.steps[0]

    await cable.pull()
    trav = await link.traveler("TRV-1001")  # from the cache
    assert link.online is False
    ana = await link.login("10001")  # identified from the credential cache, by her badge
    assert ana.person.name == "Ana Ortiz" and ana.token is None and ana.actor_key is not None
    done = await link.record(
        StartStep(actor_id=ana.person.id, traveler=trav.number, step_id=step.id), ana, trav
    )
    assert not done.delivered and "sent when the server is back" in done.message
    trav = done.traveler
    for item, value in zip(step.items, ["LOT-A100", "acknowledged"], strict=True):
        action = RecordValue(
            actor_id=ana.person.id, traveler=trav.number, item_id=item.id, value=value
        )
        trav = (await link.record(action, ana, trav)).traveler
    proof = await link.identify(Credentials(badge="10001", pin="1111"))
    assert proof.offline and proof.signer.name == "Ana Ortiz"
    sign = SignStep(
        actor_id=ana.person.id, traveler=trav.number, step_id=step.id, meaning=Meaning.PERFORMED
    )
    trav = (await link.record(sign, ana, trav, proof)).traveler
    assert trav.steps[0].status.value == "complete"
    assert trav.steps[0].signatures[0].printed_name == "Ana Ortiz"
    assert link.waiting() == 4
    # What waits carries proofs, never a PIN: a MAC for the actor and one for the signer.
    queued = link.outbox.entries("pending")
    assert all(e.action.actor_proof is not None and e.action.session is None for e in queued)
    signed = queued[-1].action
    assert isinstance(signed, SignStep) and signed.attestation is not None
    assert signed.credentials is None and signed.ticket is None
    # Reopening the traveler offline shows the same: the pending actions are projected on it.
    assert (await link.traveler("TRV-1001")).steps[0].status.value == "complete"

    await cable.plug()
    await drain(link)
    assert not link.refused(), [(e.rule, e.message) for e in link.refused()]
    record = await link.client.as_built("TRV-1001")
    signature = record.traveler.steps[0].signatures[0]
    assert signature.offline and signature.station_time is not None
    assert signature.server_time >= signature.station_time
    values = [v.entry for v in record.values if v.step == "10.1"]
    assert len(values) == 2 and all(v.offline and v.station_time for v in values)
    await link.close()


async def drain(link: StationLink) -> None:
    for _ in range(200):
        link.sender.nudge()
        await asyncio.sleep(0.05)
        if link.waiting() == 0:
            return
    raise AssertionError(f"{link.waiting()} actions still waiting")


async def test_an_action_recorded_as_the_server_went_away_is_offline_in_the_as_built(
    live_server: LiveServer, cable: Cable, tmp_path: Path
) -> None:
    """The station still believed it was online: the delivery failing tells it otherwise."""
    link = await open_link(cable, live_server.token(), tmp_path, Clock())
    ana = await link.login("10001")
    trav = await link.traveler("TRV-1001")
    step = trav.steps[0]
    start = StartStep(actor_id=ana.person.id, traveler=trav.number, step_id=step.id)
    assert (started := await link.record(start, ana, trav)).delivered
    await cable.pull()
    assert link.online is True  # nothing has noticed yet
    lot = RecordValue(
        actor_id=ana.person.id, traveler=trav.number, item_id=step.items[0].id, value="LOT-A100"
    )
    assert not (await link.record(lot, ana, started.traveler)).delivered
    await cable.plug()
    await drain(link)
    (value,) = (await link.client.as_built("TRV-1001")).values
    assert value.entry.offline and value.entry.recorded_by == "Ana Ortiz"
    await link.close()


async def test_signing_offline_past_the_credential_window_is_refused(
    live_server: LiveServer, cable: Cable, tmp_path: Path
) -> None:
    clock = Clock()
    link = await open_link(cable, live_server.token(), tmp_path, clock)
    await link.login("10001")
    await cable.pull()
    clock.now += timedelta(hours=7, minutes=59)
    assert (await link.identify(Credentials(badge="10001", pin="1111"))).offline
    clock.now += timedelta(minutes=2)
    with pytest.raises(Refused) as refused:
        await link.identify(Credentials(badge="10001", pin="1111"))
    assert refused.value.rule == "offline_window_expired"
    assert "credential window" in refused.value.detail
    await link.close()


NOT_ACCEPTED = "Badge or PIN not accepted. Repeated wrong PINs lock the badge."
LOCKED = "This badge is locked after repeated wrong PINs; a supervisor must unlock it."


async def test_offline_wrong_pins_lock_and_unknown_people_are_refused(
    live_server: LiveServer, cable: Cable, tmp_path: Path
) -> None:
    clock = Clock()
    link = await open_link(cable, live_server.token(), tmp_path, clock)
    await link.login("10001")
    await cable.pull()
    with pytest.raises(Refused, match="have signed in here before"):
        await link.login("20001")  # Ivy never identified at this station
    with pytest.raises(Refused) as unknown:
        await link.identify(Credentials(badge="20001", pin="2222"))
    assert unknown.value.detail == NOT_ACCEPTED  # the same answer as a wrong PIN
    for _ in range(4):
        with pytest.raises(Refused) as wrong:
            await link.identify(Credentials(badge="10001", pin="0000"))
        assert wrong.value.detail == NOT_ACCEPTED  # names nobody
    with pytest.raises(Refused) as locked:
        await link.identify(Credentials(badge="10001", pin="0000"))
    assert locked.value.detail == LOCKED
    with pytest.raises(Refused, match="locked"):
        await link.identify(Credentials(badge="10001", pin="1111"))
    await link.close()


async def test_offline_wrong_pins_count_across_a_restart_and_a_fresh_cache(
    live_server: LiveServer, cable: Cable, tmp_path: Path
) -> None:
    link = await open_link(cable, live_server.token(), tmp_path, Clock())
    ana = (await link.login("10001")).person
    await cable.pull()
    for _ in range(3):
        with pytest.raises(Refused):
            await link.identify(Credentials(badge="10001", pin="0000"))
    await link.close()

    # The station restarts, and the server hands it a fresh cache meanwhile: still 3 counted.
    await cable.plug()
    link = await open_link(cable, live_server.token(), tmp_path, Clock())
    await link.refresh_credentials()
    await cable.pull()
    assert link.identity.failures(ana.id) == 3
    with pytest.raises(Refused) as wrong:
        await link.identify(Credentials(badge="10001", pin="0000"))
    assert wrong.value.detail == NOT_ACCEPTED
    with pytest.raises(Refused) as locked:  # the fifth wrong PIN, across the restart
        await link.identify(Credentials(badge="10001", pin="0000"))
    assert locked.value.detail == LOCKED
    await link.close()


async def test_a_traveler_never_opened_here_is_not_available_offline(
    live_server: LiveServer, cable: Cable, tmp_path: Path
) -> None:
    link = await open_link(cable, live_server.token(), tmp_path, Clock())
    await cable.pull()
    with pytest.raises(BackendUnreachable, match="not available offline"):
        await link.traveler("TRV-2000")
    await link.close()
