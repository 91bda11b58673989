"""Forgeries by someone holding one enrolled station's token and its credential cache (root on a
thin client) and nothing else: each is refused over the real socket, typed, with nothing changed.

TRUST-MODEL.md: a station token proves "this request comes from station S", never a person; a
person session proves "P badged in at S"; offline, only a key the badge (and PIN) unwrap does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiosk.client import ExecutionClient, Refused, RuleRefused
from kiosk.client.local_db import LocalDb
from kiosk.client.offline_identity import HeldKey, OfflineIdentity
from kiosk.client.reads import ReadCache
from kiosk.identity import Purpose, action_mac, new_nonce
from kiosk.wire import (
    Action,
    Credentials,
    Meaning,
    OfflineProof,
    OfflineSignature,
    PauseStep,
    PlaceHold,
    RecordValue,
    ReleaseHold,
    SignStep,
    StartStep,
)
from tests.conftest import LiveServer
from tests.helpers import new_key, person_ids, snapshot, step_of


@dataclass
class Station:
    """One enrolled station, as its token and cache let anyone with root on it act."""

    client: ExecutionClient
    id: int
    identity: OfflineIdentity

    async def cache(self) -> None:
        self.identity.store(await self.client.credential_cache())

    def proof(self, purpose: Purpose, key: HeldKey, action: Action) -> OfflineProof:
        nonce = new_nonce()
        mac = action_mac(key.secret, purpose, self.id, nonce, action)
        return OfflineProof(cache_id=key.cache_id, nonce=nonce, mac=mac)


@pytest.fixture
async def stations(
    live_server: LiveServer, tmp_path: Path
) -> AsyncIterator[dict[str, Station]]:
    made: dict[str, Station] = {}
    for name, center in (("DEMO-01", "ASSEMBLY"), ("OFFICE-01", "ASSEMBLY"), ("PAINT-01", "PAINT")):
        client = ExecutionClient(live_server.url, live_server.token(name, center))
        info = await client.station()
        db = LocalDb(tmp_path / name / "station.db")
        made[name] = Station(client, info.id, OfflineIdentity(ReadCache(db), db))
    yield made
    for station in made.values():
        await station.client.aclose()


@pytest.fixture
def ids(live_server: LiveServer) -> dict[str, int]:
    return person_ids(live_server.service)


NOW = datetime.now(UTC)


async def test_a_station_token_alone_names_nobody(
    live_server: LiveServer, stations: dict[str, Station], ids: dict[str, int]
) -> None:
    before = snapshot(live_server.service, "TRV-1001")
    forged = PlaceHold(actor_id=ids["sam"], traveler="TRV-1001", reason="Forged in Sam's name")
    with pytest.raises(Refused) as refused:
        await stations["DEMO-01"].client.perform(forged)
    assert (refused.value.status, refused.value.rule) == (403, "actor_unproven")
    assert snapshot(live_server.service, "TRV-1001") == before


async def test_a_session_from_another_station_or_person_proves_nothing_here(
    live_server: LiveServer, stations: dict[str, Station], ids: dict[str, int]
) -> None:
    sam_at_office = await stations["OFFICE-01"].client.login("30001")
    ana_here = await stations["DEMO-01"].client.login("10001")
    before = snapshot(live_server.service, "TRV-1001")
    for session in (sam_at_office.session, ana_here.session):  # elsewhere; someone else's
        forged = PlaceHold(
            actor_id=ids["sam"], traveler="TRV-1001", reason="Forged hold", session=session
        )
        with pytest.raises(Refused) as refused:
            await stations["DEMO-01"].client.perform(forged)
        assert refused.value.rule == "session_invalid"
    assert snapshot(live_server.service, "TRV-1001") == before


async def test_a_session_ends_at_sign_out_and_at_the_next_badge(
    live_server: LiveServer, stations: dict[str, Station], ids: dict[str, int]
) -> None:
    demo = stations["DEMO-01"].client
    trav = live_server.service.traveler("TRV-1001")
    start = StartStep(actor_id=ids["ana"], traveler="TRV-1001", step_id=trav.steps[0].id)

    first = await demo.login("10001")
    assert await demo.logout(first.session) == 1
    second = await demo.login("10001")
    await demo.login("10002")  # Ben badges in: Ana's session there ends
    before = snapshot(live_server.service, "TRV-1001")
    for ended in (first.session, second.session):
        with pytest.raises(Refused) as refused:
            await demo.perform(start.model_copy(update={"session": ended}))
        assert refused.value.rule == "session_ended"
    assert snapshot(live_server.service, "TRV-1001") == before
    third = await demo.login("10001")
    started = await demo.perform(start.model_copy(update={"session": third.session}))
    assert step_of(started.traveler, "10.1").status.value == "in_work"


async def test_nobody_can_be_attested_where_they_never_badged_in_online(
    live_server: LiveServer, stations: dict[str, Station], ids: dict[str, int]
) -> None:
    demo = stations["OFFICE-01"]
    ana = await demo.client.login("10001")  # only Ana is known here
    await demo.cache()
    cache = demo.identity.cache()
    assert cache is not None and [p.person.name for p in cache.people] == ["Ana Ortiz"]
    made_up = HeldKey(cache.id, b"\x00" * 32)
    release = ReleaseHold(actor_id=ids["ana"], traveler="TRV-1003", session=ana.session)
    forged = release.model_copy(
        update={
            "offline": True,
            "station_time": datetime.now(UTC),
            "attestation": OfflineSignature(
                signer_id=ids["sam"], **demo.proof("sign", made_up, release).model_dump()
            ),
        }
    )
    before = snapshot(live_server.service, "TRV-1003")
    with pytest.raises(Refused) as refused:
        await demo.client.perform(forged)
    assert refused.value.rule == "not_in_cache"
    assert "signed in here online" in refused.value.detail
    assert snapshot(live_server.service, "TRV-1003") == before


async def test_an_offline_signature_needs_the_pin_not_only_the_badge(
    live_server: LiveServer, stations: dict[str, Station], ids: dict[str, int]
) -> None:
    """Root on the station, the cache and Ana's badge in hand: acting as Ana offline is possible
    (README: the badge alone proves the actor offline), signing as her is not."""
    demo = stations["DEMO-01"]
    await demo.client.login("10001")
    await demo.cache()
    trav = live_server.service.traveler("TRV-1001")
    step = trav.steps[0]
    _, actor_key = demo.identity.badge_in("10001", "ASSEMBLY", datetime.now(UTC))
    with pytest.raises(Refused):
        demo.identity.attest(Credentials(badge="10001", pin="1112"), datetime.now(UTC))

    def offline(action: Action) -> Action:
        action = action.model_copy(update={"offline": True, "station_time": datetime.now(UTC)})
        return action.model_copy(update={"actor_proof": demo.proof("act", actor_key, action)})

    for action in (
        StartStep(actor_id=ids["ana"], traveler="TRV-1001", step_id=step.id),
        RecordValue(
            actor_id=ids["ana"], traveler="TRV-1001", item_id=step.items[0].id, value="LOT-A100"
        ),
        RecordValue(
            actor_id=ids["ana"], traveler="TRV-1001", item_id=step.items[1].id, value="ack"
        ),
    ):
        await demo.client.perform(offline(action))
    sign = offline(
        SignStep(actor_id=ids["ana"], traveler="TRV-1001", step_id=step.id, meaning=Meaning.PERFORMED)
    )
    before = snapshot(live_server.service, "TRV-1001")
    # Without the PIN the signing key stays wrapped: MACs with the badge-only key, or any other.
    for wrong in (actor_key, HeldKey(actor_key.cache_id, b"\x01" * 32)):
        forged = sign.model_copy(
            update={
                "attestation": OfflineSignature(
                    signer_id=ids["ana"], **demo.proof("sign", wrong, sign).model_dump()
                )
            }
        )
        with pytest.raises(Refused) as refused:
            await demo.client.perform(forged)
        assert refused.value.rule == "proof_invalid"
        assert "badge and PIN" in refused.value.detail
    assert snapshot(live_server.service, "TRV-1001") == before

    # With badge and PIN it stands, marked offline.
    _, signing_key = demo.identity.attest(Credentials(badge="10001", pin="1111"), datetime.now(UTC))
    signed = sign.model_copy(
        update={
            "attestation": OfflineSignature(
                signer_id=ids["ana"], **demo.proof("sign", signing_key, sign).model_dump()
            )
        }
    )
    result = await demo.client.perform(signed)
    (manifest,) = step_of(result.traveler, "10.1").signatures
    assert manifest.offline and manifest.printed_name == "Ana Ortiz"


async def test_a_proof_is_good_once_for_one_action_at_one_station(
    live_server: LiveServer, stations: dict[str, Station], ids: dict[str, int]
) -> None:
    demo, office = stations["DEMO-01"], stations["OFFICE-01"]
    await demo.client.login("10001")
    await demo.cache()
    _, key = demo.identity.badge_in("10001", "ASSEMBLY", datetime.now(UTC))
    step = live_server.service.traveler("TRV-1001").steps[0]
    start = StartStep(
        actor_id=ids["ana"], traveler="TRV-1001", step_id=step.id, offline=True,
        station_time=datetime.now(UTC),
    )  # fmt: skip
    proven = start.model_copy(update={"actor_proof": demo.proof("act", key, start)})
    await demo.client.perform(proven, key=new_key())

    pause = PauseStep.model_validate(  # the same proof on another act
        {**proven.model_dump(), "kind": "pause_step"}
    )
    before = snapshot(live_server.service, "TRV-1001")
    attempts: list[tuple[Station, Action, str]] = [
        (demo, proven, "proof_replayed"),  # replayed under a new idempotency key
        (demo, pause, "proof_invalid"),
        (office, proven, "proof_invalid"),  # carried to another station
    ]
    for station, action, rule in attempts:
        with pytest.raises(Refused) as refused:
            await station.client.perform(action, key=new_key())
        assert refused.value.rule == rule, action.kind
    assert snapshot(live_server.service, "TRV-1001") == before


async def test_a_paint_operator_cannot_work_at_an_assembly_station(
    live_server: LiveServer, stations: dict[str, Station], ids: dict[str, int]
) -> None:
    """Olu is qualified for PAINT only: no session at ASSEMBLY, and his PAINT session (or his
    PAINT station) cannot reach an ASSEMBLY step."""
    ana = await stations["DEMO-01"].client.login("10001")
    trav = live_server.service.traveler("TRV-1001")
    step = trav.steps[0]
    await stations["DEMO-01"].client.perform(
        StartStep(actor_id=ids["ana"], traveler="TRV-1001", step_id=step.id, session=ana.session)
    )
    with pytest.raises(Refused) as refused:
        await stations["DEMO-01"].client.login("10003")
    assert refused.value.rule == "not_qualified"
    olu = await stations["PAINT-01"].client.login("10003")
    record = RecordValue(
        actor_id=ids["olu"], traveler="TRV-1001", item_id=step.items[0].id, value="LOT-A100",
        session=olu.session,
    )  # fmt: skip
    before = snapshot(live_server.service, "TRV-1001")
    with pytest.raises(Refused) as refused:
        await stations["DEMO-01"].client.perform(record)
    assert refused.value.rule == "session_invalid"
    with pytest.raises(RuleRefused) as wrong_place:
        await stations["PAINT-01"].client.perform(record)
    assert wrong_place.value.rule == "wrong_work_center"
    assert snapshot(live_server.service, "TRV-1001") == before


async def test_a_redline_is_acknowledged_offline_only_with_the_operators_badge(
    live_server: LiveServer, stations: dict[str, Station], ids: dict[str, int]
) -> None:
    """An engineering change's redline, acknowledged while the station is offline: the badge's
    proof stands for the operator, as for any action; a key the badge did not unwrap does not."""
    from kiosk.server import revise
    from kiosk.wire import AcknowledgeRedline
    from tests.test_revise import EXAMPLE

    demo = stations["DEMO-01"]
    await demo.client.login("10001")
    await demo.cache()
    _, actor_key = demo.identity.badge_in("10001", "ASSEMBLY", datetime.now(UTC))
    service = live_server.service
    step = step_of(service.traveler("TRV-1002"), "20.1")
    start = StartStep(actor_id=ids["ana"], traveler="TRV-1002", step_id=step.id, offline=True,
                      station_time=datetime.now(UTC))  # fmt: skip
    await demo.client.perform(start.model_copy(update={"actor_proof": demo.proof("act", actor_key, start)}))
    revise.issue(service.store, revise.read_revision(EXAMPLE), datetime.now(UTC))
    (red,) = step_of(service.traveler("TRV-1002"), "20.1").redlines
    ack = AcknowledgeRedline(actor_id=ids["ana"], traveler="TRV-1002", step_id=step.id,
                             redline_id=red.id, offline=True, station_time=datetime.now(UTC))  # fmt: skip
    before = snapshot(service, "TRV-1002")
    forged = ack.model_copy(
        update={"actor_proof": demo.proof("act", HeldKey(actor_key.cache_id, b"\x01" * 32), ack)}
    )
    with pytest.raises(Refused) as refused:
        await demo.client.perform(forged)
    assert refused.value.rule == "proof_invalid"
    assert snapshot(service, "TRV-1002") == before
    done = await demo.client.perform(
        ack.model_copy(update={"actor_proof": demo.proof("act", actor_key, ack)})
    )
    assert done.message == "Ana Ortiz acknowledged ECN-0042 on step 20.1: now at rev D."
    assert step_of(done.traveler, "20.1").redlines == ()


def test_a_plant_server_uses_the_real_argon2_cost_and_only_test_rigs_the_floor() -> None:
    """The suite runs argon2 at its floor (tests/__init__.py); a server without the variable must
    not: 64 MiB and two passes per guess at a stolen cache, OWASP's profile for PINs."""
    show = (
        "import json; from kiosk.server import security as s; "
        "print(json.dumps([s.CACHE_KDF.model_dump(), s.hash_pin('1234').split('$')[3]]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "KIOSK_ARGON2_FLOOR"}
    plant = subprocess.run(
        [sys.executable, "-c", show], env=env, capture_output=True, text=True, check=True
    )
    rig = subprocess.run(
        [sys.executable, "-c", show], capture_output=True, text=True, check=True
    )
    assert json.loads(plant.stdout) == [
        {"time_cost": 2, "memory_kib": 65536, "parallelism": 1},
        "m=19456,t=2,p=1",
    ]
    assert json.loads(rig.stdout) == [
        {"time_cost": 1, "memory_kib": 8192, "parallelism": 1},
        "m=8192,t=1,p=1",
    ]
