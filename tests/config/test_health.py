"""extra_config."busgw/health": defaults, every check kind, and each
problem reported at its JSON path."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from busd.config._health import BUILD_YEAR, CheckConfig, SourceConfig
from tests.config._support import (
    endpoint as ep,
    load,
    problems,
    service as svc,
    table_tests,
)

E, W = "error", "warning"
H = "extra_config.busgw/health"
C0 = H + ".checks[0]"


def health(*checks: Any, **options: Any) -> dict:
    """A config with endpoints /status and /v/{id} and busgw/health."""
    return svc(
        ep("/status"),
        ep("/v/{id}"),
        extra_config={"busgw/health": {"checks": list(checks), **options}},
    )


def check(kind: str, **keys: Any) -> dict:
    return {"name": "c", "kind": kind, **keys}


URL = "http://127.0.0.1:9101/vehicle"
VALUE = check("value", source={"url": URL}, path="fuel", min=1)

# fmt: off
HEALTH_PROBLEMS = [
    ("path_collides", "path may not be an endpoint's path.",
     health(path="/status"), E, H + ".path", "collides with endpoints[0]"),
    ("path_reserved", "path may not go under a built-in path.",
     health(path="/__health/bus"), E, H + ".path", "reserved"),
    ("path_relative", "path must start with /.",
     health(path="health"), E, H + ".path", 'must start with "/"'),
    ("interval_bad", "interval is a duration.",
     health(interval=5), E, H + ".interval", "expected a duration"),
    ("unknown_key", "An unknown key is a warning.",
     health(intervall="5s"), W, H + ".intervall", 'did you mean "interval"'),
    ("no_name", "Every check needs a name.",
     health({"kind": "clock"}), E, C0 + ".name", "missing required key"),
    ("bad_name", "A name becomes part of an event kind.",
     health(check("clock", name="a b")), E, C0 + ".name", "invalid name"),
    ("builtin_name", "outbox is the built-in check's name.",
     health(check("clock", name="outbox")), E, C0 + ".name", "built-in"),
    ("duplicate", "Names are unique.",
     health(check("clock"), check("clock")), E, H + ".checks[1].name",
     'duplicate check name "c" (first in checks[0])'),
    ("bad_kind", "The kind is one of five.",
     health(check("sensor")), E, C0 + ".kind", 'unknown kind "sensor"'),
    ("bad_level", "The level is warning or critical.",
     health(check("clock", level="fatal")), E, C0 + ".level",
     'want "warning" or "critical"'),
    ("backend_url", "A backend check needs an http(s) URL.",
     health(check("backend", url="ftp://x/y")), E, C0 + ".url",
     "expected an http(s) URL"),
    ("backend_no_url", "A backend check needs a URL at all.",
     health(check("backend")), E, C0 + ".url", "missing required key"),
    ("backend_status", "expect_status is an HTTP status.",
     health(check("backend", url=URL, expect_status=42)), E,
     C0 + ".expect_status", "between 100 and 599"),
    ("value_no_bounds", "A value check needs min, max or allowed.",
     health(check("value", source={"url": URL}, path="x")), E, C0,
     '"min", "max" or "allowed"'),
    ("value_min_type", "min is a number.",
     health(check("value", source={"url": URL}, path="x", min="1")), E,
     C0 + ".min", "expected a number"),
    ("value_min_above_max", "min above max is a contradiction.",
     health(check("value", source={"url": URL}, path="x", min=5, max=1)), E,
     C0 + ".min", "min 5 is above max 1"),
    ("value_allowed_empty", "allowed is a non-empty list.",
     health(check("value", source={"url": URL}, path="x", allowed=[])), E,
     C0 + ".allowed", "non-empty list"),
    ("value_allowed_object", "allowed holds plain values.",
     health(check("value", source={"url": URL}, path="x", allowed=[{}])), E,
     C0 + ".allowed[0]", "expected a string, number or boolean"),
    ("value_no_source", "A value check needs a source.",
     health(check("value", path="x", min=1)), E, C0 + ".source",
     "missing required key"),
    ("source_both", "A source is a url or an endpoint, not both.",
     health(check("value", source={"url": URL, "endpoint": "/status"},
                  path="x", min=1)), E, C0 + ".source",
     'either "url" or "endpoint"'),
    ("source_unknown_endpoint", "A source endpoint must be a GET endpoint.",
     health(check("value", source={"endpoint": "/nope"}, path="x", min=1)),
     E, C0 + ".source.endpoint", "no GET endpoint \"/nope\""),
    ("source_param_endpoint", "A source endpoint cannot have parameters.",
     health(check("value", source={"endpoint": "/v/{id}"}, path="x",
                  min=1)), E, C0 + ".source.endpoint", "path parameters"),
    ("bad_path", "path is a dot path.",
     health(check("value", source={"url": URL}, path="a..b", min=1)), E,
     C0 + ".path", "empty segment"),
    ("fresh_no_age", "A freshness check needs max_age.",
     health(check("freshness", source={"url": URL}, path="t")), E,
     C0 + ".max_age", "missing required key"),
    ("fresh_zero_age", "max_age must be above zero.",
     health(check("freshness", source={"url": URL}, path="t",
                  max_age="0s")), E, C0 + ".max_age", "above zero"),
    ("event_no_kind", "An event check names its event kind.",
     health(check("event")), E, C0 + ".event_kind", "missing required key"),
    ("clock_year", "min_year is a plausible year.",
     health(check("clock", min_year=1900)), E, C0 + ".min_year",
     "between 1970 and 9999"),
    ("other_kind_key", "A key of another kind is a precise warning.",
     health(check("clock", max_age="5s")), W, C0 + ".max_age",
     "used by freshness checks, not by clock checks"),
    ("check_unknown_key", "An unknown check key is a warning.",
     health(check("clock", colour="red")), W, C0 + ".colour",
     "unknown key"),
]
# fmt: on


class HealthConfigTests(SynchronousTestCase):
    """busgw/health as the loader reads it."""

    locals().update(table_tests(HEALTH_PROBLEMS))

    def test_absent(self) -> None:
        """Without the namespace there is no health config."""
        self.assertIsNone(load(self, svc(ep("/status"))).config.health)

    def test_defaults(self) -> None:
        """path /health, interval 5s, protected, no checks."""
        health_config = load(self, health()).config.health
        assert health_config is not None
        self.assertEqual(
            (
                health_config.path,
                health_config.interval,
                health_config.public,
                health_config.checks,
            ),
            ("/health", 5.0, False, ()),
        )

    def test_every_kind(self) -> None:
        """Each kind reads its own keys, with their defaults."""
        raw = health(
            check("backend", name="b", url=URL, timeout="1s", level="critical"),
            check(
                "value",
                name="v",
                source={"endpoint": "/status"},
                path="tyres.*.bar",
                min=7.5,
                max=9,
                allowed=[1, "x"],
            ),
            check(
                "freshness",
                name="f",
                source={"url": URL},
                path="updated_at",
                max_age="30s",
            ),
            check("event", name="e", event_kind="crash"),
            check("clock", name="k", max_drift="1m"),
            check("clock", name="k2"),
            path="/bus/health",
            interval="10s",
            public=True,
        )
        config = load(self, raw).config.health
        assert config is not None
        self.assertEqual(
            (config.path, config.interval, config.public),
            ("/bus/health", 10.0, True),
        )
        self.assertEqual(
            list(config.checks),
            [
                CheckConfig(
                    name="b",
                    kind="backend",
                    level="critical",
                    url=URL,
                    timeout=1.0,
                ),
                CheckConfig(
                    name="v",
                    kind="value",
                    source=SourceConfig(endpoint="/status"),
                    path="tyres.*.bar",
                    minimum=7.5,
                    maximum=9,
                    allowed=(1, "x"),
                ),
                CheckConfig(
                    name="f",
                    kind="freshness",
                    source=SourceConfig(url=URL),
                    path="updated_at",
                    max_age=30.0,
                ),
                CheckConfig(name="e", kind="event", event_kind="crash"),
                CheckConfig(name="k", kind="clock", max_drift=60.0),
                CheckConfig(name="k2", kind="clock", min_year=BUILD_YEAR),
            ],
        )

    def test_strict(self) -> None:
        """With --strict an unknown key fails the load."""
        found = problems(health(VALUE, colour="red"), strict=True)
        self.assertEqual(found, [(E, H + ".colour", "unknown key (ignored)")])
