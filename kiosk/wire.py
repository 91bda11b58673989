"""Wire models: the one definition of what travels between a station and the execution API.

The server validates requests and serialises responses with these classes; the station's client
parses responses into them. Neither side keeps a second copy.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Role(StrEnum):
    OPERATOR = "operator"
    INSPECTOR = "inspector"
    SUPERVISOR = "supervisor"
    QUALITY = "quality"
    ADMIN = "admin"


class Meaning(StrEnum):
    """What a signer declares by signing (21 CFR 11.50(a)(3))."""

    PERFORMED = "performed"
    VERIFIED = "verified"
    APPROVED = "approved"


class ItemKind(StrEnum):
    MEASUREMENT = "measurement"
    PASS_FAIL = "pass_fail"
    TEXT = "text"
    TOOL = "tool"
    MATERIAL = "material"
    ACKNOWLEDGEMENT = "acknowledgement"


class StepStatus(StrEnum):
    NOT_STARTED = "not_started"
    IN_WORK = "in_work"
    PAUSED = "paused"
    COMPLETE = "complete"


class TravelerStatus(StrEnum):
    NOT_STARTED = "not_started"
    IN_WORK = "in_work"
    ON_HOLD = "on_hold"
    COMPLETE = "complete"


class Disposition(StrEnum):
    USE_AS_IS = "use_as_is"
    REWORK = "rework"
    REPAIR = "repair"
    SCRAP = "scrap"
    RETURN_TO_VENDOR = "return_to_vendor"


# --- problems (RFC 9457) -------------------------------------------------------------------------


class Problem(WireModel):
    """An error body: `rule` names the refused domain rule so a client can act on it."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    rule: str | None = None


# --- people and stations ---------------------------------------------------------------------------


class Person(WireModel):
    id: int
    name: str
    roles: tuple[Role, ...]


class BadgeLogin(WireModel):
    badge: str = Field(min_length=1, max_length=128, repr=False)


class Credentials(WireModel):
    """Both identification components, given again at each signing."""

    badge: str = Field(min_length=1, max_length=128, repr=False)
    pin: str = Field(min_length=1, max_length=32, repr=False)


class ScannerConfig(WireModel):
    """Keyboard-wedge timing and framing for the station's readers (see kiosk.scanning)."""

    max_gap_ms: float = Field(default=50.0, gt=0, le=2000)
    avg_max_ms: float = Field(default=30.0, gt=0, le=1000)
    min_len: int = Field(default=4, ge=1, le=64)
    prefix: str = Field(default="", max_length=8)
    suffix: str = Field(default="", max_length=8)
    terminators: tuple[str, ...] = ("enter", "tab")


class StationConfig(WireModel):
    """A station's look and behaviour, kept on the server so every station of a plant is alike."""

    theme: str = "kiosk-dark"
    idle_lock_seconds: int = Field(default=180, ge=15, le=3600)
    allow_typed_badge: bool = True
    offline_window_hours: float = Field(default=8.0, gt=0, le=72)
    scanner: ScannerConfig = ScannerConfig()


class StationInfo(WireModel):
    id: int
    name: str
    work_center: str
    config_version: int
    config: StationConfig


class Enrollment(WireModel):
    station: StationInfo
    token: str = Field(repr=False)


class EnrollRequest(WireModel):
    code: str = Field(min_length=4, max_length=64)


# --- travelers ------------------------------------------------------------------------------------


class RecordedValue(WireModel):
    id: int
    value: str
    passed: bool | None
    recorded_by: str
    server_time: datetime
    station_time: datetime | None
    station: str
    offline: bool = False


class DataItem(WireModel):
    id: int
    label: str
    kind: ItemKind
    unit: str | None = None
    nominal: float | None = None
    lower: float | None = None
    upper: float | None = None
    required: bool = True
    latest: RecordedValue | None = None
    failed_before: bool = False
    """True when any value recorded on the item failed, even if a later one passes: the failure
    stays on record, so the step still needs an NCR against the item before it can be signed."""
    ncr_number: str | None = None


class SignatureManifest(WireModel):
    """The manifestation of an electronic signature: printed name, date-time, meaning."""

    id: int
    signer_id: int
    printed_name: str
    meaning: Meaning
    server_time: datetime
    station: str
    content_hash: str
    station_time: datetime | None = None
    offline: bool = False
    """Signed while the station could not reach the server (identity checked from its cache)."""


class Step(WireModel):
    id: int
    number: str
    title: str
    instructions: str
    revision: str
    inspection: bool
    work_center: str
    status: StepStatus
    items: tuple[DataItem, ...]
    signatures: tuple[SignatureManifest, ...]


class Operation(WireModel):
    number: str
    name: str
    work_center: str


class Hold(WireModel):
    id: int
    reason: str
    placed_by: str
    placed_at: datetime
    ncr_number: str | None = None


class Ncr(WireModel):
    number: str
    step_number: str | None
    description: str
    defect_code: str
    quantity: int
    status: Literal["open", "dispositioned"]
    disposition: Disposition | None = None
    raised_by: str
    raised_at: datetime
    disposition_signature: SignatureManifest | None = None
    """Quality's signature on the disposition (meaning: approved)."""


class TravelerSummary(WireModel):
    number: str
    work_order: str
    part_number: str
    part_name: str
    serial: str | None
    status: TravelerStatus
    current_step: str | None
    work_center: str | None


class Traveler(WireModel):
    number: str
    work_order: str
    part_number: str
    part_name: str
    serial: str | None
    lot: str | None
    status: TravelerStatus
    operations: tuple[Operation, ...]
    steps: tuple[Step, ...]
    hold: Hold | None
    ncrs: tuple[Ncr, ...]


class Tool(WireModel):
    code: str
    description: str
    calibration_due: date


# --- actions: every change a station asks for ------------------------------------------------------


class ActionBase(WireModel):
    actor_id: int
    traveler: str
    station_time: datetime | None = None
    offline: bool = False
    """True when the station recorded the action while it could not reach the server."""


class StartStep(ActionBase):
    kind: Literal["start_step"] = "start_step"
    step_id: int


class PauseStep(ActionBase):
    kind: Literal["pause_step"] = "pause_step"
    step_id: int


class RecordValue(ActionBase):
    kind: Literal["record_value"] = "record_value"
    item_id: int
    value: str = Field(max_length=2000)


class StationAttestation(WireModel):
    """The station checked badge + PIN itself, against the credential cache the server gave it.

    Accepted only on actions recorded offline, and only within the station's credential window.
    """

    signer_id: int
    verified_at: datetime


class SignedAction(ActionBase):
    """An action that is an electronic signature: it names its proof of identity.

    Exactly one of: `credentials` (badge + PIN, checked by the server now), `ticket` (issued by
    POST /verify when the station checked badge + PIN online), `attestation` (checked offline).
    A station's outbox never holds a PIN: it queues tickets or attestations.
    """

    credentials: Credentials | None = None
    ticket: str | None = Field(default=None, repr=False, max_length=100)
    attestation: StationAttestation | None = None

    @model_validator(mode="after")
    def _one_proof(self) -> SignedAction:
        given = [p for p in (self.credentials, self.ticket, self.attestation) if p is not None]
        if len(given) != 1:
            raise ValueError("a signature needs exactly one of credentials, ticket, attestation")
        return self


class SignStep(SignedAction):
    kind: Literal["sign_step"] = "sign_step"
    step_id: int
    meaning: Meaning


class RaiseNcr(ActionBase):
    kind: Literal["raise_ncr"] = "raise_ncr"
    item_id: int | None = None
    step_id: int | None = None
    description: str = Field(min_length=3, max_length=2000)
    defect_code: str = Field(min_length=1, max_length=32)
    quantity: int = Field(default=1, ge=1)


class DispositionNcr(SignedAction):
    kind: Literal["disposition_ncr"] = "disposition_ncr"
    ncr: str
    disposition: Disposition


class PlaceHold(ActionBase):
    kind: Literal["place_hold"] = "place_hold"
    reason: str = Field(min_length=3, max_length=500)


class ReleaseHold(SignedAction):
    kind: Literal["release_hold"] = "release_hold"


Action = Annotated[
    StartStep
    | PauseStep
    | RecordValue
    | SignStep
    | RaiseNcr
    | DispositionNcr
    | PlaceHold
    | ReleaseHold,
    Field(discriminator="kind"),
]


class ActionEnvelope(WireModel):
    action: Action


class ActionApplied(WireModel):
    """An applied action, as answered inside a batch: what was done, in one sentence."""

    applied: str
    message: str


class ActionResult(ActionApplied):
    """What the server answers to one applied action: also the traveler as it now stands."""

    traveler: Traveler


class UnlockUser(WireModel):
    user_id: int
    credentials: Credentials


# --- as-built ----------------------------------------------------------------------------------------


class AsBuiltConsumption(WireModel):
    lot: str
    part_number: str
    step: str
    recorded_by: str
    server_time: datetime


class AsBuiltToolUse(WireModel):
    tool: str
    calibration_due: date
    step: str
    recorded_by: str
    server_time: datetime


class HoldRecord(WireModel):
    """A hold in the traveler's history: why, who placed it, and the signature that released it."""

    reason: str
    placed_by: str
    placed_at: datetime
    ncr_number: str | None
    released: SignatureManifest | None


class AsBuiltValue(WireModel):
    """One recorded value, superseded ones included: the auditor sees every entry."""

    step: str
    item: str
    entry: RecordedValue


class AsBuilt(WireModel):
    traveler: Traveler
    values: tuple[AsBuiltValue, ...]
    material: tuple[AsBuiltConsumption, ...]
    tools: tuple[AsBuiltToolUse, ...]
    holds: tuple[HoldRecord, ...] = ()
    generated_at: datetime


# --- store and forward ---------------------------------------------------------------------------


class QueuedAction(WireModel):
    """One outbox entry as delivered: its key and gap-free per-station sequence number."""

    key: str = Field(min_length=8, max_length=100)
    station_seq: int = Field(ge=1)
    action: Action


class ActionBatch(WireModel):
    actions: tuple[QueuedAction, ...] = Field(min_length=1, max_length=500)


class ActionOutcome(WireModel):
    """What became of one queued action: applied (2xx) or refused by a rule (4xx, kept)."""

    key: str
    status: int
    message: str | None = None
    problem: Problem | None = None


class BatchResult(WireModel):
    outcomes: tuple[ActionOutcome, ...]


class Verified(WireModel):
    """Badge + PIN checked by the server: who it is, and a single-use signing ticket."""

    person: Person
    ticket: str = Field(repr=False)
    expires_at: datetime


class CachedPerson(WireModel):
    """One person in a station's offline credential cache: verifiers only, never a badge or PIN."""

    person: Person
    work_centers: tuple[str, ...]
    badge_verifier: str = Field(repr=False)
    pin_hash: str = Field(repr=False)
    locked: bool


class CredentialCache(WireModel):
    """Lets an enrolled station identify people while the server is unreachable.

    Badge verifiers are HMAC(station_key, badge), with a key derived for this station alone, so a
    stolen cache is useless at any other station. Valid for `window_hours` after `issued_at`.
    """

    station_key: str = Field(repr=False)
    issued_at: datetime
    window_hours: float
    people: tuple[CachedPerson, ...]


# --- the fleet ---------------------------------------------------------------------------------


class Heartbeat(WireModel):
    """What a station reports every 30 s, so drift and silence are visible to admins."""

    app_version: str
    config_version: int
    theme: str
    terminal: str = Field(max_length=40)  # e.g. "80x24"
    color_system: str = Field(max_length=40)
    outbox_waiting: int = Field(ge=0)
    outbox_refused: int = Field(ge=0)
    refused_actions: tuple[str, ...] = Field(default=(), max_length=20)
    """The oldest refused actions, one line each (what, by whom, the server's reason)."""
    last_sync: datetime | None = None
    uptime_seconds: float = Field(ge=0)


class HeartbeatAnswer(WireModel):
    config_version: int
    """The station's current config version on the server: fetch it again when it differs."""


class StationStatus(WireModel):
    name: str
    work_center: str
    enrolled: bool
    config_version: int
    theme: str
    last_seen: datetime | None
    heartbeat: Heartbeat | None
    drift: tuple[str, ...]
    """What differs from the plant: app version, config version, theme (empty when none)."""
    silent: bool
    """No heartbeat for 2 minutes (or never)."""


class HeldTraveler(WireModel):
    traveler: str
    reason: str
    placed_by: str
    placed_at: datetime
    ncr_number: str | None


class OpenNcr(WireModel):
    traveler: str
    ncr: Ncr


class EnrollmentCode(WireModel):
    station: str
    expires_at: datetime
    used: bool


class PlantOverview(WireModel):
    server_version: str
    stations: tuple[StationStatus, ...]
    holds: tuple[HeldTraveler, ...]
    open_ncrs: tuple[OpenNcr, ...]
    locked_people: tuple[Person, ...]
    enrollment_codes: tuple[EnrollmentCode, ...]


class AdminSession(WireModel):
    admin: Person
    token: str = Field(repr=False)
    expires_at: datetime
