"""The gateway answers as KrakenD does: status, body, X-Krakend-Completed,
Cache-Control, for each supported feature (in memory, deterministic)."""

from twisted.internet.defer import CancelledError
from twisted.trial.unittest import SynchronousTestCase

from busd.testing import JSONBackend
from tests.helpers import B1, B2, B3, Gateway, body_json, config, get, header


def ep(path, *backends, **kw):
    return {"endpoint": path, "backend": list(backends), **kw}


def be(host, url, **kw):
    return {"host": [host], "url_pattern": url, **kw}


VEHICLE = {"fuel": 71, "speed": 40, "engine": {"temp": 90, "rpm": 1500}}
SERVICE = {"line": "FW-12", "speed": 99, "driver": {"name": "Ada", "id": 7}}


class MergeTests(SynchronousTestCase):
    def setUp(self):
        self.b1 = JSONBackend({"/v": (200, VEHICLE), "/bad": (500, {"e": 1})})
        self.b2 = JSONBackend({"/s": (200, SERVICE)})

    def gw(self, *endpoints, **service):
        return Gateway(config(list(endpoints), **service), {B1: self.b1, B2: self.b2})

    def test_merge_in_config_order(self):
        """Two backends merge shallowly; the later one in config order wins a key."""
        gw = self.gw(ep("/m", be(B1, "/v"), be(B2, "/s")))
        resp, body = get(self, gw, "/m")
        self.assertEqual(resp.code, 200)
        self.assertEqual(header(resp, "X-Krakend-Completed"), "true")
        self.assertEqual(body_json(body), {**VEHICLE, **SERVICE})
        self.assertEqual(header(resp, "Content-Type"), "application/json; charset=utf-8")

    def test_group_allow_deny_mapping_target(self):
        """Each backend is shaped: target, allow/deny, mapping, group."""
        gw = self.gw(
            ep(
                "/m",
                be(B1, "/v", group="vehicle", allow=["fuel", "engine.temp"]),
                be(B2, "/s", target="driver", deny=["id"], mapping={"name": "driver"}),
            )
        )
        _, body = get(self, gw, "/m")
        self.assertEqual(
            body_json(body),
            {"vehicle": {"fuel": 71, "engine": {"temp": 90}}, "driver": "Ada"},
        )

    def test_partial_response(self):
        """A failing backend among two yields a partial 200, completed false."""
        gw = self.gw(ep("/m", be(B1, "/bad"), be(B2, "/s")), cache_ttl="60s")
        resp, body = get(self, gw, "/m")
        self.assertEqual(resp.code, 200)
        self.assertEqual(header(resp, "X-Krakend-Completed"), "false")
        self.assertIsNone(header(resp, "Cache-Control"))
        self.assertEqual(body_json(body), SERVICE)
        self.flushLoggedErrors()

    def test_cache_control_only_when_complete(self):
        """cache_ttl adds Cache-Control to complete answers."""
        gw = self.gw(ep("/m", be(B2, "/s"), cache_ttl="1m"))
        resp, _ = get(self, gw, "/m")
        self.assertEqual(header(resp, "Cache-Control"), "public, max-age=60")

    def test_all_fail_is_500_json(self):
        """When no backend answers the endpoint is a 500 with a JSON body."""
        gw = self.gw(ep("/m", be(B1, "/bad"), be(B1, "/bad")))
        resp, body = get(self, gw, "/m")
        self.assertEqual(resp.code, 500)
        self.assertEqual(header(resp, "X-Krakend-Completed"), "false")
        self.assertEqual(body_json(body)["status"], 500)
        self.assertNotIn("invalid status", body_json(body)["error"])

    def test_return_error_msg(self):
        """router.return_error_msg puts the backend error text in the body."""
        gw = self.gw(
            ep("/m", be(B1, "/bad")), extra_config={"router": {"return_error_msg": True}}
        )
        resp, body = get(self, gw, "/m")
        self.assertEqual(resp.code, 500)
        self.assertIn("invalid status code 500", body_json(body)["error"])

    def test_empty_object_is_incomplete(self):
        """A backend answering {} gives 200 {} with completed false."""
        self.b1.routes["/empty"] = (200, {})
        resp, body = get(self, self.gw(ep("/m", be(B1, "/empty"))), "/m")
        self.assertEqual((resp.code, body), (200, b"{}"))
        self.assertEqual(header(resp, "X-Krakend-Completed"), "false")


class StatusPolicyTests(SynchronousTestCase):
    def _one(self, status, body=None, **backend):
        b = JSONBackend({"/x": (status, body if body is not None else {"a": 1})})
        gw = Gateway(config([ep("/e", be(B1, "/x", **backend))]), {B1: b})
        return get(self, gw, "/e")

    def test_only_200_and_201_succeed(self):
        """201 is served as 200; 204, 404 and 500 are backend errors (500)."""
        self.assertEqual(self._one(201)[0].code, 200)
        for status in (204, 404, 500):
            self.assertEqual(self._one(status)[0].code, 500, status)

    def test_return_error_code(self):
        """backend/http return_error_code answers with the backend's status."""
        resp, body = self._one(
            404, extra_config={"backend/http": {"return_error_code": True}}
        )
        self.assertEqual(resp.code, 404)
        self.assertEqual(body_json(body)["status"], 404)

    def test_return_error_details(self):
        """return_error_details turns the failure into data and a 200."""
        resp, body = self._one(
            404,
            {"why": "gone"},
            extra_config={"backend/http": {"return_error_details": "ecu"}},
        )
        self.assertEqual(resp.code, 200)
        self.assertEqual(header(resp, "X-Krakend-Completed"), "false")
        details = body_json(body)["error_ecu"]
        self.assertEqual(details["http_status_code"], 404)
        self.assertEqual(body_json(details["http_body"]), {"why": "gone"})

    def test_invalid_json_and_array(self):
        """Invalid JSON, or an array without is_collection, is a backend error."""
        self.assertEqual(self._one(200, b"{not json")[0].code, 500)
        self.assertEqual(self._one(200, [1, 2])[0].code, 500)

    def test_collection(self):
        """is_collection wraps an array; json-collection renders it bare."""
        b = JSONBackend({"/x": (200, [{"p": 1}, {"p": 2}])})
        raw = config(
            [
                ep("/c", be(B1, "/x", is_collection=True)),
                ep("/j", be(B1, "/x", is_collection=True), output_encoding="json-collection"),
            ]
        )
        gw = Gateway(raw, {B1: b})
        self.assertEqual(body_json(get(self, gw, "/c")[1]), {"collection": [{"p": 1}, {"p": 2}]})
        self.assertEqual(body_json(get(self, gw, "/j")[1]), [{"p": 1}, {"p": 2}])

    def test_oversized_body(self):
        """A body over the configured cap is a backend error, not memory growth."""
        b = JSONBackend({"/x": (200, {"blob": "x" * 5000})})
        raw = config(
            [ep("/e", be(B1, "/x", extra_config={"busgw/backend": {"max_body_bytes": 1000}}))]
        )
        resp, _ = get(self, Gateway(raw, {B1: b}), "/e")
        self.assertEqual(resp.code, 500)


class TimeoutTests(SynchronousTestCase):
    def test_slow_backend_gives_partial(self):
        """A backend slower than 85% of the timeout is dropped: partial 200."""
        gw = None
        slow = JSONBackend({"/s": (200, SERVICE)}, delay=5.0)
        fast = JSONBackend({"/v": (200, VEHICLE)})
        gw = Gateway(
            config([ep("/m", be(B1, "/v"), be(B2, "/s"), timeout="2s")]),
            {B1: fast, B2: slow},
        )
        slow.clock = gw.clock
        d = gw.stub.get("http://gw/m")
        gw.flush()
        self.assertNoResult(d)
        gw.clock.advance(1.69)
        gw.flush()
        self.assertNoResult(d)
        gw.clock.advance(0.02)
        gw.flush()
        resp = self.successResultOf(d)
        self.assertEqual(resp.code, 200)
        self.assertEqual(header(resp, "X-Krakend-Completed"), "false")
        self.assertEqual(body_json(self.successResultOf(resp.content())), VEHICLE)
        gw.clock.advance(10)  # the slow answer arrives on a closed request
        self.assertEqual(gw.clock.getDelayedCalls(), [])

    def test_single_slow_backend_is_500(self):
        """A single backend that never answers in time gives a 500, not a hang."""
        slow = JSONBackend({"/s": (200, SERVICE)}, delay=5.0)
        gw = Gateway(config([ep("/m", be(B2, "/s"), timeout="1s")]), {B2: slow})
        slow.clock = gw.clock
        d = gw.stub.get("http://gw/m")
        gw.flush()
        gw.clock.advance(1.0)
        gw.flush()
        resp = self.successResultOf(d)
        self.assertEqual(resp.code, 500)
        self.assertEqual(body_json(self.successResultOf(resp.content()))["error"], "backend_timeout")
        gw.clock.advance(10)


class SequentialStaticTests(SynchronousTestCase):
    def test_sequential_resp_params(self):
        """{resp0_field} in a later url_pattern comes from backend 0's data."""
        b1 = JSONBackend({"/bus": (200, {"driver": {"id": 7}, "line": "FW"})})
        b2 = JSONBackend({"/drivers/7": (200, {"name": "Ada"})})
        raw = config(
            [
                ep(
                    "/d",
                    be(B1, "/bus"),
                    be(B2, "/drivers/{resp0_driver.id}", group="driver"),
                    extra_config={"proxy": {"sequential": True}},
                )
            ]
        )
        resp, body = get(self, Gateway(raw, {B1: b1, B2: b2}), "/d")
        self.assertEqual(
            body_json(body),
            {"driver": {"name": "Ada"}, "line": "FW"},
        )
        self.assertEqual(header(resp, "X-Krakend-Completed"), "true")

    def test_static_strategies(self):
        """Static data is added according to its strategy."""
        ok = JSONBackend({"/ok": (200, {"a": 1}), "/bad": (500, {})})
        cases = [
            ("always", "/ok", 200, {"a": 1, "s": True}),
            ("success", "/ok", 200, {"a": 1, "s": True}),
            ("errored", "/ok", 200, {"a": 1}),
            ("errored", "/bad", 200, {"s": True}),
            ("complete", "/ok", 200, {"a": 1, "s": True}),
            ("incomplete", "/bad", 200, {"s": True}),
            ("success", "/bad", 500, None),
        ]
        for strategy, path, status, expected in cases:
            raw = config(
                [
                    ep(
                        "/e",
                        be(B1, path),
                        extra_config={
                            "proxy": {"static": {"data": {"s": True}, "strategy": strategy}}
                        },
                    )
                ]
            )
            resp, body = get(self, Gateway(raw, {B1: ok}), "/e")
            self.assertEqual(resp.code, status, strategy)
            if expected is not None:
                self.assertEqual(body_json(body), expected, strategy)

    def test_concurrent_calls(self):
        """concurrent_calls sends N identical calls and answers once."""
        b = JSONBackend({"/x": (200, {"a": 1})})
        raw = config([ep("/e", be(B1, "/x"), concurrent_calls=3)])
        resp, body = get(self, Gateway(raw, {B1: b}), "/e")
        self.assertEqual(body_json(body), {"a": 1})
        self.assertEqual(len(b.requests), 3)


class RoutingTests(SynchronousTestCase):
    def setUp(self):
        self.b = JSONBackend(
            {"/bus/42": (200, {"id": 42}), "/raw": (418, b"teapot")},
            headers={"Set-Cookie": "s=1", "X-Dev": "yes"},
        )

    def gw(self, *endpoints, **kw):
        return Gateway(config(list(endpoints), **kw), {B1: self.b})

    def test_path_params_and_query(self):
        """Path params feed the url_pattern; allowed query strings pass."""
        gw = self.gw(ep("/b/{id}", be(B1, "/bus/{id}"), input_query_strings=["x"]))
        _, body = get(self, gw, "/b/42?x=1&y=2")
        self.assertEqual(body_json(body), {"id": 42})
        self.assertEqual(self.b.requests[-1][1], "/bus/42?x=1")

    def test_encoded_param_is_400(self):
        """A URL-encoded path param is refused with 400, as KrakenD does."""
        gw = self.gw(ep("/b/{id}", be(B1, "/bus/{id}")))
        for path in ("/b/4%253F", "/b/4%3F2", "/b/4%232"):
            resp, body = get(self, gw, path)
            self.assertEqual(resp.code, 400, path)
            self.assertEqual(
                body_json(body), {"error": "encoded url params", "status": 400}
            )
        self.assertEqual(self.b.requests, [])

    def test_not_found_and_method(self):
        """Unknown paths are 404 and wrong methods 405, with JSON bodies."""
        gw = self.gw(ep("/b/{id}", be(B1, "/bus/{id}")))
        resp, body = get(self, gw, "/nope")
        self.assertEqual((resp.code, body_json(body)["status"]), (404, 404))
        resp, body = get(self, gw, "/b/42", method="POST")
        self.assertEqual((resp.code, body_json(body)["status"]), (405, 405))
        self.assertEqual(header(resp, "Allow").split(", ").count("GET"), 1)

    def test_error_body(self):
        """router.error_body replaces the 404 body."""
        gw = self.gw(
            ep("/b", be(B1, "/bus/42")),
            extra_config={"router": {"error_body": {"404": {"msg": "no bus here"}}}},
        )
        _, body = get(self, gw, "/x")
        self.assertEqual(body_json(body), {"msg": "no bus here"})

    def test_health(self):
        """/__health answers KrakenD's form; health_path moves it."""
        resp, body = get(self, self.gw(), "/__health")
        data = body_json(body)
        self.assertEqual((data["status"], data["agents"]), ("ok", {}))
        self.assertTrue(data["now"].endswith("+0000 UTC"))
        gw = self.gw(extra_config={"router": {"health_path": "/alive"}})
        self.assertEqual(get(self, gw, "/alive")[0].code, 200)
        self.assertEqual(get(self, gw, "/__health")[0].code, 404)
        gw = self.gw(extra_config={"router": {"disable_health": True}})
        self.assertEqual(get(self, gw, "/__health")[0].code, 404)

    def test_debug_endpoint(self):
        """/__debug/ answers pong only when debug is on."""
        self.assertEqual(get(self, self.gw(), "/__debug/x")[0].code, 404)
        gw = Gateway(config([]), {}, debug=True)
        resp, body = get(self, gw, "/__debug/x", method="POST")
        self.assertEqual(body_json(body), {"message": "pong"})

    def test_noop_passthrough(self):
        """no-op passes status, headers and body through untouched."""
        gw = self.gw(ep("/r", be(B1, "/raw"), output_encoding="no-op"))
        resp, body = get(self, gw, "/r")
        self.assertEqual((resp.code, body), (418, b"teapot"))
        self.assertEqual(header(resp, "Set-Cookie"), "s=1")
        self.assertEqual(header(resp, "X-Krakend-Completed"), "false")

    def test_backend_headers_dropped(self):
        """Outside no-op, backend response headers are not returned."""
        resp, _ = get(self, self.gw(ep("/b", be(B1, "/bus/42"))), "/b")
        self.assertIsNone(header(resp, "Set-Cookie"))
        self.assertIsNone(header(resp, "X-Dev"))


class CancelTests(SynchronousTestCase):
    def test_disconnect_cancels_backend_calls(self):
        """Cancelling the pipeline (client gone) cancels every backend call
        and its timeout, leaving only the fake backend's own timer."""
        from busd.pipeline.build import build_endpoint
        from busd.pipeline.types import ProxyRequest

        slow = JSONBackend({"/s": (200, SERVICE)}, delay=5.0)
        gw = Gateway(
            config([ep("/m", be(B2, "/s"), be(B3, "/s"))]), {B2: slow, B3: slow}
        )
        slow.clock = gw.clock
        proxy = build_endpoint(gw.config.endpoints[0], gw.backend_stub, gw.clock)
        d = proxy(ProxyRequest(method="GET"))
        gw.flush()
        self.assertNoResult(d)
        # 2 fakes + 2 timeouts: the endpoint's, and one for both backends.
        self.assertEqual(len(gw.clock.getDelayedCalls()), 4)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(len(gw.clock.getDelayedCalls()), 2)
        gw.clock.advance(10)
        self.assertEqual(gw.clock.getDelayedCalls(), [])


class ReviewFixTests(SynchronousTestCase):
    def setUp(self):
        self.b = JSONBackend({"/users/a/x": (200, {"ok": 1})})

    def test_dot_segment_params_refused(self):
        """"." and ".." as path params (also %2e-encoded) are 400, so a
        url_pattern's leading segments cannot be walked up at the backend."""
        gw = Gateway(config([ep("/my/{x}", be(B1, "/users/a/{x}"))]), {B1: self.b})
        for path in ("/my/..", "/my/%2e%2e", "/my/%2E", "/my/."):
            resp, body = get(self, gw, path)
            self.assertEqual(resp.code, 400, path)
        self.assertEqual(self.b.requests, [])

    def test_double_slash_is_404_not_500(self):
        """A doubled slash is an unknown path (404), never a 500 or a traceback."""
        gw = Gateway(config([ep("/api/status", be(B1, "/users/a/x"))]), {B1: self.b})
        for path in ("/api//status", "/api/status//"):
            resp, body = get(self, gw, path)
            self.assertEqual(resp.code, 404, path)
        self.assertEqual(self.flushLoggedErrors(), [])


class DotSegmentBuildTests(SynchronousTestCase):
    def test_sequential_dot_value_encoded(self):
        """A ".." from backend data placed in a path is sent as %2E%2E."""
        from busd.config.model import BackendConfig, EndpointConfig
        from busd.pipeline.request import make_request_builder
        from busd.pipeline.types import ProxyRequest

        backend = BackendConfig(hosts=("http://b:80",), url_pattern="/d/{resp0_x}", method="GET")
        endpoint = EndpointConfig(endpoint="/e", method="GET", backends=(backend,))
        build = make_request_builder(endpoint, backend)
        url = build(ProxyRequest(method="GET", params={"resp0_x": ".."})).url
        self.assertTrue(url.endswith("/d/%2E%2E"), url)
