"""The demo plant: people, tools, material and travelers a new user can try the whole flow on.

It is loaded through the same importer the ERP uses, and TRV-1002 / TRV-1003 are brought to their
state through the same actions a station sends, so the demo's audit chain is a real one.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from sqlalchemy import insert

from kiosk.server import erp
from kiosk.server import schema as t
from kiosk.server.domain import StationRef
from kiosk.server.security import hash_pin
from kiosk.server.service import ExecutionService
from kiosk.wire import Credentials, Meaning, PlaceHold, RecordValue, SignStep, StartStep

WORK_CENTER = "ASSEMBLY"
DEMO_STATION = "DEMO-01"

# name, badge, PIN, roles, qualified work centers
PEOPLE = [
    ("Ana Ortiz", "10001", "1111", "operator", WORK_CENTER),
    ("Ben Okafor", "10002", "1212", "operator", WORK_CENTER),
    ("Olu Field", "10003", "1313", "operator", "PAINT"),
    ("Ivy Chen", "20001", "2222", "inspector", "*"),
    ("Sam Patel", "30001", "3333", "supervisor,quality", "*"),
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
                        _item("Bracket forging lot", "material"),
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
                    [_item("Marked serial", "text"), _item("Marking legible", "acknowledgement")],
                ),
            ],
        ),
    ]


def _long_routing() -> list[erp.OperationSpec]:
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
                routing=_long_routing(),
            ),
        ],
    )


def seed(service: ExecutionService) -> None:
    """Load the demo plant into an empty store."""
    with service.store.begin() as conn:
        for name, badge, pin, roles, centers in PEOPLE:
            conn.execute(
                insert(t.users).values(
                    name=name,
                    roles=roles,
                    work_centers=centers,
                    badge_hmac=service.secret.badge_hash(badge),
                    pin_hash=hash_pin(pin),
                    failed_pins=0,
                    locked=False,
                    active=True,
                )
            )
        erp.load(conn, plant(service.clock().date()))
    service.add_station(DEMO_STATION, WORK_CENTER)
    station = service.authenticate(service.local_station_token(DEMO_STATION, WORK_CENTER))
    _half_done(service, station)
    sam = service.login(station, "30001")
    service.perform(
        station,
        _key(),
        PlaceHold(
            actor_id=sam.id,
            traveler="TRV-1003",
            reason="Awaiting engineering review of drawing change ECN-2291",
        ),
    )
    service.seal_audit()


def _key() -> str:
    return f"demo-{uuid.uuid4()}"


def _half_done(service: ExecutionService, station: StationRef) -> None:
    """TRV-1002: operation 10 done by Ana, operation 20 not yet started."""
    ana = service.login(station, "10001")
    trav = service.traveler("TRV-1002")
    values = {
        "Bracket forging lot": "LOT-A100",
        "Kit complete per pick list": "acknowledged",
        "Press tool": "TL-0003",
        "Bushing bore diameter": "12.702",
    }
    for step in trav.steps[:2]:
        service.perform(
            station, _key(), StartStep(actor_id=ana.id, traveler=trav.number, step_id=step.id)
        )
        for item in step.items:
            service.perform(
                station,
                _key(),
                RecordValue(
                    actor_id=ana.id, traveler=trav.number, item_id=item.id, value=values[item.label]
                ),
            )
        status, body = service.perform(
            station,
            _key(),
            SignStep(
                actor_id=ana.id,
                traveler=trav.number,
                step_id=step.id,
                meaning=Meaning.PERFORMED,
                credentials=Credentials(badge="10001", pin="1111"),
            ),
        )
        assert status == 200, body
