"""Wire models: the one definition of what travels between a station and the execution API.

The server validates requests and serialises responses with these classes; the station's client
parses responses into them. Neither side keeps a second copy.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
)

from kiosk.scanning.detector import STALL_GRACE_MS, Terminator


class WireModel(BaseModel):
    # No `Infinity` or `NaN` in any number; and the Strict* types below: `false` is not a number
    # nor `0` a boolean. What a station or an ERP sends means what it says, or it is refused.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _a_number(value: object) -> object:
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be a JSON number, not text or true/false")
    return value


def _not_a_number(value: object) -> object:
    if isinstance(value, bool | int | float):
        raise ValueError("must be a date or time as text (ISO 8601), not a number")
    return value


# JSON's own types, as JSON Schema reads them: 12 and 12.0 are the same integer; "12" and `true`
# are not numbers; a time is ISO 8601 text, never seconds since 1970. For what comes in (requests):
# what the server builds from its own rows it validates the plain way, at a fraction of the cost.
Int = Annotated[int, BeforeValidator(_a_number)]
Float = Annotated[float, BeforeValidator(_a_number)]
Moment = Annotated[datetime, BeforeValidator(_not_a_number)]

MAX_ID = 2**31 - 1
"""Row ids and sequence numbers are 32-bit integer columns (PostgreSQL's `integer`)."""
Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_a_number)]


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
    PHOTO = "photo"
    """Evidence: a photo (PNG or JPEG) uploaded from a phone through a one-use link."""
    FILE = "file"
    """Evidence: a file (PNG, JPEG or PDF) uploaded the same way."""


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
    SCRAPPED = "scrapped"
    """Ended by an NCR dispositioned scrap: nothing more is recorded on it."""
    RETURNED = "returned"
    """Ended by an NCR dispositioned return-to-vendor: nothing more is recorded on it."""


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


class Certification(WireModel):
    """A person's certification for one operation type (e.g. "torque", "NDT level 2")."""

    operation: str = Field(min_length=1, max_length=60)
    expires: date
    """The last day it is good for."""


class Person(WireModel):
    id: int
    name: str
    roles: tuple[Role, ...]
    work_centers: tuple[str, ...] = ()
    """Work centers the person is qualified for; `*` is every one."""
    certifications: tuple[Certification, ...] = ()
    """What the person is certified for, and until when: carried in the offline credential
    cache, so a station applies the certification rule with the server out of reach."""


class SignedIn(WireModel):
    """An online badge-in: who, and the person session that proves them on this station's actions.

    The session is good only at the station it was issued to, and ends at sign-out, at the next
    badge-in there, at the idle lock, or when it expires.
    """

    person: Person
    session: str = Field(repr=False)
    expires_at: datetime


class SignOut(WireModel):
    session: str = Field(min_length=1, max_length=100, repr=False)
    reason: Literal["sign_out", "idle_lock", "new_badge"] = "sign_out"


class BadgeLogin(WireModel):
    badge: str = Field(min_length=1, max_length=128, repr=False)


class Credentials(WireModel):
    """Both identification components, given again at each signing."""

    badge: str = Field(min_length=1, max_length=128, repr=False)
    pin: str = Field(min_length=1, max_length=32, repr=False)


FRAMING_PATTERN = r"^[\x01-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f!-/:-@\[-`{-~]*$"
"""A scanner prefix or suffix: ASCII punctuation and control characters, never a letter, digit
or space (those are data), nor NUL, TAB, LF, CR, ESC or DEL (Textual cannot pass them through as
one key, or a person edits with them)."""


def _framing(value: str, info: ValidationInfo) -> str:
    # Stated as a pattern in the schema; checked here so the message says what is wrong.
    if re.fullmatch(FRAMING_PATTERN, value) is None:
        if "\x1b" in value:
            raise ValueError(f"ESC cannot be part of a scanner {info.field_name}")
        bad = next(c for c in value if re.fullmatch(FRAMING_PATTERN, c) is None)
        raise ValueError(
            f"the scanner {info.field_name} cannot contain {bad!r}: only punctuation and "
            "control characters other than NUL, TAB, LF, CR, ESC and DEL"
        )
    return value


Framing = Annotated[
    str,
    Field(default="", max_length=8, json_schema_extra={"pattern": FRAMING_PATTERN}),
    AfterValidator(_framing),
]


class ScannerConfig(WireModel):
    """Keyboard-wedge timing and framing for the station's readers (see kiosk.scanning).

    Each field is checked here and stated in the schema. How fields combine (a mean gap no
    longer than the largest, a way for a read to end) is the detector's rule, which the server
    applies when an admin sets them (`rules.ensure_scanner_usable`) and the station applies
    when it loads them (`kiosk.wedge.scanner_settings` falls back to the defaults)."""

    max_gap_ms: Float = Field(default=50.0, gt=0, le=STALL_GRACE_MS)
    avg_max_ms: Float = Field(default=30.0, gt=0, le=STALL_GRACE_MS)
    min_len: Int = Field(default=4, ge=1, le=64)
    prefix: Framing = ""
    suffix: Framing = ""
    terminators: tuple[Terminator, ...] = Field(default=("enter", "tab"), max_length=4)


class StationConfig(WireModel):
    """A station's look and behaviour, kept on the server so every station of a plant is alike."""

    theme: str = "kiosk-dark"
    idle_lock_seconds: Int = Field(default=180, ge=15, le=3600)
    allow_typed_badge: StrictBool = True
    offline_window_hours: Float = Field(default=8.0, gt=0, le=72)
    scanner: ScannerConfig = ScannerConfig()
    steps_per_person: Int = Field(default=1, ge=1, le=10)
    """How many steps one person may be clocked on at once (labour); 1 unless the plant allows
    more, say a setter minding two machines."""


class StationInfo(WireModel):
    id: int
    name: str
    work_center: str
    config_version: int
    config: StationConfig
    defect_codes: dict[str, str] | None = None
    """The plant's own defect codes for NCRs (code -> words); None: the product's list."""


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
    corrects: str | None = None
    """The value this one corrected (a mistake put right before sign-off), with `reason`."""
    reason: str | None = None
    """Why the value was corrected (None: recorded, not a correction)."""
    deviation: str | None = None
    """The deviation this value relied on (DEV-0003): accepted only under it."""


class DataItem(WireModel):
    id: int
    label: str
    kind: ItemKind
    unit: str | None = None
    nominal: float | None = None
    lower: float | None = None
    upper: float | None = None
    required: bool = True
    expected: str | None = None
    """What a value must be: text with `*` / `?` wildcards and `{serial}`, `{lot}`,
    `{part_number}` taken from the traveler (a marking item: `{serial}`); on a material item,
    the part number the scanned lot must be of."""
    latest: RecordedValue | None = None
    failed_before: bool = False
    """True when any value recorded on the item failed, even if a later one passes: the failure
    stays on record, so the step still needs an NCR against the item before it can be signed."""
    ncr_number: str | None = None


class EvidenceFile(WireModel):
    """A photo or file recorded as a data item's value: its SHA-256, size and type (who
    uploaded it and when are the recorded value's `recorded_by` and `server_time`). The value
    is this model's JSON, so the audit chain and a step's signature carry the file's hash."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=1)
    media_type: str = Field(max_length=60)

    def as_value(self) -> str:
        return self.model_dump_json()

    def kind_word(self) -> str:
        names = {"image/png": "PNG", "image/jpeg": "JPEG", "application/pdf": "PDF"}
        return names.get(self.media_type, self.media_type)

    def size_words(self) -> str:
        kib = self.size / 1024
        return f"{kib / 1024:.1f} MB" if kib >= 1024 else f"{max(1, round(kib))} kB"

    def facts(self) -> str:
        """One line for a person: type, size and the start of the hash."""
        return f"{self.kind_word()} {self.size_words()} sha256 {self.sha256[:12]}"

    @classmethod
    def of_value(cls, value: str) -> EvidenceFile | None:
        """The file a photo or file item's value names; None for any other value."""
        if not value.startswith("{"):
            return None
        try:
            return cls.model_validate_json(value)
        except ValueError:
            return None


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
    void_reason: str | None = None
    """Why quality voided this signature (None: it stands)."""
    voided: SignatureManifest | None = None
    """Quality's signature on the void: who voided it, and when."""


class StepRevision(WireModel):
    """A step of a traveler brought to a new revision by an engineering change (ECN).

    A step not yet started takes it silently (`redline` false, still recorded); a step in work
    (started, not signed) takes it as a redline its operator must acknowledge before continuing.
    Signed steps keep the revision they were done at: they get no record."""

    id: int
    step: str
    change: str
    """The change number, as ECN-0042."""
    reason: str
    old_revision: str
    new_revision: str
    changes: tuple[str, ...]
    """What changed, in words (one line per field or data item)."""
    issued_at: datetime
    redline: bool
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    station: str | None = None
    """Where the redline was acknowledged."""


# --- deviations (kiosk/server/deviations.py) ----------------------------------------------------

DeviationStatus = Literal["raised", "awaiting_approval", "approved"]


class RaiseDeviation(WireModel):
    """A planned departure quality raises (API, `kiosk deviation raise`): against a part number
    and/or travelers (and, narrower, step numbers), for one data item by its label; what departs
    (widened limits, or a substitute part number or tool code); why; how far: units and/or a
    last day. It takes effect only once approved by signature at a station."""

    part_number: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    travelers: tuple[Annotated[str, Field(min_length=1, max_length=40)], ...] = Field(
        default=(), max_length=50
    )
    steps: tuple[Annotated[str, Field(min_length=1, max_length=20)], ...] = Field(
        default=(), max_length=50
    )
    item: str = Field(min_length=1, max_length=200)
    lower: Float | None = None
    upper: Float | None = None
    substitute: Annotated[str, Field(min_length=1, max_length=60)] | None = None
    reason: str = Field(min_length=3, max_length=2000)
    units: Id | None = None
    until: date | None = None
    """The last day it applies."""


class Deviation(WireModel):
    number: str
    part_number: str | None
    travelers: tuple[str, ...]
    steps: tuple[str, ...]
    item: str
    lower: float | None = None
    upper: float | None = None
    substitute: str | None = None
    reason: str
    units: int | None = None
    until: date | None = None
    raised_by: str
    raised_at: datetime
    status: DeviationStatus
    """Raised (no approval yet); awaiting its second approval (plant config); approved."""
    approval_role: Role | None = None
    """The role of the second approver it needs, when the plant's quality settings name one."""
    approvals: tuple[SignatureManifest, ...] = ()
    used_by: tuple[str, ...] = ()
    """The travelers that relied on it: each is one unit used."""


DOCUMENT_NUMBER = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,59}$"
DOCUMENT_REVISION = r"^[A-Za-z0-9][A-Za-z0-9.-]{0,19}$"


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


# The pattern is the schema's (what a client may send); it is kept upper case, "c" is rev C.
DocumentNumber = Annotated[str, Field(pattern=DOCUMENT_NUMBER), BeforeValidator(_upper)]
"""Letters, digits, dot, dash, underscore: it is a part of the document's URL."""
DocumentRevision = Annotated[str, Field(pattern=DOCUMENT_REVISION), BeforeValidator(_upper)]


class DocumentRef(WireModel):
    """A document by number and revision, as a step names it (the import's `documents`)."""

    number: DocumentNumber
    revision: DocumentRevision


class Document(WireModel):
    """A drawing or specification at one revision; its bytes are the file with this SHA-256."""

    number: str
    revision: str
    title: str
    sha256: str
    media_type: str
    size: int
    added_at: datetime
    superseded_by: str | None = None
    """The plant's newer revision of the same number, if there is one."""


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
    certification: str | None = None
    """The certification (operation type) whoever starts or signs the step must hold."""
    redlines: tuple[StepRevision, ...] = ()
    """Redlines on the step not yet acknowledged: no start, value or sign-off until they are."""
    voided: tuple[SignatureManifest, ...] = ()
    """Signatures quality voided, kept with who voided them, when and why (never deleted)."""
    documents: tuple[Document, ...] = ()
    """The drawings and specifications the step shows, at the revisions it names."""


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
    stop: bool = False
    """Placed by an operator's stop request (andon): only a supervisor releases it."""


class Ncr(WireModel):
    number: str
    step_number: str | None
    description: str
    defect_code: str
    quantity: int
    status: Literal["open", "awaiting_approval", "dispositioned"]
    """Open until dispositioned; awaiting approval while a use-as-is or repair lacks its second
    approval (the traveler stays on hold); then dispositioned."""
    disposition: Disposition | None = None
    raised_by: str
    raised_at: datetime
    disposition_signature: SignatureManifest | None = None
    """Quality's signature on the disposition (meaning: approved)."""
    rationale: str = ""
    """Why the disposition is acceptable (use-as-is and repair need one)."""
    instructions: str = ""
    """What to do: the rework or repair step's instructions."""
    approval_role: Role | None = None
    """Use-as-is and repair need a second approval by a person of this role (plant config)."""
    approval_signature: SignatureManifest | None = None
    """The second approver's signature, once given."""


# --- labour and andon -------------------------------------------------------------------------------

LabourEnd = Literal["paused", "signed", "sign_out", "idle_lock", "new_badge", "stopped"]


class LabourEntry(WireModel):
    """One person clocked on one step, from start or resume until now."""

    user_id: int
    person: str
    step_id: int
    step: str
    station: str
    since: datetime


class LabourInterval(WireModel):
    """A closed or open labour interval, as the as-built and the ERP export give it."""

    id: int
    traveler: str
    work_order: str
    step: str
    work_center: str
    person: str
    user_id: int
    station: str
    started_at: datetime
    ended_at: datetime | None
    end_reason: LabourEnd | None
    minutes: float
    """Worked minutes (up to now for an open interval)."""


AndonKind = Literal["help", "stop"]


class AndonRequest(WireModel):
    """An operator's call for a supervisor on a step: help, or stop (which holds the traveler)."""

    id: int
    traveler: str
    step: str
    kind: AndonKind
    reason: str
    raised_by: str
    station: str
    raised_at: datetime
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None


# --- maintenance on assets ---------------------------------------------------------------------------


class AssetKind(StrEnum):
    AIRCRAFT = "aircraft"
    EQUIPMENT = "equipment"


class Asset(WireModel):
    """What a maintenance task is done on: a tail number ("N512KS") or an equipment id."""

    id: str
    kind: AssetKind
    description: str


class TravelerSummary(WireModel):
    number: str
    work_order: str
    part_number: str
    part_name: str
    serial: str | None
    status: TravelerStatus
    current_step: str | None
    work_center: str | None
    asset: str | None = None
    """The asset's id when the traveler is a maintenance task (shown where a serial would be)."""


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
    labour: tuple[LabourEntry, ...] = ()
    """Who is clocked on which of its steps right now."""
    andon: tuple[AndonRequest, ...] = ()
    """Help and stop requests on it not yet resolved."""
    asset: Asset | None = None
    """A maintenance task: the asset it is done on (then it has no serial or lot)."""
    task: str | None = None
    """A maintenance task's task number (task card)."""
    deviations: tuple[Deviation, ...] = ()
    """Deviations raised against its part number or against it, approved or not."""


class Tool(WireModel):
    code: str
    description: str
    calibration_due: date


# --- actions: every change a station asks for ------------------------------------------------------


class OfflineProof(WireModel):
    """A MAC over one action, made at the station with a key that only the person's badge (as the
    actor) or badge and PIN (as a signer) unwraps from the station's credential cache.

    The server keeps the same key and checks the MAC; the nonce makes each proof good once.
    """

    cache_id: Id
    """The credential cache the station held: the person must have been in it."""
    nonce: str = Field(min_length=16, max_length=64)
    mac: str = Field(min_length=64, max_length=64, repr=False)


class OfflineSignature(OfflineProof):
    """Badge + PIN checked at the station while offline, provably: the MAC needs the signing key
    that only the signer's badge and PIN unwrap."""

    signer_id: Id


class ActionBase(WireModel):
    actor_id: Id
    """Who acts: a claim, which stands only with a proof below that the server can check."""
    traveler: str
    station_time: Moment | None = None
    offline: StrictBool = False
    """True when the station recorded the action while it could not reach the server."""
    session: str | None = Field(default=None, repr=False, max_length=100)
    """The actor's person session, issued when they badged in online at this station."""
    actor_proof: OfflineProof | None = None
    """Made with the actor's badge-unwrapped key: stands where the session cannot (offline)."""


class StartStep(ActionBase):
    kind: Literal["start_step"] = "start_step"
    step_id: Id


class PauseStep(ActionBase):
    kind: Literal["pause_step"] = "pause_step"
    step_id: Id


class RecordValue(ActionBase):
    kind: Literal["record_value"] = "record_value"
    item_id: Id
    value: str = Field(max_length=2000)


class SignedAction(ActionBase):
    """An action that is an electronic signature: it names its proof of the signer.

    One of: `credentials` (badge + PIN, checked by the server now), `ticket` (issued by POST
    /verify when the station checked badge + PIN online), `attestation` (badge + PIN checked
    offline, with a MAC only they could make). A station's outbox never holds a PIN. The station
    builds the action first and attaches the proof as it records it; the server refuses a
    signature that arrives with none.
    """

    credentials: Credentials | None = None
    ticket: str | None = Field(default=None, repr=False, max_length=100)
    attestation: OfflineSignature | None = None

    def proofs(self) -> int:
        """How many proofs of the signer it carries: the server accepts exactly one."""
        return sum(p is not None for p in (self.credentials, self.ticket, self.attestation))


class SignStep(SignedAction):
    kind: Literal["sign_step"] = "sign_step"
    step_id: Id
    meaning: Meaning


class RaiseNcr(ActionBase):
    kind: Literal["raise_ncr"] = "raise_ncr"
    item_id: Id | None = None
    step_id: Id | None = None
    description: str = Field(min_length=3, max_length=2000)
    defect_code: str = Field(min_length=1, max_length=32)
    quantity: Int = Field(default=1, ge=1, le=MAX_ID)


class DispositionNcr(SignedAction):
    kind: Literal["disposition_ncr"] = "disposition_ncr"
    ncr: str
    disposition: Disposition
    rationale: str = Field(default="", max_length=2000)
    instructions: str = Field(default="", max_length=2000)


class ApproveDisposition(SignedAction):
    """The second approval a use-as-is or repair disposition needs (role from plant config)."""

    kind: Literal["approve_disposition"] = "approve_disposition"
    ncr: str = Field(min_length=1, max_length=20)


class PlaceHold(ActionBase):
    kind: Literal["place_hold"] = "place_hold"
    reason: str = Field(min_length=3, max_length=500)


class ReleaseHold(SignedAction):
    kind: Literal["release_hold"] = "release_hold"


class RaiseAndon(ActionBase):
    """Ask for a supervisor on a step: `help`, or `stop`, which also places a hold."""

    kind: Literal["raise_andon"] = "raise_andon"
    step_id: Id
    andon: AndonKind
    reason: str = Field(min_length=3, max_length=500)


class AcknowledgeAndon(ActionBase):
    """A supervisor has seen the request and is on the way."""

    kind: Literal["acknowledge_andon"] = "acknowledge_andon"
    request_id: Id


class ResolveAndon(ActionBase):
    """A supervisor closes the request, saying what was done (a stop's hold stays until it is
    released with a supervisor's signature)."""

    kind: Literal["resolve_andon"] = "resolve_andon"
    request_id: Id
    resolution: str = Field(min_length=3, max_length=500)


class AcknowledgeRedline(ActionBase):
    """The operator has read a redline (an engineering change issued while the step was in
    work) and continues at the new revision."""

    kind: Literal["acknowledge_redline"] = "acknowledge_redline"
    step_id: Id
    redline_id: Id


class CorrectValue(ActionBase):
    """Correct the value in effect on an item of a step not yet signed: `corrects` is that value
    as the station showed it, `value` the new one as typed. Both stay on record."""

    kind: Literal["correct_value"] = "correct_value"
    item_id: Id
    corrects: str = Field(max_length=2000)
    value: str = Field(max_length=2000)
    reason: str = Field(default="", max_length=500)


class VoidSignature(SignedAction):
    """Quality voids a step's sign-off (`performed`, and the buy-off after it) or its buy-off
    (`verified`): the step reopens; the voided signature stays, marked void."""

    kind: Literal["void_signature"] = "void_signature"
    step_id: Id
    meaning: Meaning
    reason: str = Field(default="", max_length=500)


class ApproveDeviation(SignedAction):
    """Quality's approval of a deviation by signature (meaning: approved), given at a station
    on a traveler the deviation covers; the second approval, where the plant names a role."""

    kind: Literal["approve_deviation"] = "approve_deviation"
    deviation: str = Field(min_length=1, max_length=20)


Action = Annotated[
    StartStep
    | PauseStep
    | RecordValue
    | SignStep
    | RaiseNcr
    | DispositionNcr
    | ApproveDisposition
    | PlaceHold
    | ReleaseHold
    | RaiseAndon
    | AcknowledgeAndon
    | ResolveAndon
    | AcknowledgeRedline
    | CorrectValue
    | VoidSignature
    | ApproveDeviation,
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


class RequestUpload(ActionBase):
    """Ask for a one-use upload link for a photo or file item, on the person's session: the
    phone that opens it holds no credentials, and the upload is recorded in this person's name.
    Not queued: a phone reaches the server only when the station does."""

    kind: Literal["attach_file"] = "attach_file"
    item_id: Id


class UploadLink(WireModel):
    """A one-use upload link: its secret is in `url` alone (the server keeps only its hash)."""

    id: int
    """Ask GET /api/v1/uploads/{id} whether the file has arrived."""
    url: str = Field(repr=False)
    item_id: int
    expires_at: datetime


class UploadStatus(WireModel):
    """Where a one-use upload link stands: waiting, arrived (with the file) or expired."""

    id: int
    state: Literal["waiting", "arrived", "expired"]
    expires_at: datetime
    file: EvidenceFile | None = None
    uploaded_by: str | None = None
    uploaded_at: datetime | None = None


class UnlockUser(WireModel):
    user_id: Id
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
    file: EvidenceFile | None = None
    """A photo or file item's evidence: hash, size and type (uploader and time: `entry`)."""


class AsBuilt(WireModel):
    traveler: Traveler
    values: tuple[AsBuiltValue, ...]
    material: tuple[AsBuiltConsumption, ...]
    tools: tuple[AsBuiltToolUse, ...]
    holds: tuple[HoldRecord, ...] = ()
    labour: tuple[LabourInterval, ...] = ()
    andon: tuple[AndonRequest, ...] = ()
    revisions: tuple[StepRevision, ...] = ()
    """Every engineering change its steps took, and who acknowledged each redline."""
    deviations: tuple[Deviation, ...] = ()
    """The deviations its values relied on (each value names its own)."""
    generated_at: datetime


class AssetHistory(WireModel):
    """An asset's as-maintained record: the as-built of each of its tasks, in the order imported."""

    asset: Asset
    tasks: tuple[AsBuilt, ...]
    generated_at: datetime


# --- store and forward ---------------------------------------------------------------------------


class QueuedAction(WireModel):
    """One outbox entry as delivered: its key and gap-free per-station sequence number."""

    key: str = Field(min_length=8, max_length=100)
    station_seq: Id
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


class KdfParams(WireModel):
    """argon2id cost, chosen by the server, that every badge or badge + PIN guess costs."""

    time_cost: int = Field(ge=1, le=10)
    memory_kib: int = Field(ge=8192, le=1_048_576)
    parallelism: int = Field(ge=1, le=8)


class CachedPerson(WireModel):
    """One person in a station's offline credential cache: never a badge number or a PIN.

    `badge_verifier` is derived from the badge by argon2id under the cache's salt; `actor_key`
    is this person's key for this station wrapped under a key from the badge alone, and
    `signing_key` wrapped under argon2id(badge + PIN). The station unwraps the first at an offline
    badge-in and the second at an offline signature, MACs the action, and forgets the key.
    """

    person: Person
    badge_verifier: str = Field(repr=False)
    actor_key: str = Field(repr=False)
    signing_key: str | None = Field(default=None, repr=False)
    pin_salt: str = Field(repr=False)
    locked: bool


class CredentialCache(WireModel):
    """Lets an enrolled station identify people while the server is unreachable.

    Everything in it was made for this station alone, so a stolen cache is useless at any other
    station. Valid for `window_hours` after `issued_at`.
    """

    id: int
    station_id: int
    issued_at: datetime
    window_hours: float
    badge_salt: str = Field(repr=False)
    kdf: KdfParams
    people: tuple[CachedPerson, ...]


# --- the fleet ---------------------------------------------------------------------------------


class Heartbeat(WireModel):
    """What a station reports every 30 s, so drift and silence are visible to admins."""

    app_version: str
    config_version: Int
    theme: str
    terminal: str = Field(max_length=40)  # e.g. "80x24"
    color_system: str = Field(max_length=40)
    outbox_waiting: Int = Field(ge=0)
    outbox_refused: Int = Field(ge=0)
    refused_actions: tuple[str, ...] = Field(default=(), max_length=20)
    """The oldest refused actions, one line each (what, by whom, the server's reason)."""
    last_sync: Moment | None = None
    uptime_seconds: Float = Field(ge=0)
    lock_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """SHA-256 of the dependency lock the station was installed from (kiosk/locks); None from
    a station of a release before locks, or one run without its package data."""


class Checkpoint(WireModel):
    """A signed head of the audit chain: record `seq` has hash `hash`, vouched for by a MAC under
    a key derived from the plant secret. Kept outside the database too (witness files, stations),
    so a chain rewritten and cut back to before it is still caught."""

    seq: Int = Field(ge=1)
    hash: str = Field(min_length=64, max_length=64)
    mac: str = Field(min_length=64, max_length=64)
    server_time: Moment


class HeartbeatAnswer(WireModel):
    config_version: int
    """The station's current config version on the server: fetch it again when it differs."""
    checkpoint: Checkpoint | None = None
    """The latest signed checkpoint: the station keeps it as a witness of the audit chain."""


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
    other_lock: bool = False
    """It reports a dependency lock other than the plant's (drift says which)."""


class HeldTraveler(WireModel):
    traveler: str
    reason: str
    placed_by: str
    placed_at: datetime
    ncr_number: str | None
    stop: bool = False
    """Placed by an operator's stop request: only a supervisor releases it."""


class OpenNcr(WireModel):
    traveler: str
    ncr: Ncr


class EnrollmentCode(WireModel):
    station: str
    expires_at: datetime
    used: bool


class SecurityEvent(WireModel):
    """Something an admin should look at: a lock-out, a burst of unknown badges at a station, an
    offline signature accepted on the station's word of badge + PIN."""

    at: datetime
    station: str | None
    kind: Literal["person_locked", "unknown_badges", "offline_signature"]
    detail: str


class PlantOverview(WireModel):
    server_version: str
    stations: tuple[StationStatus, ...]
    holds: tuple[HeldTraveler, ...]
    open_ncrs: tuple[OpenNcr, ...]
    locked_people: tuple[Person, ...]
    enrollment_codes: tuple[EnrollmentCode, ...]
    security: tuple[SecurityEvent, ...] = ()
    """The latest security events, newest first."""
    andon: tuple[AndonRequest, ...] = ()
    """Help and stop requests not yet resolved, oldest first."""


# --- the live board -------------------------------------------------------------------------------


class BoardStation(WireModel):
    """A station on the board: who is signed in there and since when."""

    name: str
    work_center: str
    person: str | None
    signed_in_at: datetime | None
    silent: bool
    """No heartbeat for 2 minutes (or never)."""
    refused: tuple[str, ...] = ()
    """Actions the station holds refused by the server, one line each (from its heartbeat)."""


class BoardWork(WireModel):
    """One person clocked on one step: work in progress."""

    station: str
    work_center: str
    person: str
    traveler: str
    step: str
    since: datetime


class BoardNcr(WireModel):
    traveler: str
    number: str
    step: str | None
    description: str
    raised_at: datetime


class Board(WireModel):
    """The floor as a supervisor watches it. `version` changes whenever anything on it does, so
    a client long-polls with the version it has and is answered as soon as there is news."""

    version: str
    generated_at: datetime
    stations: tuple[BoardStation, ...]
    work: tuple[BoardWork, ...]
    holds: tuple[HeldTraveler, ...]
    open_ncrs: tuple[BoardNcr, ...]
    andon: tuple[AndonRequest, ...]
    certifications: tuple[str, ...] = ()
    """Certifications expiring soon, one line each (a slot the certification records fill)."""


AndonAnswer = Annotated[AcknowledgeAndon | ResolveAndon, Field(discriminator="kind")]


class AndonAnswerEnvelope(WireModel):
    """A supervisor's answer to a help or stop request, sent from the board."""

    action: AndonAnswer


class AdminSession(WireModel):
    admin: Person
    token: str = Field(repr=False)
    expires_at: datetime


# --- integration: ERP, MES and QMS (kiosk/server/integration_api.py) -------------------------------


class Scope(StrEnum):
    """What a service account's key lets it do; each integration route needs exactly one."""

    IMPORT = "import"
    """POST /api/v1/import: load work orders, tools and material lots."""
    READ = "read"
    """GET /api/v1/as-built/{number}: read a traveler's as-built record."""
    EVENTS = "events"
    """GET /api/v1/events: the ordered feed of what happened on the floor."""
    DEVIATIONS = "deviations"
    """POST /api/v1/deviations: raise a deviation (a QMS); GET lists them."""


class ServiceAccount(WireModel):
    """An ERP, MES or QMS system: never a person, so it never acts or signs on the floor."""

    name: str
    scopes: tuple[Scope, ...]
    created_at: datetime
    revoked_at: datetime | None = None


class ImportResult(WireModel):
    """What POST /api/v1/import did: `imported` is false when the same document (by the SHA-256
    of its canonical JSON) was imported before, and then nothing changed."""

    imported: bool
    sha256: str
    imported_at: datetime
    """When this document was first imported."""
    counts: dict[str, int]
    """What it brought: work_orders, travelers, steps, tools, material_lots, …"""
    message: str


class EventKind(StrEnum):
    STEP_COMPLETED = "step_completed"
    VALUE_OUT_OF_TOLERANCE = "value_out_of_tolerance"
    NCR_RAISED = "ncr_raised"
    NCR_DISPOSITIONED = "ncr_dispositioned"
    HOLD_PLACED = "hold_placed"
    HOLD_RELEASED = "hold_released"
    TRAVELER_COMPLETED = "traveler_completed"
    TRAVELER_SCRAPPED = "traveler_scrapped"
    TRAVELER_RETURNED = "traveler_returned"


class PlantEvent(WireModel):
    """One thing that happened, read from the audit chain: `cursor` is the sequence number of
    the audit record it comes from, `id` is unique and never changes (for consumers that keep
    what they have seen: a retried MQTT delivery can bring the same event twice)."""

    id: str
    cursor: int
    event: EventKind
    topic: str
    """Its MQTT topic: plant/<work center>/<station>/<traveler>/<event>."""
    at: datetime
    """Server time of the audit record."""
    station_time: datetime | None = None
    work_center: str | None = None
    station: str | None = None
    traveler: str
    step: str | None = None
    actor: str | None = None
    """Printed name of the person who did it."""
    item: str | None = None
    value: str | None = None
    unit: str | None = None
    lower: float | None = None
    upper: float | None = None
    ncr: str | None = None
    defect_code: str | None = None
    quantity: int | None = None
    disposition: str | None = None
    reason: str | None = None


class EventFeed(WireModel):
    """A page of the feed. Ask again with `after=next_cursor`; `more` says whether there is
    more to read now. `next_cursor` moves on past audit records that are not events."""

    events: tuple[PlantEvent, ...]
    next_cursor: int
    head: int
    """The audit chain's last sequence number when the page was read."""
    more: bool


class RevisionResult(WireModel):
    """What an engineering change (`kiosk revise`, POST /api/v1/revise) did: `issued` is false
    when the same change was issued before with the same content, and then nothing changed."""

    issued: bool
    change: str
    sha256: str
    issued_at: datetime
    """When this change was first issued."""
    counts: dict[str, int]
    """steps_changed (not yet started: new revision), redlines (in work), kept (signed)."""
    steps: tuple[str, ...] = ()
    """Each traveler's step the change reached and what it did there, in words."""
    message: str
# --- documents at revision (kiosk/server/documents.py) ---------------------------------------------


class DocumentLink(WireModel):
    """A short-lived signed link to one document's file, for a tablet beside the station: it
    carries no token, only an expiry and a MAC over the document and that expiry."""

    url: str
    expires_at: datetime
