"""Working through an outage: cached reads, offline identity, signatures marked offline, the window."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiosk.client import BackendUnreachable, ExecutionClient, Refused
from kiosk.client.link import StationLink
from kiosk.wire import Credentials, Meaning, RecordValue, SignStep, StartStep, StationAttestation
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
    ana = await link.login("10001")
    trav = await link.traveler("TRV-1001")
    step = trav.steps[0]

    await cable.pull()
    trav = await link.traveler("TRV-1001")  # from the cache
    assert link.online is False
    assert (await link.login("10001")).name == "Ana Ortiz"  # identified from the credential cache
    done = await link.record(
        StartStep(actor_id=ana.id, traveler=trav.number, step_id=step.id), ana, trav
    )
    assert not done.delivered and "sent when the server is back" in done.message
    trav = done.traveler
    for item, value in zip(step.items, ["LOT-A100", "acknowledged"], strict=True):
        trav = (
            await link.record(
                RecordValue(actor_id=ana.id, traveler=trav.number, item_id=item.id, value=value),
                ana,
                trav,
            )
        ).traveler
    proof = await link.identify(Credentials(badge="10001", pin="1111"))
    assert proof.offline and proof.signer.name == "Ana Ortiz"
    sign = SignStep(
        actor_id=ana.id,
        traveler=trav.number,
        step_id=step.id,
        meaning=Meaning.PERFORMED,
        attestation=proof.attestation,
    )
    trav = (await link.record(sign, ana, trav, signer=proof.signer)).traveler
    assert trav.steps[0].status.value == "complete"
    assert trav.steps[0].signatures[0].printed_name == "Ana Ortiz"
    assert link.waiting() == 4
    # Reopening the traveler offline shows the same: the pending actions are projected on it.
    assert (await link.traveler("TRV-1001")).steps[0].status.value == "complete"

    await cable.plug()
    for _ in range(200):
        link.sender.nudge()
        await asyncio.sleep(0.05)
        if link.waiting() == 0:
            break
    assert link.waiting() == 0
    assert not link.refused(), [(e.rule, e.message) for e in link.refused()]
    record = await link.client.as_built("TRV-1001")
    signature = record.traveler.steps[0].signatures[0]
    assert signature.offline and signature.station_time is not None
    assert signature.server_time >= signature.station_time
    values = [v.entry for v in record.values if v.step == "10.1"]
    assert len(values) == 2 and all(v.offline and v.station_time for v in values)
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


async def test_offline_wrong_pins_lock_and_unknown_people_are_refused(
    live_server: LiveServer, cable: Cable, tmp_path: Path
) -> None:
    clock = Clock()
    link = await open_link(cable, live_server.token(), tmp_path, clock)
    await link.login("10001")
    await cable.pull()
    with pytest.raises(Refused, match="have signed in here before"):
        await link.login("20001")  # Ivy never identified at this station
    for tries_left in (4, 3, 2, 1):
        with pytest.raises(Refused, match=f"{tries_left} tr"):
            await link.identify(Credentials(badge="10001", pin="0000"))
    with pytest.raises(Refused, match="now locked"):
        await link.identify(Credentials(badge="10001", pin="0000"))
    with pytest.raises(Refused, match="locked"):
        await link.identify(Credentials(badge="10001", pin="1111"))
    await link.close()


async def test_a_traveler_never_opened_here_is_not_available_offline(
    live_server: LiveServer, cable: Cable, tmp_path: Path
) -> None:
    link = await open_link(cable, live_server.token(), tmp_path, Clock())
    await cable.pull()
    with pytest.raises(BackendUnreachable, match="not available offline"):
        await link.traveler("TRV-2000")
    await link.close()


def test_server_refuses_an_offline_signature_made_outside_the_window(
    live_server: LiveServer,
) -> None:
    svc = live_server.service
    token = live_server.token()
    station = svc.authenticate(token)
    ana = svc.login(station, "10001")
    svc.credential_cache(station)
    trav = svc.traveler("TRV-1002")
    step = trav.steps[2]  # 20.1, in reach after 10.x
    issued = datetime.now(UTC)

    def sign(at: datetime, key: str) -> tuple[int, str]:
        action = SignStep(actor_id=ana.id, traveler="TRV-1002", step_id=step.id, meaning=Meaning.PERFORMED,
                          offline=True, attestation=StationAttestation(signer_id=ana.id, verified_at=at))  # fmt: skip
        return svc.perform(station, key, action)

    status, body = sign(issued + timedelta(hours=9), "late-signature")
    assert status == 409 and "offline_window_expired" in body
    status, body = sign(issued + timedelta(minutes=5), "timely-signature")
    assert status == 409 and "step_not_started" in body  # identity accepted; the step rule speaks


def test_attestation_is_refused_on_an_online_action(live_server: LiveServer) -> None:
    svc = live_server.service
    station = svc.authenticate(live_server.token())
    ana = svc.login(station, "10001")
    trav = svc.traveler("TRV-1001")
    action = SignStep(actor_id=ana.id, traveler="TRV-1001", step_id=trav.steps[0].id, meaning=Meaning.PERFORMED,
                      attestation=StationAttestation(signer_id=ana.id, verified_at=datetime.now(UTC)))  # fmt: skip
    status, body = svc.perform(station, "online-attestation", action)
    assert status == 403 and "attestation_online" in body
