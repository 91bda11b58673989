"""A station process that records actions into its outbox and says so only after each COMMIT.

Run as `python -m tests.outbox_worker DATA_DIR TRAVELER ITEM_ID ACTOR_ID COUNT SESSION`. Each line on stdout
("seq key") is a confirmation an operator would have seen on screen; the parent may SIGKILL this
process at any moment.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kiosk.client.station_db import open_outbox
from kiosk.wire import Person, RecordValue, Role


def main() -> None:
    data_dir, traveler, item_id, actor_id, count, session = sys.argv[1:7]
    outbox = open_outbox(Path(data_dir))
    start = sum(outbox.counts().values())  # notes are numbered on from the previous runs
    for n in range(start, start + int(count)):
        action = RecordValue(
            actor_id=int(actor_id),
            session=session,
            traveler=traveler,
            item_id=int(item_id),
            value=f"note {n}",
        )
        entry = outbox.record(
            action, Person(id=int(actor_id), name="Ana Ortiz", roles=(Role.OPERATOR,))
        )
        sys.stdout.write(f"{entry.seq} {entry.key}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
