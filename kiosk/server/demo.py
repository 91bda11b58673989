"""The demo plant: people, tools, material and travelers a new user can try the whole flow on.

It is loaded through the same importer the ERP uses, and TRV-1002 / TRV-1003 are brought to their
state through the same actions a station sends, so the demo's audit chain is a real one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, insert

from kiosk.server import deviations, erp, quality
from kiosk.server import schema as t
from kiosk.server.domain import StationRef
from kiosk.server.people import new_person
from kiosk.server.service import ExecutionService
from kiosk.wire import (
    ApproveDeviation,
    CorrectValue,
    Credentials,
    Meaning,
    PauseStep,
    PlaceHold,
    RaiseDeviation,
    RecordValue,
    Role,
    SignStep,
    StartStep,
)

WORK_CENTER = "ASSEMBLY"
DEMO_STATION = "DEMO-01"

# name, badge, PIN, roles, qualified work centers
PEOPLE = [
    ("Ana Ortiz", "10001", "1111", "operator", WORK_CENTER),
    ("Ben Okafor", "10002", "1212", "operator", WORK_CENTER),
    ("Olu Field", "10003", "1313", "operator", "PAINT"),
    ("Ivy Chen", "20001", "2222", "inspector", "*"),
    ("Sam Patel", "30001", "3333", "supervisor,quality", "*"),
    # The second approver of use-as-is and repair dispositions (the plant's quality settings).
    ("Raj Mehta", "31001", "3131", "supervisor", "*"),
    ("Ada Admin", "90001", "9999", "admin", "*"),
]


def _item(label: str, kind: str, **limits: object) -> erp.ItemSpec:
    return erp.ItemSpec.model_validate({"label": label, "kind": kind, **limits})


def _bracket_routing() -> list[erp.OperationSpec]:
    def step(
        number: str, title: str, text: str, items: list[erp.ItemSpec], **kw: object
    ) -> erp.StepSpec:
        return erp.StepSpec.model_validate(
            {
                "number": number,
                "title": title,
                "instructions": text,
                "items": items,
                "revision": "C",
                **kw,
            }
        )

    return [
        erp.OperationSpec(
            number="10",
            name="Kit and prepare",
            work_center=WORK_CENTER,
            steps=[
                step(
                    "10.1",
                    "Verify kit and material",
                    "Check the kit against pick list PL-7741-220. Scan the bracket forging lot tag.",
                    [
                        # A lot of any other part is refused: the routing names the part.
                        _item("Bracket forging lot", "material", expected="7741-221"),
                        _item("Kit complete per pick list", "acknowledgement"),
                    ],
                ),
                step(
                    "10.2",
                    "Install bushings",
                    "Press bushings NAS75-5 into both lugs with press tool. Measure the bore after pressing.",
                    [
                        _item("Press tool", "tool"),
                        _item(
                            "Bushing bore diameter",
                            "measurement",
                            unit="mm",
                            nominal=12.700,
                            lower=12.690,
                            upper=12.710,
                        ),
                    ],
                ),
            ],
        ),
        erp.OperationSpec(
            number="20",
            name="Fasten",
            work_center=WORK_CENTER,
            steps=[
                step(
                    "20.1",
                    "Torque actuator fasteners",
                    "Install four NAS6604 bolts, wet with sealant. Torque in a cross pattern to 12.5 Nm.",
                    [
                        _item("Torque wrench", "tool"),
                        _item(
                            "Fastener torque",
                            "measurement",
                            unit="Nm",
                            nominal=12.5,
                            lower=11.5,
                            upper=13.5,
                        ),
                        _item("Torque stripe applied", "pass_fail"),
                    ],
                    certification="torque",
                ),
                step(
                    "20.2",
                    "Inspection buy-off",
                    "Inspect the assembly: no FOD, no tool marks, torque stripes intact. Check flatness.",
                    [
                        _item("Visual inspection", "pass_fail"),
                        _item(
                            "Mounting face flatness",
                            "measurement",
                            unit="mm",
                            nominal=0.0,
                            lower=0.0,
                            upper=0.05,
                        ),
                        _item("Inspection notes", "text", required=False),
                    ],
                    inspection=True,
                ),
            ],
        ),
        erp.OperationSpec(
            number="30",
            name="Identify",
            work_center=WORK_CENTER,
            steps=[
                step(
                    "30.1",
                    "Mark part",
                    "Dot-peen the serial number next to the part number on the identification pad.",
                    [
                        _item("Marked serial", "text", expected="{serial}"),
                        _item("Marking legible", "acknowledgement"),
                    ],
                ),
            ],
        ),
    ]


def long_routing() -> list[erp.OperationSpec]:
    """TRV-2000: a 200-step wing rib routing (20 operations of 10 steps)."""
    ops = []
    for op in range(1, 21):
        steps = [
            erp.StepSpec(
                number=f"{op * 10}.{n}",
                title=f"Drill and fasten station {op}-{n}",
                instructions=f"Drill hole pattern {op}-{n} to 4.83 mm, deburr, install HL10 pin.",
                revision="B",
                inspection=n == 10,
                items=[
                    _item(
                        f"Hole diameter {op}-{n}",
                        "measurement",
                        unit="mm",
                        nominal=4.83,
                        lower=4.80,
                        upper=4.86,
                    )
                ],
            )
            for n in range(1, 11)
        ]
        ops.append(
            erp.OperationSpec(
                number=str(op * 10), name=f"Rib station {op}", work_center=WORK_CENTER, steps=steps
            )
        )
    return ops


def plant(today: date) -> erp.PlantImport:
    return erp.PlantImport(
        tools=[
            erp.ToolSpec(
                code="TL-0001",
                description="Torque wrench 5-25 Nm",
                calibration_due=today + timedelta(days=180),
            ),
            erp.ToolSpec(
                code="TL-0002",
                description="Torque wrench 5-25 Nm (spare)",
                calibration_due=today - timedelta(days=30),
            ),
            erp.ToolSpec(
                code="TL-0003",
                description="Bushing press tool",
                calibration_due=today + timedelta(days=90),
            ),
        ],
        material_lots=[
            erp.LotSpec(
                code="LOT-A100", part_number="7741-221", description="Bracket forging, Al 7075-T73"
            ),
            erp.LotSpec(
                code="LOT-A101", part_number="7741-221", description="Bracket forging, Al 7075-T73"
            ),
            erp.LotSpec(  # another part's lot, which the bracket routing refuses
                code="LOT-C300", part_number="7741-300", description="Bracket forging, Ti-6Al-4V"
            ),
        ],
        work_orders=[
            erp.WorkOrderSpec(
                number="WO-5001",
                part_number="7741-220",
                part_name="Actuator bracket assembly",
                quantity=3,
                travelers=[
                    erp.TravelerSpec(number=f"TRV-100{n}", serial=f"SN-7741-000{n}")
                    for n in (1, 2, 3)
                ],
                routing=_bracket_routing(),
            ),
            erp.WorkOrderSpec(
                number="WO-5002",
                part_number="5520-100",
                part_name="Wing rib, outboard",
                quantity=1,
                travelers=[erp.TravelerSpec(number="TRV-2000", lot="LOT-R2000")],
                routing=long_routing(),
            ),
            evidence_work_order(),
        ],
    )


def evidence_work_order() -> erp.WorkOrderSpec:
    """TRV-4001: photos and files as evidence. Its one step wants a photo of the torque stripe
    (from a phone, through the upload code the station shows) and, optionally, a file."""
    return erp.WorkOrderSpec(
        number="WO-5004",
        part_number="7741-230",
        part_name="Actuator bracket, spares kit",
        quantity=1,
        travelers=[erp.TravelerSpec(number="TRV-4001", serial="SN-7741-0401")],
        routing=[
            erp.OperationSpec(
                number="10",
                name="Record evidence",
                work_center=WORK_CENTER,
                steps=[
                    erp.StepSpec(
                        number="10.1",
                        title="Photograph torque stripe",
                        instructions="Photograph the torque stripes on all four bolts, close "
                        "enough to read them. Ctrl+O shows the upload code for your phone.",
                        revision="A",
                        items=[
                            _item("Photo of torque stripe", "photo"),
                            _item("Certificate of conformance", "file", required=False),
                        ],
                    )
                ],
            )
        ],
    )


def quality_plant(today: date) -> erp.PlantImport:
    """Certifications and the quality settings, loaded once the demo's work is done."""
    return erp.PlantImport(
        certifications=[
            erp.CertificationSpec(
                person="Ana Ortiz", operation="torque", expires=today + timedelta(days=365)
            ),
            erp.CertificationSpec(  # expired: Ben is refused the torque step, with the date
                person="Ben Okafor", operation="torque", expires=today - timedelta(days=10)
            ),
            erp.CertificationSpec(  # shows in `kiosk certifications --expiring 30`
                person="Ivy Chen", operation="NDT level 2", expires=today + timedelta(days=20)
            ),
        ],
        quality=quality.QualitySettings(second_approver=Role.SUPERVISOR),
    )


def seed(service: ExecutionService) -> None:
    """Load the demo plant into an empty store."""
    with service.store.begin() as conn:
        for person in PEOPLE:
            conn.execute(insert(t.users).values(**new_person(service.secret, *person)))
        erp.load(conn, _with_drawings(service, conn, plant(service.clock().date())))
    service.add_station(DEMO_STATION, WORK_CENTER)
    station = service.authenticate(service.local_station_token(DEMO_STATION, WORK_CENTER))
    _half_done(service, station)
    with service.store.begin() as conn:
        erp.load(conn, maintenance_plant())
    _weekly_check_done(service, station)
    sam = service.login(station, "30001")
    service.perform(
        station,
        _key(),
        PlaceHold(
            actor_id=sam.person.id,
            session=sam.session,
            traveler="TRV-1003",
            reason="Awaiting engineering review of drawing change ECN-2291",
        ),
    )
    with service.store.begin() as conn:
        erp.load(conn, quality_plant(service.clock().date()))
    _deviations(service, station)
    service.seal_audit()


# --- documents at revision: the bracket's drawing (B superseded by C) and the bushing spec ---

DRAWINGS = {  # step → the documents it shows
    "10.1": [("DWG-8810-011", "C")],
    "10.2": [("SPEC-NAS75-05", "A"), ("DWG-8810-011", "C")],
    "20.1": [("DWG-8810-011", "C")],
}


def _with_drawings(
    service: ExecutionService, conn: Connection, plant: erp.PlantImport
) -> erp.PlantImport:
    """Keep the demo's documents and have the bracket's steps name them (a service that keeps
    no files gets the plant without them)."""
    from kiosk.rules import Refusal
    from kiosk.server import demo_drawings, documents
    from kiosk.wire import DocumentRef

    try:
        files = service.files
    except Refusal:
        return plant
    kept = [
        ("DWG-8810-011", "B", "Actuator bracket assembly", demo_drawings.bracket_png("B")),
        ("DWG-8810-011", "C", "Actuator bracket assembly", demo_drawings.bracket_png("C")),
        ("SPEC-NAS75-05", "A", "Bushing installation", demo_drawings.bushing_pdf()),
    ]
    for number, revision, title, data in kept:
        spec = documents.DocumentSpec(number=number, revision=revision, title=title)
        documents.add(conn, files, spec, data, actor=None, now=service.clock())
    for order in plant.work_orders:
        for op in order.routing if order.number == "WO-5001" else []:
            for step in op.steps:
                refs = DRAWINGS.get(step.number, [])
                step.documents = [DocumentRef(number=n, revision=r) for n, r in refs]
    return plant


def _key() -> str:
    return f"demo-{uuid.uuid4()}"


def _half_done(service: ExecutionService, station: StationRef) -> None:
    """TRV-1002: operation 10 done by Ana over the last hour or so, with a break (her labour
    history: start, pause, resume, sign-off), operation 20 not yet started."""
    real_clock = service.clock
    moment = [real_clock() - timedelta(minutes=80)]

    def later(minutes: float) -> None:
        moment[0] += timedelta(minutes=minutes)

    service.clock = lambda: moment[0]
    try:
        _ana_works(service, station, later)
    finally:
        service.clock = real_clock


def _ana_works(
    service: ExecutionService, station: StationRef, later: Callable[[float], None]
) -> None:
    signed_in = service.login(station, "10001")
    ana = {"actor_id": signed_in.person.id, "session": signed_in.session}
    trav = service.traveler("TRV-1002")
    values = {
        "Bracket forging lot": "LOT-A100",
        "Kit complete per pick list": "acknowledged",
        "Press tool": "TL-0003",
        "Bushing bore diameter": "12.707",  # a typo, corrected to 12.702 (_correct_bore)
    }
    for step in trav.steps[:2]:
        service.perform(
            station, _key(), StartStep(**ana, traveler=trav.number, step_id=step.id)
        )
        later(12)
        if step is trav.steps[0]:  # a break, then back to it
            service.perform(station, _key(), PauseStep(**ana, traveler=trav.number, step_id=step.id))
            later(15)
            service.perform(station, _key(), StartStep(**ana, traveler=trav.number, step_id=step.id))
            later(9)
        for item in step.items:
            service.perform(
                station,
                _key(),
                RecordValue(
                    **ana, traveler=trav.number, item_id=item.id, value=values[item.label]
                ),
            )
        if step is trav.steps[1]:
            _correct_bore(service, station, ana, trav.number, step.items[1].id)
        status, body = service.perform(
            station,
            _key(),
            SignStep(
                **ana,
                traveler=trav.number,
                step_id=step.id,
                meaning=Meaning.PERFORMED,
                credentials=Credentials(badge="10001", pin="1111"),
            ),
        )
        assert status == 200, body
        later(4)


def _correct_bore(
    service: ExecutionService, station: StationRef, ana: dict[str, Any], number: str, item: int
) -> None:
    """Corrections: Ana typed 12.707 for the 12.702 the gauge read, and corrected it before she
    signed; the as-built of TRV-1002 shows both values, who corrected it and why."""
    fix = CorrectValue(**ana, traveler=number, item_id=item, corrects="12.707", value="12.702",
                       reason="Typo: the gauge reads 12.702")  # fmt: skip
    status, body = service.perform(station, _key(), fix)
    assert status == 200, body
# --- maintenance on assets ---------------------------------------------------------------------

ASSET = "PRESS-07"
MAINTENANCE = "MAINTENANCE"
"""The maintenance crew's work center: its tasks are not in the assembly queue."""


def maintenance_plant() -> erp.PlantImport:
    """PRESS-07 with two tasks: the operators' weekly check at the press (TRV-3001, done by Ana
    a week ago) and the crew's quarterly maintenance (TRV-3002, open at MAINTENANCE)."""
    asset = {"id": ASSET, "kind": "equipment", "description": "Hydraulic bushing press, cell 2"}

    def order(number: str, name: str, traveler: str, task: str, op: dict[str, object]) -> object:
        return {
            "number": number,
            "part_number": ASSET,  # a maintenance order's "part" is the asset it is done on
            "part_name": name,
            "quantity": 1,
            "asset": asset,
            "travelers": [{"number": traveler, "task": task}],
            "routing": [op],
        }

    weekly: dict[str, object] = {
        "number": "10",
        "name": "Weekly press check",
        "work_center": WORK_CENTER,
        "steps": [
            _mx_step("10.1", "Check hydraulic pressure", "Read the system gauge with the ram at rest.", [
                _item("System pressure", "measurement", unit="bar", nominal=180, lower=170, upper=190),
                _item("No leaks at fittings", "pass_fail"),
            ]),
            _mx_step("10.2", "Check platen bolts", "Torque the four platen bolts to 12.5 Nm.", [
                _item("Torque wrench", "tool"),
                _item("Platen bolt torque", "measurement", unit="Nm", nominal=12.5, lower=11.5,
                      upper=13.5),
            ]),
        ],
    }  # fmt: skip
    quarterly: dict[str, object] = {
        "number": "10",
        "name": "Quarterly preventive maintenance",
        "work_center": MAINTENANCE,
        "steps": [
            _mx_step("10.1", "Lock out and tag out", "Isolate power and hydraulics; hang tag LOTO-07.", [
                _item("Press locked out and tagged", "acknowledgement"),
            ]),
            _mx_step("10.2", "Replace hydraulic filter", "Fit a new return-line filter element.", [
                _item("Filter element serial", "text"),
                _item("Old element bagged for analysis", "acknowledgement"),
            ]),
            _mx_step("10.3", "Functional test", "Remove the lock-out; cycle the ram five times.", [
                _item("System pressure", "measurement", unit="bar", nominal=180, lower=170, upper=190),
                _item("Two-hand control stops the ram", "pass_fail"),
            ]),
        ],
    }  # fmt: skip
    return erp.PlantImport.model_validate(
        {
            "work_orders": [
                order("WO-3001", "Weekly press check", "TRV-3001", "PM-07-W", weekly),
                order("WO-3002", "Quarterly maintenance", "TRV-3002", "PM-07-Q", quarterly),
            ]
        }
    )


def _mx_step(number: str, title: str, text: str, items: list[erp.ItemSpec]) -> dict[str, object]:
    return {"number": number, "title": title, "instructions": text, "items": items}


def _weekly_check_done(service: ExecutionService, station: StationRef) -> None:
    """TRV-3001: Ana's weekly check of PRESS-07, a week ago, each step signed as performed."""
    real_clock = service.clock
    moment = [real_clock() - timedelta(days=7)]
    service.clock = lambda: moment[0]
    try:
        signed_in = service.login(station, "10001")
        ana = {"actor_id": signed_in.person.id, "session": signed_in.session}
        values = {
            "System pressure": "182",
            "No leaks at fittings": "pass",
            "Torque wrench": "TL-0001",
            "Platen bolt torque": "12.6",
        }
        trav = service.traveler("TRV-3001")
        for step in trav.steps:
            start = StartStep(**ana, traveler=trav.number, step_id=step.id)
            service.perform(station, _key(), start)
            moment[0] += timedelta(minutes=6)
            for item in step.items:
                record = RecordValue(
                    **ana, traveler=trav.number, item_id=item.id, value=values[item.label]
                )
                service.perform(station, _key(), record)
            sign = SignStep(
                **ana, traveler=trav.number, step_id=step.id, meaning=Meaning.PERFORMED,
                credentials=Credentials(badge="10001", pin="1111"),
            )  # fmt: skip
            status, body = service.perform(station, _key(), sign)
            assert status == 200, body
            moment[0] += timedelta(minutes=2)
    finally:
        service.clock = real_clock
def _deviations(service: ExecutionService, station: StationRef) -> None:
    """DEV-0001: flatness up to 0.08 mm on step 20.2 of TRV-1002 and TRV-1003, approved by Sam
    (quality) at the demo station; DEV-0002: torque up to 14.0 Nm on TRV-1003, raised, not yet
    approved. TRV-1001 has none: a fresh traveler to try `kiosk deviation raise` on."""
    today = service.clock().date()
    flatness = RaiseDeviation(
        part_number="7741-220", travelers=("TRV-1002", "TRV-1003"), steps=("20.2",),
        item="Mounting face flatness", upper=0.08,
        reason="Fixture FX-12 under repair; the customer accepts 0.08 mm (concession C-118).",
        units=2, until=today + timedelta(days=90),
    )  # fmt: skip
    torque = RaiseDeviation(
        travelers=("TRV-1003",), steps=("20.1",), item="Fastener torque", upper=14.0,
        reason="Alternate sealant per ECN-2291 raises the run-down torque.", units=1,
        until=today + timedelta(days=30),
    )  # fmt: skip
    with service.store.begin() as conn:
        first = deviations.raise_deviation(conn, flatness, "Sam Patel", service.clock())
        deviations.raise_deviation(conn, torque, "Sam Patel", service.clock())
    sam = service.login(station, "30001")
    approve = ApproveDeviation(
        actor_id=sam.person.id, session=sam.session, traveler="TRV-1002",
        deviation=first.number, credentials=Credentials(badge="30001", pin="3333"),
    )  # fmt: skip
    status, body = service.perform(station, _key(), approve)
    assert status == 200, body
