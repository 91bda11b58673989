"""Routes of the live board: open a board session, read the board (a long poll), answer a help
or stop request. Included by kiosk.server.app beside the execution API's routes."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from starlette.concurrency import run_in_threadpool

from kiosk.server import board
from kiosk.server.api import ERRORS, Service, Station
from kiosk.wire import ActionApplied, AdminSession, AndonAnswerEnvelope, Board, Credentials

router = APIRouter(prefix="/api/v1", responses=ERRORS)
BoardToken = Annotated[str | None, Header(alias="X-Board-Session")]
Version = Annotated[str | None, Query(min_length=1, max_length=64)]
Wait = Annotated[float, Query(ge=0, le=board.LONGEST_WAIT)]


@router.post("/board/session", response_model=AdminSession)
def board_session(svc: Service, st: Station, body: Credentials) -> AdminSession:
    """Open the live board with the badge + PIN of a supervisor, quality or an admin."""
    person = svc.verify_credentials(st, body)
    with svc.store.begin() as conn:
        return board.open_session(conn, st, person, svc.clock())


def _read(svc: Service, st: Station, session: str | None) -> Board:
    with svc.store.read() as conn:
        board.viewer(conn, st, session, svc.clock())
        return board.read(conn, svc.clock())


@router.get("/board", response_model=Board)
async def live_board(
    request: Request,
    svc: Service,
    st: Station,
    session: BoardToken = None,
    after: Version = None,
    wait: Wait = 0,
) -> Board:
    """The floor now; with `after` (the version a client shows), answered once the board differs
    from it or `wait` seconds have passed, whichever is first (a long poll)."""
    found, waited = await run_in_threadpool(_read, svc, st, session), 0.0
    while found.version == after and (pause := board.wait_step(waited, wait)) is not None:
        await asyncio.sleep(pause)
        if await request.is_disconnected():  # the board closed: stop reading for it
            break
        waited += pause
        found = await run_in_threadpool(_read, svc, st, session)
    return found


@router.post("/board/andon", response_model=ActionApplied)
def answer_andon(
    svc: Service, st: Station, body: AndonAnswerEnvelope, session: BoardToken = None
) -> ActionApplied:
    """Acknowledge or resolve a help or stop request, as the board session's supervisor."""
    with svc.store.begin() as conn:
        person = board.viewer(conn, st, session, svc.clock())
        return board.answer(conn, st, person, body.action, svc.clock())
