"""The fleet routes through a GatewayApp and StubTreq: shapes, filters,
404s, headers and the default validator."""

from __future__ import annotations

import json
from typing import Any, Tuple

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from busd.app import GatewayApp
from busd.auth.config import ValidatorConfig
from busd.central.fleet import Answer, FleetState
from busd.central.routes import make_part
from busd.config.model import GatewayConfig
from busd.testing import JSONBackend
from tests.central._pollfakes import (
    HEALTH_OK,
    NOW,
    STATUS,
    FakeRole,
    fleet_config,
)


class _Fleet(SynchronousTestCase):
    #: The service's default validator (GatewayConfig.default_auth).
    AUTH: Any = None

    def setUp(self) -> None:
        central = fleet_config(
            ["b", "a", "c"],
            labels={
                "a": {"line": "12"},
                "b": {"line": "7"},
                "c": {"line": "12"},
            },
        )
        self.role = FakeRole(central)
        self.clock = self.role.clock
        self.role.state = FleetState(central, self.clock)
        app = GatewayApp(
            GatewayConfig(central=central, default_auth=self.AUTH),
            StubTreq(JSONBackend({})),
            self.clock,
        )
        make_part(self.role).install(app)
        self.stub = StubTreq(app.resource())
        for bus_id in "ab":
            self.role.state.record(
                bus_id, NOW, NOW, Answer(status=200, data=HEALTH_OK),
                {"status": Answer(status=200, data=STATUS)},
            )  # fmt: skip
        self.clock.advance(20.0)
        self.role.state.record(
            "a", NOW + 20, NOW + 20, Answer(error="refused"), {}
        )

    def get(self, path: str, **kw: Any) -> Tuple[int, Any, Any]:
        d = self.stub.get("http://central" + path, **kw)
        self.stub.flush()
        response = self.successResultOf(d)
        body = self.successResultOf(response.content())
        return response.code, json.loads(body), response


class RouteTests(_Fleet):
    def test_fleet_health_cache(self) -> None:
        """/fleet/health is re-encoded at once when a bus's state or level
        changes, else at most once a second (values and ages lag)."""
        _, first, _ = self.get("/fleet/health")
        self.role.state.record(
            "b", NOW + 20, NOW + 20, Answer(status=200, data=HEALTH_OK),
            {"status": Answer(status=200, data=dict(STATUS, extra=1))},
        )  # fmt: skip: b is online again: a state change
        _, second, _ = self.get("/fleet/health")
        self.assertEqual(second["states"]["online"], 1)
        self.clock.advance(0.5)
        self.role.state.record(
            "b", NOW + 20.5, NOW + 20.5, Answer(status=200, data=HEALTH_OK),
            {"status": Answer(status=200, data=STATUS)},
        )  # fmt: skip: same state and level: the cached body is served
        _, third, _ = self.get("/fleet/health")
        self.assertEqual(third, second)
        self.clock.advance(0.5)
        _, fourth, _ = self.get("/fleet/health")
        self.assertNotEqual(fourth["checked_at"], second["checked_at"])
        self.assertEqual(first["states"]["online"], 0)

    def test_fleet_health(self) -> None:
        """/fleet/health answers the state's body with no-store and a Content-Length."""
        code, body, response = self.get("/fleet/health")
        self.assertEqual(code, 200)
        self.assertEqual(
            body["states"],
            {"online": 0, "stale": 2, "offline": 0, "unknown": 1},
        )
        self.assertEqual([s["id"] for s in body["summaries"]], ["a", "b", "c"])
        self.assertEqual(
            response.headers.getRawHeaders(b"Cache-Control"), [b"no-store"]
        )
        # Content-Length became the response's length (no chunked framing).
        self.assertEqual(
            response.length, len(json.dumps(body, separators=(",", ":")))
        )

    def test_buses_filters(self) -> None:
        """/fleet/buses filters by state (comma list) and by label; a bad state is a 400."""
        code, body, _ = self.get("/fleet/buses")
        self.assertEqual((code, body["count"]), (200, 3))
        self.assertEqual(body["buses"][0]["labels"], {"line": "12"})
        _, body, _ = self.get("/fleet/buses?state=stale")
        self.assertEqual([s["id"] for s in body["buses"]], ["a", "b"])
        _, body, _ = self.get("/fleet/buses?state=unknown,stale&line=12")
        self.assertEqual([s["id"] for s in body["buses"]], ["a", "c"])
        _, body, _ = self.get("/fleet/buses?line=7&line=12&state=unknown")
        self.assertEqual([s["id"] for s in body["buses"]], ["c"])
        code, body, _ = self.get("/fleet/buses?state=sleepy")
        self.assertEqual((code, body["error"]), (400, "no such state: sleepy"))

    def test_bus(self) -> None:
        """/fleet/buses/{id} answers the detail; an unknown id is a JSON 404."""
        code, body, _ = self.get("/fleet/buses/a")
        self.assertEqual((code, body["id"], body["state"]), (200, "a", "stale"))
        self.assertEqual(body["last_error"], "health: refused")
        self.assertEqual(body["endpoints"]["status"]["age_s"], 20.0)
        self.assertEqual(body["health"], HEALTH_OK)
        code, body, _ = self.get("/fleet/buses/nope")
        self.assertEqual((code, body["status"]), (404, 404))
        self.assertIn("nope", body["error"])

    def test_endpoint(self) -> None:
        """/fleet/status lists each bus's data and age; an unpolled name is a 404."""
        code, body, _ = self.get("/fleet/status")
        self.assertEqual(code, 200)
        self.assertEqual(set(body["buses"]), {"a", "b"})
        self.assertEqual(body["buses"]["b"], {
            "data": STATUS, "fetched_at": "2026-11-18T11:06:40.000Z",
            "age_s": 20.0, "state": "stale"})  # fmt: skip
        self.assertEqual(body["missing"], ["c"])
        self.assertEqual(self.get("/fleet/location")[0], 404)


class GuardedRouteTests(_Fleet):
    AUTH = ValidatorConfig(
        alg="RS256", jwk_url="https://keys.invalid/jwks.json"
    )

    def test_guarded(self) -> None:
        """With a service default validator every fleet route wants a token (401 without)."""
        for path in (
            "/fleet/health",
            "/fleet/buses",
            "/fleet/buses/a",
            "/fleet/status",
        ):
            self.assertEqual(self.get(path)[0], 401, path)
