"""Async HTTP client of the execution API: explicit timeouts, typed errors, wire models."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from kiosk.client import errors
from kiosk.wire import (
    Action,
    ActionBatch,
    ActionEnvelope,
    ActionResult,
    AdminSession,
    AsBuilt,
    BadgeLogin,
    BatchResult,
    CredentialCache,
    Credentials,
    Enrollment,
    EnrollRequest,
    Heartbeat,
    HeartbeatAnswer,
    Person,
    PlantOverview,
    StationConfig,
    StationInfo,
    Traveler,
    TravelerSummary,
    UnlockUser,
    Verified,
)

T = TypeVar("T")

# Connect fails fast (a dead server should show as offline within seconds); reads get longer.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0, pool=2.0)
_QUEUE = TypeAdapter(list[TravelerSummary])
_INT = TypeAdapter(int)
_STR = TypeAdapter(str)

_BY_STATUS: dict[int, type[errors.BackendError]] = {
    401: errors.StationNotEnrolled,
    403: errors.Refused,
    404: errors.NotFound,
    409: errors.RuleRefused,
    422: errors.Invalid,
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
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            transport=transport or httpx.AsyncHTTPTransport(retries=2),
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

    async def login(self, badge: str) -> Person:
        return await self._call("POST", "/api/v1/login", Person, BadgeLogin(badge=badge))

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

    async def queue(self) -> list[TravelerSummary]:
        return await self._call("GET", "/api/v1/queue", _QUEUE)

    async def traveler(self, number: str) -> Traveler:
        return await self._call("GET", f"/api/v1/travelers/{_path(number)}", Traveler)

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

    # --- the fleet --------------------------------------------------------------------------------

    async def heartbeat(self, beat: Heartbeat) -> HeartbeatAnswer:
        return await self._call("POST", "/api/v1/heartbeat", HeartbeatAnswer, beat)

    async def admin_session(self, credentials: Credentials) -> AdminSession:
        return await self._call("POST", "/api/v1/admin/session", AdminSession, credentials)

    async def overview(self, session: str) -> PlantOverview:
        return await self._call(
            "GET", "/api/v1/admin/overview", PlantOverview, headers={"X-Admin-Session": session}
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
    ) -> T:
        headers = dict(headers or {})
        if method == "POST":
            headers["Idempotency-Key"] = key or new_idempotency_key()
        content = None if body is None else body.model_dump_json()
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self._http.request(method, path, content=content, headers=headers)
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


def _path(number: str) -> str:
    return httpx.URL(number.strip().upper()).raw_path.decode()


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
    if response.status_code >= 500 or response.status_code not in _BY_STATUS:
        return errors.BadResponse(
            f"The server failed ({response.status_code}). Nothing was lost; try again.",
            status=response.status_code,
        )
    cls = _BY_STATUS[response.status_code]
    if rule == "traveler_on_hold":
        cls = errors.OnHold
    return cls(detail, rule=rule if isinstance(rule, str) else None, status=response.status_code)
