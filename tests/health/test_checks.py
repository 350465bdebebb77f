"""Table tests for the pure health evaluators (busd.health.checks), the
results they make (busd.health.results) and their JSON helpers."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

import attrs
from twisted.trial.unittest import SynchronousTestCase

from busd.config._health import CheckConfig, SourceConfig
from busd.health import checks
from busd.health._data import extract, parse_timestamp
from busd.health.results import (
    CheckResult,
    Fetched,
    health_report,
    http_status,
    overall,
)

NOW = 1_795_000_000.0  # 2026-11-18T11:06:40Z
SRC = SourceConfig(url="http://127.0.0.1:9101/vehicle")


def value(**kw: Any) -> CheckConfig:
    """A value check on ``fuel`` (warning unless ``level`` says)."""
    options: Dict[str, Any] = {"name": "fuel", "kind": "value", "source": SRC}
    options["path"] = "fuel"
    options.update(kw)
    return CheckConfig(**options)


def fresh(**kw: Any) -> CheckConfig:
    """A freshness check on ``updated_at``, 30 s max age."""
    options: Dict[str, Any] = {
        "name": "gps",
        "kind": "freshness",
        "source": SRC,
        "path": "updated_at",
        "max_age": 30.0,
    }
    options.update(kw)
    return CheckConfig(**options)


Row = Tuple[str, str, Callable[[], CheckResult], str, Any, str]


def table(rows: List[Row]) -> Dict[str, Callable[[SynchronousTestCase], None]]:
    """Test methods from rows (name, docstring, evaluation, expected
    status, expected observed (or ...), reason fragment)."""

    def make(
        doc: str,
        run: Callable[[], CheckResult],
        status: str,
        seen: Any,
        why: str,
    ) -> Callable[[SynchronousTestCase], None]:
        def test(self: SynchronousTestCase) -> None:
            result = run()
            self.assertEqual(result.status, status, result)
            if seen is not ...:
                self.assertEqual(result.observed, seen, result)
            self.assertIn(why, result.reason)
            self.assertEqual(result.evaluated_at, NOW)

        test.__doc__ = doc
        return test

    return {f"test_{r[0]}": make(*r[1:]) for r in rows}


def ev_value(
    check: CheckConfig, data: Any, **kw: Any
) -> Callable[[], CheckResult]:
    return lambda: checks.evaluate_value(check, NOW, Fetched(data, **kw))


def ev_fresh(check: CheckConfig, data: Any) -> Callable[[], CheckResult]:
    return lambda: checks.evaluate_freshness(check, NOW, Fetched(data))


TYRES = {"tyres": [{"p": 8.1}, {"p": 7.2}, {"p": 8.0}, {"p": 6.9}]}
CRIT = value(level="critical", minimum=10)

# fmt: off
VALUE_ROWS: List[Row] = [
    ("within", "A value between min and max is ok.",
     ev_value(value(minimum=10, maximum=100), {"fuel": 50}), "ok", 50,
     "within limits"),
    ("on_bound", "The bounds themselves are within the limits.",
     ev_value(value(minimum=10, maximum=50), {"fuel": 50}), "ok", 50, ""),
    ("below_warning", "Below min fails at the check's level (warning).",
     ev_value(value(minimum=10), {"fuel": 9.5}), "warning", 9.5,
     "fuel = 9.5 is below min 10"),
    ("below_critical", "A critical-level check fails as critical.",
     ev_value(CRIT, {"fuel": 3}), "critical", 3, "below min 10"),
    ("above", "Above max fails.",
     ev_value(value(maximum=95), {"fuel": 103.5}), "warning", 103.5,
     "above max 95"),
    ("allowed", "A value in the allowed set is ok.",
     ev_value(value(allowed=("closed", "locked")), {"fuel": "locked"}), "ok",
     "locked", ""),
    ("not_allowed", "A value outside the allowed set fails.",
     ev_value(value(allowed=("closed",)), {"fuel": "open"}), "warning",
     "open", "not one of the allowed values"),
    ("bool_is_not_one", "JSON true does not match an allowed 1.",
     ev_value(value(allowed=(1,)), {"fuel": True}), "warning", True,
     "not one of"),
    ("int_is_float", "1 and 1.0 are the same JSON number.",
     ev_value(value(allowed=(1.0,)), {"fuel": 1}), "ok", 1, ""),
    ("not_number", "A string where a number is bounded is unknown.",
     ev_value(value(minimum=1), {"fuel": "ERR"}), "unknown", "ERR",
     "not a number"),
    ("bool_not_number", "A boolean is not a number for min/max.",
     ev_value(value(minimum=0), {"fuel": True}), "unknown", True,
     "not a number"),
    ("missing", "A missing value is unknown, naming the path.",
     ev_value(value(minimum=1), {"other": 1}), "unknown", None,
     "no value at fuel"),
    ("missing_partial", "A missing value from a partial answer says so.",
     ev_value(value(minimum=1), {}, partial=True), "unknown", None,
     "without all its backends"),
    ("source_down", "A source that failed makes the check unknown.",
     lambda: checks.evaluate_value(
         value(minimum=1), NOW, Fetched(error="connection refused")),
     "unknown", None, "source unavailable: connection refused"),
    ("wildcard_ok", "With * every value must hold; observed lists them.",
     ev_value(value(path="tyres.*.p", minimum=6), TYRES), "ok",
     [8.1, 7.2, 8.0, 6.9], ""),
    ("wildcard_fails", "With * each failing item is named.",
     ev_value(value(path="tyres.*.p", minimum=7.5), TYRES), "warning",
     [8.1, 7.2, 8.0, 6.9], "tyres.1.p = 7.2 is below min 7.5; tyres.3.p"),
    ("index", "A numeric segment indexes an array.",
     ev_value(value(path="tyres.3.p", minimum=7.5), TYRES), "warning", 6.9,
     "tyres.3.p = 6.9"),
    ("failure_wins", "A failing item outweighs an unknown one.",
     ev_value(value(path="v.*", minimum=5), {"v": ["x", 1]}), "warning",
     ["x", 1], "v.1 = 1 is below min 5"),
]

FRESH_ROWS: List[Row] = [
    ("fresh_iso", "An RFC 3339 timestamp within max_age is ok.",
     ev_fresh(fresh(), {"updated_at": "2026-11-18T11:06:30Z"}), "ok",
     {"age_s": 10.0}, "is 10.0s old"),
    ("stale_iso", "Older than max_age fails at the check's level.",
     ev_fresh(fresh(), {"updated_at": "2026-11-18T11:05:00Z"}), "warning",
     {"age_s": 100.0}, "updated_at is 100.0s old (max 30s)"),
    ("stale_critical", "A critical freshness check fails as critical.",
     ev_fresh(fresh(level="critical"), {"updated_at": NOW - 31}),
     "critical", {"age_s": 31.0}, "max 30s"),
    ("epoch", "Epoch seconds are a timestamp too.",
     ev_fresh(fresh(), {"updated_at": NOW - 5}), "ok", {"age_s": 5.0}, ""),
    ("offset", "An offset is honoured.",
     ev_fresh(fresh(), {"updated_at": "2026-11-18T12:06:30+01:00"}), "ok",
     {"age_s": 10.0}, ""),
    ("future", "A timestamp in the future is fresh.",
     ev_fresh(fresh(), {"updated_at": NOW + 50}), "ok", {"age_s": -50.0},
     "is 0.0s old"),
    ("garbage", "Something that is no timestamp is unknown.",
     ev_fresh(fresh(), {"updated_at": "yesterday"}), "unknown", None,
     "not a timestamp"),
    ("oldest_counts", "With * the oldest timestamp counts.",
     ev_fresh(fresh(path="s.*.t"), {"s": [{"t": NOW}, {"t": NOW - 40}]}),
     "warning", {"age_s": 40.0}, "s.1.t is 40.0s old"),
    ("fresh_missing", "No timestamp at the path is unknown.",
     ev_fresh(fresh(), {}), "unknown", None, "no value at updated_at"),
]
# fmt: on

BACKEND = CheckConfig(
    name="ecu", kind="backend", level="critical", url="http://ecu/v"
)


class ValueTests(SynchronousTestCase):
    """Thresholds, allowed sets, levels and missing values."""

    locals().update(table(VALUE_ROWS))

    def test_limit_shown(self) -> None:
        """The limit lists the configured bounds only."""
        result = checks.evaluate_value(
            value(minimum=1, allowed=(1, 2)), NOW, Fetched({"fuel": 1})
        )
        self.assertEqual(result.limit, {"min": 1, "allowed": [1, 2]})


class FreshnessTests(SynchronousTestCase):
    """Timestamps, max_age and levels."""

    locals().update(table(FRESH_ROWS))


class BackendTests(SynchronousTestCase):
    """A device service's answer against expect_status."""

    def test_expected(self) -> None:
        """The expected status is ok; observed holds status and time."""
        r = checks.evaluate_backend(BACKEND, NOW, status=200, elapsed=0.0123)
        self.assertEqual(
            (r.status, r.observed), ("ok", {"status": 200, "elapsed_s": 0.012})
        )
        self.assertEqual(r.limit, {"status": 200, "timeout_s": 2.0})

    def test_other_status(self) -> None:
        """Another status fails at the check's level."""
        r = checks.evaluate_backend(BACKEND, NOW, status=500, elapsed=0.1)
        self.assertEqual(r.status, "critical")
        self.assertIn("answered 500, expected 200", r.reason)

    def test_custom_expectation(self) -> None:
        """expect_status 204 makes a 200 fail and a 204 pass."""
        check = attrs.evolve(BACKEND, expect_status=204, level="warning")
        self.assertEqual(
            checks.evaluate_backend(check, NOW, status=200).status, "warning"
        )
        self.assertEqual(
            checks.evaluate_backend(check, NOW, status=204).status, "ok"
        )

    def test_error(self) -> None:
        """No answer (timeout, refused) fails with the reason."""
        r = checks.evaluate_backend(BACKEND, NOW, error="no answer within 2s")
        self.assertEqual((r.status, r.observed), ("critical", None))
        self.assertEqual(r.reason, "http://ecu/v: no answer within 2s")


EVENT = CheckConfig(
    name="crash", kind="event", level="critical", event_kind="crash"
)


class EventTests(SynchronousTestCase):
    """Active events of a kind."""

    def test_none_active(self) -> None:
        """No active event is ok."""
        r = checks.evaluate_event(EVENT, NOW, [])
        self.assertEqual((r.status, r.observed), ("ok", 0))

    def test_active(self) -> None:
        """Active events fail, counting them and naming the newest."""
        events = [{"id": "e2", "occurred_at": "T2"}, {"id": "e1"}]
        r = checks.evaluate_event(EVENT, NOW, events)
        self.assertEqual((r.status, r.observed), ("critical", 2))
        self.assertIn("2 active crash event(s); newest e2 at T2", r.reason)

    def test_no_source(self) -> None:
        """Without an event outbox the check is unknown."""
        r = checks.evaluate_event(EVENT, NOW, None)
        self.assertEqual(r.status, "unknown")


CLOCK = CheckConfig(name="clock", kind="clock", level="warning", min_year=2026)


class ClockTests(SynchronousTestCase):
    """The year floor and the drift against the central's Date."""

    def test_synchronised(self) -> None:
        """A current year and no drift limit is ok."""
        r = checks.evaluate_clock(CLOCK, NOW, None)
        self.assertEqual(r.status, "ok")
        self.assertEqual(
            r.observed, {"now": "2026-11-18T11:06:40Z", "drift_s": None}
        )

    def test_before_build_year(self) -> None:
        """A clock reading 1970 was never synchronised."""
        r = checks.evaluate_clock(CLOCK, 1000.0, None)
        self.assertEqual(r.status, "warning")
        self.assertIn("reads 1970, before 2026", r.reason)

    def test_drift(self) -> None:
        """A drift beyond max_drift fails, either way round."""
        check = attrs.evolve(CLOCK, max_drift=30.0)
        ahead = checks.evaluate_clock(check, NOW, 45.0)
        behind = checks.evaluate_clock(check, NOW, -31.0)
        within = checks.evaluate_clock(check, NOW, -29.0)
        self.assertEqual(
            [ahead.status, behind.status, within.status],
            ["warning", "warning", "ok"],
        )
        self.assertIn("45.0s ahead of the central's", ahead.reason)
        self.assertIn("31.0s behind", behind.reason)

    def test_no_date_yet(self) -> None:
        """Without a Date header yet, a drift limit does not fail."""
        r = checks.evaluate_clock(
            attrs.evolve(CLOCK, max_drift=30.0), NOW, None
        )
        self.assertEqual(r.status, "ok")
        self.assertIn("no Date header", r.reason)


class OutboxTests(SynchronousTestCase):
    """The built-in outbox pressure check."""

    def pressure(self, level: str) -> Dict[str, Any]:
        return {
            "pending": 12,
            "bytes": 3400,
            "max_events": 100,
            "max_bytes": 10_000,
            "level": level,
            "oldest_pending_age": 61.5,
        }

    def test_levels(self) -> None:
        """The outbox's own level is the check's status."""
        for level in ("ok", "warning", "critical"):
            r = checks.evaluate_outbox(NOW, self.pressure(level))
            self.assertEqual(
                (r.name, r.kind, r.status), ("outbox", "outbox", level)
            )
        self.assertEqual(r.observed["pending"], 12)
        self.assertEqual(r.limit, {"max_events": 100, "max_bytes": 10_000})

    def test_disk_error(self) -> None:
        """A failing outbox disk is named in the reason."""
        pressure = dict(self.pressure("critical"), error="disk full")
        r = checks.evaluate_outbox(NOW, pressure)
        self.assertEqual(r.status, "critical")
        self.assertIn("the outbox fails: disk full", r.reason)

    def test_strange_level(self) -> None:
        """A level the check does not know is unknown."""
        r = checks.evaluate_outbox(NOW, self.pressure("full"))
        self.assertEqual(r.status, "unknown")


def result(status: str, level: str = "warning") -> CheckResult:
    return CheckResult(name=status, kind="value", level=level, status=status)


class OverallTests(SynchronousTestCase):
    """Overall status and the HTTP status of /health."""

    def test_overall(self) -> None:
        """critical beats warning and unknown, which beat ok."""
        cases = [
            ([], "ok"),
            (["ok", "ok"], "ok"),
            (["ok", "warning"], "degraded"),
            (["ok", "unknown"], "degraded"),
            (["warning", "critical", "unknown"], "critical"),
        ]
        for statuses, want in cases:
            self.assertEqual(
                overall([result(s) for s in statuses]), want, statuses
            )

    def test_http_status(self) -> None:
        """200 for ok and degraded, 503 for critical and starting."""
        self.assertEqual(
            [
                http_status(s)
                for s in ("ok", "degraded", "critical", "starting")
            ],
            [200, 200, 503, 503],
        )

    def test_report_shape(self) -> None:
        """The body names status, bus, checked_at and every check."""
        r = checks.evaluate_value(value(minimum=10), NOW, Fetched({"fuel": 3}))
        code, body = health_report([r], "FW-0042", NOW + 1)
        self.assertEqual(code, 200)
        self.assertEqual(
            body,
            {
                "status": "degraded",
                "bus": "FW-0042",
                "checked_at": "2026-11-18T11:06:41Z",
                "checks": [
                    {
                        "name": "fuel",
                        "kind": "value",
                        "level": "warning",
                        "status": "warning",
                        "observed": 3,
                        "limit": {"min": 10},
                        "reason": "fuel = 3 is below min 10",
                        "evaluated_at": "2026-11-18T11:06:40Z",
                    }
                ],
            },
        )

    def test_report_starting(self) -> None:
        """Before the first run the report is 503 starting."""
        self.assertEqual(
            health_report([], "b", None),
            (
                503,
                {
                    "status": "starting",
                    "bus": "b",
                    "checked_at": None,
                    "checks": [],
                },
            ),
        )


class DataTests(SynchronousTestCase):
    """Dot paths and timestamps."""

    def test_extract(self) -> None:
        """Keys, indexes and * over arrays and objects; misses yield nothing."""
        data = {"a": {"b": [1, {"c": 2}]}, "m": {"x": 1, "y": 2}}
        self.assertEqual(extract(data, "a.b.0"), [("a.b.0", 1)])
        self.assertEqual(extract(data, "a.b.1.c"), [("a.b.1.c", 2)])
        self.assertEqual(extract(data, "m.*"), [("m.x", 1), ("m.y", 2)])
        self.assertEqual(extract(data, "a.b.*.c"), [("a.b.1.c", 2)])
        self.assertEqual(extract(data, "a.b.5"), [])
        self.assertEqual(extract(data, "a.z"), [])
        self.assertEqual(extract([{"p": 1}], "*.p"), [("0.p", 1)])

    def test_timestamps(self) -> None:
        """RFC 3339 (Z, offsets, no offset = UTC) and epoch seconds."""
        self.assertEqual(parse_timestamp("1970-01-01T00:01:00Z"), 60.0)
        self.assertEqual(parse_timestamp("1970-01-01T01:01:00+01:00"), 60.0)
        self.assertEqual(parse_timestamp("1970-01-01T00:01:00"), 60.0)
        self.assertEqual(parse_timestamp(60), 60.0)
        self.assertIsNone(parse_timestamp(True))
        self.assertIsNone(parse_timestamp("soon"))
        self.assertIsNone(parse_timestamp(None))
