"""Async HTTP client of the execution API: explicit timeouts, typed errors, wire models."""

from __future__ import annotations

import ssl
import uuid
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from kiosk.client import errors, tls
from kiosk.wire import (
    Action,
    ActionApplied,
    ActionBatch,
    ActionEnvelope,
    ActionResult,
    AdminSession,
    AndonAnswer,
    AndonAnswerEnvelope,
    AsBuilt,
    BadgeLogin,
    BatchResult,
    Board,
    CredentialCache,
    Credentials,
    Document,
    DocumentLink,
    Enrollment,
    EnrollRequest,
    Heartbeat,
    HeartbeatAnswer,
    Person,
    PlantOverview,
    RequestUpload,
    SignedIn,
    SignOut,
    StationConfig,
    StationInfo,
    Tool,
    Traveler,
    TravelerSummary,
    UnlockUser,
    UploadLink,
    UploadStatus,
    Verified,
)

T = TypeVar("T")

# Connect fails fast (a dead server should show as offline within seconds); reads get longer.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0, pool=2.0)
_QUEUE = TypeAdapter(list[TravelerSummary])
_INT = TypeAdapter(int)
_STR = TypeAdapter(str)

_BY_STATUS: dict[int, type[errors.BackendError]] = {
    400: errors.Invalid,  # malformed (the server's guard): this request, never the server
    413: errors.Invalid,
    401: errors.StationNotEnrolled,
    403: errors.Refused,
    404: errors.NotFound,
    409: errors.RuleRefused,
    422: errors.Invalid,
    429: errors.RateLimited,
}


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


class ExecutionClient:
    """One station's connection to the execution API."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        """`verify`: whom to trust for https (tls.client_context); default: the station's CA
        as decided at start-up (tls.use_for_station). A given `transport` brings its own."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        if transport is None:
            # In httpx the transport owns TLS: a client-level verify= is ignored once a
            # transport is passed, so the context goes here.
            transport = httpx.AsyncHTTPTransport(
                retries=2, verify=verify if verify is not None else tls.default_context()
            )
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
        )

    def __repr__(self) -> str:
        return f"ExecutionClient({self.base_url!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ExecutionClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    # --- calls ------------------------------------------------------------------------------------

    async def healthy(self) -> bool:
        try:
            response = await self._http.get("/health")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def enroll(self, code: str) -> Enrollment:
        return await self._call("POST", "/api/v1/enroll", Enrollment, EnrollRequest(code=code))

    async def station(self) -> StationInfo:
        return await self._call("GET", "/api/v1/station", StationInfo)

    async def login(self, badge: str) -> SignedIn:
        """Badge-in: who it is, and the person session that proves them on actions here."""
        return await self._call("POST", "/api/v1/login", SignedIn, BadgeLogin(badge=badge))

    async def logout(self, session: str, reason: str = "sign_out") -> int:
        body = SignOut.model_validate({"session": session, "reason": reason})
        return await self._call("POST", "/api/v1/logout", _INT, body)

    async def verify(self, credentials: Credentials) -> Verified:
        """Badge + PIN checked by the server; wrong PINs count toward lock-out.

        The answer's single-use ticket lets a queued signature prove its signer without a PIN.
        """
        return await self._call("POST", "/api/v1/verify", Verified, credentials)

    async def credential_cache(self) -> CredentialCache:
        return await self._call("GET", "/api/v1/credential-cache", CredentialCache)

    async def deliver(self, batch: ActionBatch) -> BatchResult:
        """Deliver outbox entries; each carries its own idempotency key inside the batch."""
        return await self._call("POST", "/api/v1/actions/batch", BatchResult, batch)

    async def queue(
        self, *, after: str | None = None, search: str | None = None, limit: int | None = None
    ) -> list[TravelerSummary]:
        """A page of this station's queue (the server's default page unless `limit`)."""
        query = _query(after=after, search=search, limit=limit)
        return await self._call("GET", f"/api/v1/queue{query}", _QUEUE)

    async def traveler(
        self,
        number: str,
        *,
        operation: str | None = None,
        first: str | None = None,
        last: str | None = None,
    ) -> Traveler:
        """The traveler, or only one operation's steps, or steps `first` to `last`."""
        query = _query(operation=operation, first=first, last=last)
        return await self._call("GET", f"/api/v1/travelers/{_path(number)}{query}", Traveler)

    async def tool(self, code: str) -> Tool:
        """A tool of the crib register with its calibration due date (NotFound, rule
        `tool_unknown`, when the register has none)."""
        return await self._call("GET", f"/api/v1/tools/{_path(code)}", Tool)

    async def as_built(self, number: str) -> AsBuilt:
        return await self._call("GET", f"/api/v1/travelers/{_path(number)}/as-built", AsBuilt)

    async def perform(self, action: Action, key: str | None = None) -> ActionResult:
        """Send one action. Reuse `key` when retrying the same action: it is applied once."""
        return await self._call(
            "POST", "/api/v1/actions", ActionResult, ActionEnvelope(action=action), key=key
        )

    async def unlock(
        self, user_id: int, credentials: Credentials, key: str | None = None
    ) -> Person:
        body = UnlockUser(user_id=user_id, credentials=credentials)
        return await self._call("POST", "/api/v1/users/unlock", Person, body, key=key)

    # --- photos and files as evidence ------------------------------------------------------------

    async def request_upload(self, body: RequestUpload) -> UploadLink:
        """A one-use upload link for a photo or file item, on the person's session."""
        return await self._call("POST", "/api/v1/uploads", UploadLink, body)

    async def upload_status(self, link_id: int) -> UploadStatus:
        return await self._call("GET", f"/api/v1/uploads/{link_id}", UploadStatus)

    async def evidence(self, sha256: str) -> bytes:
        """A kept photo or file's bytes, for its thumbnail."""
        try:
            response = await self._http.get(f"/api/v1/evidence/{sha256}")
        except httpx.HTTPError:
            raise errors.BackendUnreachable(
                f"Cannot reach the server at {self.base_url}."
            ) from None
        if response.status_code >= 400:
            raise _error(response)
        return response.content

    async def upload_through(self, url: str, data: bytes, name: str, media_type: str) -> None:
        """Send a file through a one-use upload link as a phone does: the link is its only
        credential, so the station's token does not go with it (the station's TLS trust does)."""
        request = self._http.build_request("POST", url, files={"file": (name, data, media_type)})
        request.headers.pop("Authorization", None)
        try:
            await self._http.send(request)
        except httpx.HTTPError:
            raise errors.BackendUnreachable(
                f"Cannot reach the server at {self.base_url}."
            ) from None

    # --- the fleet --------------------------------------------------------------------------------

    async def heartbeat(self, beat: Heartbeat) -> HeartbeatAnswer:
        return await self._call("POST", "/api/v1/heartbeat", HeartbeatAnswer, beat)

    async def admin_session(self, credentials: Credentials) -> AdminSession:
        return await self._call("POST", "/api/v1/admin/session", AdminSession, credentials)

    async def overview(self, session: str) -> PlantOverview:
        return await self._call(
            "GET", "/api/v1/admin/overview", PlantOverview, headers={"X-Admin-Session": session}
        )

    async def board_session(self, credentials: Credentials) -> AdminSession:
        """Open the live board with a supervisor's, quality's or an admin's badge + PIN."""
        return await self._call("POST", "/api/v1/board/session", AdminSession, credentials)

    async def board(self, session: str, after: str | None = None, wait: float = 0) -> Board:
        """The board; given the `after` version shown, answered once it changes or after
        `wait` seconds (a long poll: this request waits that much longer than others)."""
        return await self._call(
            "GET",
            f"/api/v1/board{_query(after=after, wait=wait or None)}",
            Board,
            headers={"X-Board-Session": session},
            timeout=wait + 10,
        )

    async def answer_andon(self, session: str, action: AndonAnswer) -> ActionApplied:
        """Acknowledge or resolve a help or stop request from the board."""
        return await self._call(
            "POST",
            "/api/v1/board/andon",
            ActionApplied,
            AndonAnswerEnvelope(action=action),
            headers={"X-Board-Session": session},
        )

    async def set_station_config(self, session: str, name: str, config: StationConfig) -> int:
        return await self._call(
            "PUT",
            f"/api/v1/admin/stations/{quote(name, safe='')}/config",
            _INT,
            config,
            headers={"X-Admin-Session": session},
        )

    async def add_station(self, session: str, name: str, work_center: str) -> str:
        """Create (or re-key) a station; answers its one-time enrollment code."""
        return await self._call(
            "POST",
            f"/api/v1/admin/stations/{quote(name, safe='')}?work_center={quote(work_center, safe='')}",
            _STR,
            headers={"X-Admin-Session": session},
        )

    # --- documents at revision ---------------------------------------------------------------------

    async def document(self, number: str, revision: str) -> Document:
        return await self._call("GET", _document_path(number, revision), Document)

    async def document_file(self, number: str, revision: str) -> bytes:
        """The document's bytes as the server keeps them (the caller checks their SHA-256)."""
        try:
            response = await self._http.get(_document_path(number, revision) + "/file")
        except httpx.HTTPError:
            raise errors.BackendUnreachable(
                f"Cannot reach the server at {self.base_url} for the document."
            ) from None
        if response.status_code >= 400:
            raise _error(response)
        return response.content

    async def document_link(self, number: str, revision: str) -> DocumentLink:
        """A signed link to the file for a tablet beside the station (good for minutes)."""
        return await self._call("GET", _document_path(number, revision) + "/link", DocumentLink)

    # --- plumbing ---------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        expect: type[T] | TypeAdapter[T],
        body: BaseModel | None = None,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> T:
        headers = dict(headers or {})
        if method == "POST":
            headers["Idempotency-Key"] = key or new_idempotency_key()
        content = None if body is None else body.model_dump_json()
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self._http.request(
                method,
                path,
                content=content,
                headers=headers,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except httpx.TimeoutException:
            raise errors.BackendUnreachable(
                "The server did not answer in time. Nothing was lost; try again."
            ) from None
        except httpx.HTTPError:
            raise errors.BackendUnreachable(
                f"Cannot reach the server at {self.base_url}. Check the network cable; "
                "call IT if it persists."
            ) from None
        if response.status_code >= 400:
            raise _error(response)
        return _parse(response, expect)


def _query(**params: str | int | float | None) -> str:
    given = {k: str(v) for k, v in params.items() if v is not None}
    return f"?{urlencode(given)}" if given else ""


def _path(number: str) -> str:
    return httpx.URL(number.strip().upper()).raw_path.decode()


def _document_path(number: str, revision: str) -> str:
    return f"/api/v1/documents/{quote(number.strip().upper(), safe='')}/{quote(revision.strip().upper(), safe='')}"


def _parse(response: httpx.Response, expect: type[T] | TypeAdapter[T]) -> T:
    try:
        if isinstance(expect, TypeAdapter):
            return expect.validate_json(response.content)
        assert issubclass(expect, BaseModel)
        return expect.model_validate_json(response.content)
    except ValidationError:
        raise errors.BadResponse(
            "The server sent an answer this station cannot read. Call IT: versions may differ.",
            status=response.status_code,
        ) from None


def _error(response: httpx.Response) -> errors.BackendError:
    problem: dict[str, Any] = {}
    try:
        parsed = response.json()
        if isinstance(parsed, dict):
            problem = parsed
    except ValueError:
        pass
    detail = problem.get("detail")
    rule = problem.get("rule")
    if not isinstance(detail, str):
        detail = f"The server answered {response.status_code} without an explanation."
    if response.status_code == 503 and rule == "database_unavailable":
        # Unavailable for a moment, not broken: its own words say so, and what to do.
        return errors.BadResponse(detail, rule=rule, status=503)
    if response.status_code >= 500 or response.status_code not in _BY_STATUS:
        return errors.BadResponse(
            f"The server failed ({response.status_code}). Nothing was lost; try again.",
            status=response.status_code,
        )
    cls = _BY_STATUS[response.status_code]
    if rule == "traveler_on_hold":
        cls = errors.OnHold
    return cls(detail, rule=rule if isinstance(rule, str) else None, status=response.status_code)
