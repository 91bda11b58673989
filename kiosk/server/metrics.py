"""GET /metrics in the Prometheus text format (prometheus-client).

Two kinds of figures:

- counted by the process as it answers: requests and their latency per route template, and
  station actions applied or refused, by rule (kiosk.server.observe reads both from the answers
  of the action routes, so the domain knows nothing of metrics);
- read from the database at each scrape: outbox depth and last heartbeat per station, open holds,
  open NCRs. Every server process reads the same rows, so these are right whichever worker
  answers the scrape.

With `kiosk serve --workers N` the counted figures live in prometheus-client's multiprocess
files ($PROMETHEUS_MULTIPROC_DIR, a fresh directory `kiosk serve` makes for the run), and each
scrape adds up every worker's, including workers that uvicorn has since replaced.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Row, func, select

from kiosk import __version__
from kiosk.server import schema as t
from kiosk.wire import Heartbeat

if TYPE_CHECKING:
    from kiosk.server.store import Store

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# No `_created` series beside each counter: a scraper only needs the counts.
disable_created_metrics()  # type: ignore[no-untyped-call]
# Seconds: a GET of a traveler takes a few ms, a batch of 100 actions a few hundred.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REQUEST_DURATION = "kiosk_http_request_duration_seconds"
"""The histogram of the answers' times: named once, for the benchmark that reads it too."""


class HttpMetrics:
    """What this process counts; one per app, so a test's app starts from zero."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kiosk_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            REQUEST_DURATION,
            "Time from request to the end of the answer, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.actions = Counter(
            "kiosk_actions",
            "Station actions answered (alone or in a batch): applied, or refused and by which rule.",
            ["outcome", "rule"],
            registry=self.registry,
        )
        self.actions.labels("applied", "")  # shown as 0 before the first action

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def applied(self, count: int = 1) -> None:
        self.actions.labels("applied", "").inc(count)

    def refused(self, rule: str) -> None:
        self.actions.labels("refused", rule).inc()


class PlantCollector(Collector):
    """Gauges read from the database when scraped: the same rows every worker sees."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "kiosk_database_up", "1 when the scrape could read the database, else 0."
        )
        try:
            figures = list(self._read())
        except Exception as exc:  # a scrape still answers: the database being down is a figure
            log.warning("metrics: database not readable: %s", str(exc).splitlines()[0])
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from figures
        info = GaugeMetricFamily("kiosk_build_info", "The server's version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info

    def _read(self) -> Iterator[Metric]:
        with self.store.read() as conn:
            holds = conn.execute(
                select(func.count())
                .select_from(t.holds)
                .where(t.holds.c.released_signature_id.is_(None))
            ).scalar_one()
            ncrs = conn.execute(
                select(func.count()).select_from(t.ncrs).where(t.ncrs.c.disposition.is_(None))
            ).scalar_one()
            beats = conn.execute(
                select(t.stations.c.name, t.stations.c.work_center, t.heartbeats)
                .join(t.heartbeats, t.heartbeats.c.station_id == t.stations.c.id)
                .where(t.stations.c.revoked.is_(False))
                .order_by(t.stations.c.name)
            ).all()
            publishers = _publisher_rows(conn)
        yield GaugeMetricFamily("kiosk_open_holds", "Holds not yet released.", value=holds)
        yield GaugeMetricFamily("kiosk_open_ncrs", "NCRs without a disposition.", value=ncrs)
        yield from _station_gauges(beats)
        yield from _publisher_figures(*publishers)


def _publisher_rows(conn: Connection) -> tuple[int, Sequence[Row[Any]]]:
    head = conn.execute(select(t.audit_head.c.seq).where(t.audit_head.c.id == 1)).scalar_one()
    return int(head), conn.execute(select(t.event_publishers)).all()


def _publisher_figures(head: int, rows: Sequence[Row[Any]]) -> Iterator[Metric]:
    """The MQTT publisher's progress (kiosk.server.mqtt), once it has started: shown only then."""
    if not rows:
        return
    published = CounterMetricFamily(
        "kiosk_events_published", "Events the broker acknowledged.", labels=["publisher"]
    )
    lag = GaugeMetricFamily(
        "kiosk_events_publisher_lag",
        "Audit records the publisher has yet to look at; alert when it keeps growing.",
        labels=["publisher"],
    )
    for row in rows:
        published.add_metric([row.name], row.published)
        lag.add_metric([row.name], max(0, head - row.cursor))
    yield from (published, lag)


def _station_gauges(beats: Sequence[Row[Any]]) -> Iterator[Metric]:
    labels = ["station", "work_center"]
    waiting = GaugeMetricFamily(
        "kiosk_station_outbox_waiting",
        "Actions a station had recorded and not yet delivered, at its last heartbeat.",
        labels=labels,
    )
    refused = GaugeMetricFamily(
        "kiosk_station_outbox_refused",
        "Actions the server refused that a station keeps for attention, at its last heartbeat.",
        labels=labels,
    )
    last = GaugeMetricFamily(
        "kiosk_station_last_heartbeat_timestamp_seconds",
        "When the server last heard a station's heartbeat (Unix time); alert on time() - this.",
        labels=labels,
    )
    for row in beats:
        names = [row.name, row.work_center]
        beat = Heartbeat.model_validate_json(row.body)
        waiting.add_metric(names, beat.outbox_waiting)
        refused.add_metric(names, beat.outbox_refused)
        last.add_metric(names, row.received_at.timestamp())
    yield from (waiting, refused, last)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def exposition(
    metrics: HttpMetrics, plant: PlantCollector, accept: str | None
) -> tuple[bytes, str]:
    """The scrape body and its content type, negotiated from the scraper's Accept header."""
    registry = CollectorRegistry()
    if multiprocess():
        # Every worker's counts, from the shared directory (the class has no type hints).
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Own(metrics.registry))
    registry.register(plant)
    encode, content_type = choose_encoder(accept or "")
    return encode(registry), content_type


class _Own(Collector):
    """This process's own counters, as a collector of the scrape's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()
