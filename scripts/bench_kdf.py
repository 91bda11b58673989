"""What a stolen station cache costs an attacker: one guess at a badge, or at a badge's PIN.

Each guess is one argon2id with the cache's parameters (kiosk.server.security.CACHE_KDF). Beside it,
measured in the same run, interleaved: the HMAC a badge verifier used to be (what a guess cost
before), and the server's own argon2 PIN check. Prints the median of interleaved rounds and what a
whole badge or PIN space costs on one core of this machine.

    .venv/bin/python scripts/bench_kdf.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kiosk.identity import badge_key, pin_key  # noqa: E402
from kiosk.server.security import CACHE_KDF, hash_pin, pin_matches  # noqa: E402

SALT = b"\x07" * 16


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    stored = hash_pin("1234")
    cases: dict[str, Callable[[int], object]] = {
        "badge guess (argon2id, cache)": lambda n: badge_key(f"{n:05d}", SALT, CACHE_KDF),
        "PIN guess (argon2id, cache)": lambda n: pin_key("10001", f"{n:04d}", SALT, CACHE_KDF),
        "baseline: HMAC badge verifier": lambda n: hmac.new(
            SALT, f"{n:05d}".encode(), hashlib.sha256
        ).digest(),
        "baseline: server PIN check": lambda n: pin_matches(stored, f"{n:04d}"),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for n in range(args.rounds):  # interleaved: a busy moment hits every case alike
        for name, work in cases.items():
            times[name].append(timed(lambda w=work, k=n: w(k)))  # type: ignore[misc]
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"argon2id m={CACHE_KDF.memory_kib} KiB t={CACHE_KDF.time_cost} "
        f"p={CACHE_KDF.parallelism}, median of {args.rounds} interleaved rounds:"
    )
    for name, seconds in median.items():
        print(f"  {name:32s} {seconds * 1000:9.3f} ms")
    badge, pin = median["badge guess (argon2id, cache)"], median["PIN guess (argon2id, cache)"]
    hmac_cost = median["baseline: HMAC badge verifier"]
    print(f"  badge guess / HMAC verifier      {badge / hmac_cost:9.0f}x")
    print("one core, whole space:")
    print(f"  100,000 five-digit badges        {100_000 * badge / 60:9.1f} min")
    print(f"  2^24 badge numbers (HID 26-bit)  {2**24 * badge / 86_400:9.1f} days")
    print(f"  10,000 four-digit PINs           {10_000 * pin / 60:9.1f} min")
    print(f"  1,000,000 six-digit PINs         {1_000_000 * pin / 3600:9.1f} h")


if __name__ == "__main__":
    main()
