"""Prometheus series of the central role, on the gateway's own registry.

:class:`CentralMetrics` exists only when the gateway has an admin
listener (``busgw/telemetry.admin``): the gateway passes its
:class:`~busd.metrics.GatewayMetrics` to ``build_roles``, the role builds
this as ``role.metrics``, and each part reads it once when it is made
(None: the part counts nothing, so the hot paths cost one ``is None``).

Two kinds of series:

* counters and histograms the parts feed as things happen (a poll round,
  an event answered, a webhook attempt), with pre-bound children and
  labels from small fixed sets (never a bus id: a fleet has 1,000 buses);
* gauges computed when scraped by :class:`_FleetCollector` from what the
  parts hold in memory (``role.state``, the poller's queue, the hub's
  subscribers, the webhooks' pending count); a scrape never touches the
  event database.
"""

from __future__ import annotations

from typing import Any, Iterator, List, Optional, Tuple

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.logger import Logger
from twisted.python.failure import Failure

from busd.central.fleet import LEVELS, STATES

__all__ = [
    "CentralMetrics",
    "EVENT_RESULTS",
    "WEBHOOK_RESULTS",
    "STATES",
    "event_result",
]

_log = Logger()

EVENT_RESULTS = (
    "stored",
    "duplicate",
    "conflict",
    "rejected",
    "unauthorized",
    "unavailable",
)
WEBHOOK_RESULTS = ("delivered", "retried", "gave_up")

# Seconds: a round over 4G takes from tens of milliseconds up to the poll
# timeout; a due bus may wait behind the concurrency bound for as long.
_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def event_result(status: Optional[int]) -> str:
    """The ``result`` label of a ``POST /events`` answered with ``status``
    (None: the handler failed, a 500)."""
    if status == 201:
        return "stored"
    if status is not None and 200 <= status < 300:
        return "duplicate"
    if status == 409:
        return "conflict"
    if status in (401, 403):
        return "unauthorized"
    if status is None or status >= 500:
        return "unavailable"
    return "rejected"  # 400, 413, 422: the bus drops the event for good


class CentralMetrics:
    """The central's series on ``registry``; scrape-time gauges read
    ``role``. Built once per role (registering twice raises)."""

    def __init__(self, registry: CollectorRegistry, role: Any):
        r = registry
        rounds = Counter(
            "busgw_central_poll_rounds",
            "Poll rounds ended, by outcome (ok: the bus answered something).",
            ["outcome"],
            registry=r,
        )
        self._round_ok = rounds.labels("ok")
        self._round_failed = rounds.labels("failed")
        self._round_seconds = Histogram(
            "busgw_central_poll_duration_seconds",
            "Time of one poll round (all of a bus's GETs).",
            buckets=_BUCKETS,
            registry=r,
        )
        self._queue_seconds = Histogram(
            "busgw_central_poll_queue_seconds",
            "Time a due bus waited for a slot under poll.concurrency.",
            buckets=_BUCKETS,
            registry=r,
        )
        events = Counter(
            "busgw_central_events",
            "Events posted by buses, by result.",
            ["result"],
            registry=r,
        )
        self._events = {name: events.labels(name) for name in EVENT_RESULTS}
        hooks = Counter(
            "busgw_central_webhook_deliveries",
            "Webhook delivery attempts, by result (retried: failed, tried"
            " again later; gave_up: failed past give_up_after).",
            ["result"],
            registry=r,
        )
        self._webhooks = {name: hooks.labels(name) for name in WEBHOOK_RESULTS}
        registry.register(_FleetCollector(role))

    def poll_admitted(self, waited: float) -> None:
        """A due bus got its poll slot ``waited`` seconds after it was due."""
        self._queue_seconds.observe(max(0.0, waited))

    def poll_round(self, seconds: float, ok: bool) -> None:
        """A round ended after ``seconds``; ``ok`` if the bus answered."""
        (self._round_ok if ok else self._round_failed).inc()
        self._round_seconds.observe(max(0.0, seconds))

    def event_answered(self, result: Any, request: Any) -> Any:
        """Count a ``POST /events`` by its answer's status (a Deferred
        callback and errback: passes ``result`` on)."""
        status = None if isinstance(result, Failure) else request.code
        self._events[event_result(status)].inc()
        return result

    def webhook(self, result: str) -> None:
        """One delivery attempt's ``result`` (one of WEBHOOK_RESULTS)."""
        self._webhooks[result].inc()


class _FleetCollector(Collector):
    """The scrape-time gauges. Each reads only memory; a part missing (not
    built, or not started yet) leaves its series out or at zero."""

    def __init__(self, role: Any):
        self._role = role

    def describe(self) -> Iterator[Metric]:
        # Names only: registering must not read parts not built yet.
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        try:
            self._fill(*families)
        except Exception:
            # A scrape must still answer the gateway's other series.
            _log.failure("central metrics: reading the fleet failed")
            families = self._families()
        return iter(families)

    @staticmethod
    def _families() -> List[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "busgw_central_buses",
                "Buses of the fleet by state now.",
                labels=["state"],
            ),
            GaugeMetricFamily(
                "busgw_central_bus_levels",
                "Buses of the fleet by health level (last known).",
                labels=["level"],
            ),
            GaugeMetricFamily(
                "busgw_central_polls_in_flight", "Poll rounds running now."
            ),
            GaugeMetricFamily(
                "busgw_central_poll_waiting",
                "Buses due for a poll, waiting for a slot under"
                " poll.concurrency.",
            ),
            GaugeMetricFamily(
                "busgw_central_webhook_pending",
                "Webhook deliveries to the configured URLs not yet done"
                " (counted in memory from what the store commits).",
            ),
            GaugeMetricFamily(
                "busgw_central_stream_subscribers",
                "Open /fleet/stream connections.",
            ),
        ]

    def _fill(
        self,
        buses: GaugeMetricFamily,
        levels: GaugeMetricFamily,
        in_flight: GaugeMetricFamily,
        waiting: GaugeMetricFamily,
        pending: GaugeMetricFamily,
        subscribers: GaugeMetricFamily,
    ) -> None:
        role = self._role
        state = getattr(role, "state", None)
        if state is not None:
            by_state, by_level = state.counts()
        else:
            by_state, by_level = {}, {}
        for name in STATES:
            buses.add_metric([name], by_state.get(name, 0))
        for name in LEVELS:
            levels.add_metric([name], by_level.get(name, 0))
        running, queued = _poll_load(role)
        in_flight.add_metric([], running)
        waiting.add_metric([], queued)
        events = getattr(role, "events", None)
        webhooks = getattr(events, "webhooks", None)
        pending.add_metric([], getattr(webhooks, "pending", 0))
        hub = getattr(role, "hub", None)
        subscribers.add_metric([], len(getattr(hub, "subscribers", ()) or ()))


def _poll_load(role: Any) -> Tuple[int, int]:
    """The poller's (rounds running, buses waiting); zeros without one."""
    for part in getattr(role, "parts", ()):
        load = getattr(part, "poll_load", None)
        if callable(load):
            running, queued = load()
            return int(running), int(queued)
    return 0, 0
