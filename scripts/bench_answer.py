"""Record → answer: how long an operator waits, online, for the server's word on a value.

A value recorded on TRV-2000 (200 steps) through the station's link against the reference server
(`kiosk serve` on loopback, demo plant on a SQLite file), two ways in interleaved pairs:

* now: the sender hands the server's answer to the waiting call (a future per outbox entry) and
  the answer is applied to the traveler on screen;
* baseline, the way it was done before, measured in the same run on the same server: the entry is
  committed and the sender nudged, the outbox read back every 20 ms until it is answered, and the
  whole traveler fetched again.

Prints the medians of both and their ratio (now / baseline; lower is better).

    .venv/bin/python scripts/bench_answer.py [--pairs 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kiosk.client import ExecutionClient  # noqa: E402
from kiosk.client.link import PersonSession, StationLink  # noqa: E402
from kiosk.server import demo  # noqa: E402
from kiosk.server.app import ServerConfig, open_service  # noqa: E402
from kiosk.wire import RecordValue, StartStep, Traveler  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from bench_drain import server  # noqa: E402  (the same `kiosk serve` child, started alike)

NUMBER = "TRV-2000"
POLL = 0.02  # the old wait loop's step


async def now(link: StationLink, ana: PersonSession, trav: Traveler, action: RecordValue) -> float:
    start = time.perf_counter()
    done = await link.record(action, ana, trav)
    assert done.delivered, done.message
    return time.perf_counter() - start


async def baseline(link: StationLink, ana: PersonSession, action: RecordValue) -> float:
    """The old way: commit, nudge, read the outbox back every 20 ms, then fetch the traveler."""
    start = time.perf_counter()
    proven = action.model_copy(update={"session": ana.token, "actor_id": ana.person.id})
    entry = await asyncio.to_thread(link.outbox.record, proven, ana.person)
    link.sender.nudge()
    while (await asyncio.to_thread(link.outbox.get, entry.seq)).state == "pending":
        await asyncio.sleep(POLL)
    await link.traveler(NUMBER)
    return time.perf_counter() - start


async def measure(url: str, token: str, data_dir: Path, pairs: int) -> tuple[float, float]:
    link = StationLink(ExecutionClient(url, token, timeout=10.0), data_dir)
    await link.station()
    link.start()
    ana = await link.login("10001")
    trav = await link.traveler(NUMBER)
    step = trav.steps[0]
    trav = (
        await link.record(
            StartStep(actor_id=ana.person.id, traveler=NUMBER, step_id=step.id), ana, trav
        )
    ).traveler
    item = step.items[0]
    times: dict[str, list[float]] = {"now": [], "baseline": []}
    for n in range(pairs + 1):  # the first pair warms both paths up and is not counted
        action = RecordValue(actor_id=ana.person.id, traveler=NUMBER, item_id=item.id, value="4.83")
        order = ("now", "baseline") if n % 2 else ("baseline", "now")
        for way in order:
            if way == "now":
                trav = await link.traveler(NUMBER)  # the screen's traveler, as opened
                took = await now(link, ana, trav, action)
            else:
                took = await baseline(link, ana, action)
            if n:
                times[way].append(took)
    await link.close()
    return statistics.median(times["now"]), statistics.median(times["baseline"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=30, help="interleaved pairs measured")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        config = ServerConfig(
            f"sqlite:///{directory / 'plant.db'}", directory / "secret", demo=True
        )
        svc = open_service(config)
        token = svc.local_station_token(demo.DEMO_STATION, demo.WORK_CENTER)
        svc.store.dispose()
        with server(config) as url:
            ours, old = asyncio.run(measure(url, token, directory / "station", args.pairs))
    print(
        f"record -> answer on {NUMBER} ({args.pairs} pairs, medians): now {ours * 1000:.1f} ms, "
        f"baseline (poll the outbox, fetch again) {old * 1000:.1f} ms, ratio {ours / old:.2f}"
    )


if __name__ == "__main__":
    main()
