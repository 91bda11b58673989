"""Savepoints that are never released (kiosk/server/audit.py `savepoint`): a rollback goes back to
its own savepoint, however many came and stayed before it, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, text

from kiosk.server.audit import savepoint
from kiosk.server.service import ExecutionService


class Refused(Exception):
    pass


def mark(conn: Connection, n: int) -> None:
    conn.execute(text("INSERT INTO marks (n) VALUES (:n)"), {"n": n})


def refused_after_marking(conn: Connection, n: int) -> None:
    """An action that writes, then is refused: its savepoint gives the write back."""
    with pytest.raises(Refused), savepoint(conn):
        mark(conn, n)
        raise Refused


def test_each_rollback_goes_back_to_its_own_savepoint(service: ExecutionService) -> None:
    with service.store.engine.begin() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE marks (n INTEGER)"))
        with savepoint(conn):  # a batch
            for n in (1, 2, 3):  # its actions, each on a savepoint of its own, none released
                with savepoint(conn):
                    mark(conn, n)
            refused_after_marking(conn, 4)
            with savepoint(conn):
                mark(conn, 5)
        # A second batch whose last step fails: all of it goes, the first batch stays.
        with pytest.raises(Refused), savepoint(conn):
            for n in (6, 7):
                with savepoint(conn):
                    mark(conn, n)
            raise Refused
        refused_after_marking(conn, 8)  # alone, outside any batch
        mark(conn, 9)
        kept = [row.n for row in conn.execute(text("SELECT n FROM marks ORDER BY n"))]
        conn.execute(text("DROP TABLE marks"))
    assert kept == [1, 2, 3, 5, 9]
