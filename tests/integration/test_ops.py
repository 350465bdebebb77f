"""Operating a gateway over loopback: metrics, request ids, access logs and
config reloads (SIGHUP and the admin call) under load."""

import json
import os
import random
import signal

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.logger import globalLogPublisher
from twisted.internet.testing import EventLoggingObserver
from twisted.trial.unittest import TestCase

from busd.config.load import load_config
from busd.gateway import ConfigSource
from busd.service import build_service
from busd.testing import JSONBackend
from tests.integration._util import LOOPBACK, TrackingSite, client, serve


def _samples(text, name):
    """{labels-tuple: value} of every sample called ``name``."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


class OpsTests(TestCase):
    @inlineCallbacks
    def start(self, endpoints_for, admin=True):
        """Serve a config file whose endpoints call one loopback backend;
        ``endpoints_for(backend_url)`` gives the endpoint list."""
        self.backend = JSONBackend({"/v": (200, {"fuel": 70}), "/w": (200, {"w": 1})})
        self.backend_url, _ = yield serve(self, self.backend)
        self.endpoints_for = endpoints_for
        self.path = os.path.abspath(self.mktemp())
        self.write(endpoints_for(self.backend_url), admin=admin)
        source = ConfigSource(self.path)
        svc = build_service(
            source.load(),
            reactor,
            listen=[LOOPBACK],
            rng=random.Random(0),
            site_class=TrackingSite,
            source=source,
        )
        svc.startService()
        self.svc = svc
        http = svc.getServiceNamed("http")
        port = yield http.whenListening()
        self.addCleanup(http.factory.close_all)
        self.addCleanup(svc.stopService)
        self.gw = f"http://127.0.0.1:{port.getHost().port}"
        if admin:
            aport = yield svc.getServiceNamed("admin").whenListening()
            self.admin = f"http://127.0.0.1:{aport.getHost().port}"
        self.http = client(self)

    def write(self, endpoints, admin=True, broken=False):
        raw = {"version": 3, "endpoints": endpoints}
        if admin:
            raw["extra_config"] = {
                "busgw/telemetry": {"admin": {"listen": LOOPBACK}}
            }
        with open(self.path, "w") as f:
            if broken:
                f.write('{"version": 3, "endpoints": [{"endpoint": "nope"}]}')
            else:
                json.dump(raw, f)

    @inlineCallbacks
    def fetch(self, url, method="GET", **kw):
        resp = yield self.http.request(method, url, **kw)
        body = yield resp.content()
        return resp, body

    @staticmethod
    def one(path, url_pattern="/v"):
        return lambda b: [
            {"endpoint": path, "backend": [{"host": [b], "url_pattern": url_pattern}]}
        ]

    @inlineCallbacks
    def test_metrics_move_with_traffic(self):
        """The admin listener serves valid Prometheus text whose counters
        and histograms move with traffic, with process RSS and fds."""
        yield self.start(self.one("/v"))
        for _ in range(3):
            yield self.fetch(self.gw + "/v")
        yield self.fetch(self.gw + "/nope")
        resp, body = yield self.fetch(self.admin + "/metrics")
        self.assertEqual(resp.code, 200)
        text = body.decode()
        requests = _samples(text, "busgw_requests_total")
        key = (("endpoint", "GET /v"), ("method", "GET"), ("status", "200"))
        self.assertEqual(requests[key], 3)
        self.assertEqual(
            requests[(("endpoint", "(unmatched)"), ("method", "GET"), ("status", "404"))], 1
        )
        count = _samples(text, "busgw_backend_duration_seconds_count")
        self.assertEqual(count[(("backend", "0 /v"), ("endpoint", "GET /v"))], 3)
        self.assertGreater(_samples(text, "process_resident_memory_bytes")[()], 0)
        self.assertGreater(_samples(text, "process_open_fds")[()], 0)

    @inlineCallbacks
    def test_request_id_forwarded_and_echoed(self):
        """A caller's X-Request-Id reaches the backend and comes back; without
        one a fresh id is made, forwarded and echoed."""
        yield self.start(self.one("/v"), admin=False)
        resp, _ = yield self.fetch(self.gw + "/v", headers={"X-Request-Id": "central-42"})
        self.assertEqual(resp.headers.getRawHeaders("X-Request-Id"), ["central-42"])
        self.assertEqual(self.backend.requests[-1][2]["x-request-id"], ["central-42"])
        resp, _ = yield self.fetch(self.gw + "/v", headers={"X-Request-Id": "bad id\x01"})
        (rid,) = resp.headers.getRawHeaders("X-Request-Id")
        self.assertRegex(rid, "^[0-9a-f]{16}$")
        self.assertEqual(self.backend.requests[-1][2]["x-request-id"], [rid])

    @inlineCallbacks
    def test_access_log_event(self):
        """Each request gives one structured access event; /__health is skipped."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        yield self.start(self.one("/v"), admin=False)
        yield self.fetch(self.gw + "/v?x=1", headers={"X-Request-Id": "r1"})
        yield self.fetch(self.gw + "/__health")
        access = [e for e in events if e.get("log_namespace") == "busgw.access"]
        self.assertEqual(len(access), 1)
        (event,) = access
        self.assertEqual(
            (event["method"], event["path"], event["status"], event["request_id"]),
            ("GET", "/v?x=1", 200, "r1"),
        )
        self.assertEqual(event["endpoint"], "GET /v")
        self.assertEqual(event["completed"], "true")
        self.assertEqual(event["client"], "127.0.0.1")
        self.assertGreater(event["bytes"], 0)

    @inlineCallbacks
    def test_reload_under_load(self):
        """A reload through the admin call adds a route while requests keep
        flowing; none of them fails."""
        yield self.start(self.one("/v"))
        results = []
        halfway = Deferred()

        @inlineCallbacks
        def worker(n):
            for _ in range(n):
                resp, _ = yield self.fetch(self.gw + "/v")
                results.append(resp.code)
                if len(results) == 80:
                    halfway.callback(None)

        load = DeferredList([worker(25) for _ in range(8)], fireOnOneErrback=True)
        yield halfway  # reload in the middle of the load
        self.write(
            self.one("/v")(self.backend_url) + self.one("/w", "/w")(self.backend_url)
        )
        resp, body = yield self.fetch(self.admin + "/reload", method="POST")
        self.assertEqual((resp.code, json.loads(body)["reloaded"]), (200, True))
        yield load
        self.assertEqual(len(results), 200)
        self.assertEqual(set(results), {200})
        resp, body = yield self.fetch(self.gw + "/w")
        self.assertEqual((resp.code, json.loads(body)), (200, {"w": 1}))

    @inlineCallbacks
    def test_broken_reload_keeps_old_config(self):
        """A broken config is refused with its paths; the old one serves on."""
        yield self.start(self.one("/v"))
        self.write(None, broken=True)
        resp, body = yield self.fetch(self.admin + "/reload", method="POST")
        self.assertEqual(resp.code, 422)
        self.assertTrue(any("endpoints[0].endpoint" in p for p in json.loads(body)["problems"]))
        resp, _ = yield self.fetch(self.gw + "/v")
        self.assertEqual(resp.code, 200)
        self.flushLoggedErrors()
        resp, body = yield self.fetch(self.admin + "/metrics")
        failed = _samples(body.decode(), "busgw_config_reloads_total")
        self.assertEqual(failed[(("result", "failed"),)], 1)

    @inlineCallbacks
    def test_sighup_reloads(self):
        """SIGHUP re-reads the config file and swaps the routes."""
        yield self.start(self.one("/v"), admin=False)
        self.write(self.one("/w", "/w")(self.backend_url), admin=False)
        reloaded = Deferred()
        original = self.svc.reload

        def reload(config):
            original(config)
            reloaded.callback(None)

        self.svc.reload = reload
        os.kill(os.getpid(), signal.SIGHUP)
        yield reloaded
        resp, _ = yield self.fetch(self.gw + "/w")
        self.assertEqual(resp.code, 200)
        resp, _ = yield self.fetch(self.gw + "/v")
        self.assertEqual(resp.code, 404)


class ConfigSourceTests(TestCase):
    def test_load(self):
        """ConfigSource reads the file it was given, like load_config."""
        path = self.mktemp()
        with open(path, "w") as f:
            json.dump({"version": 3, "name": "x"}, f)
        self.assertEqual(ConfigSource(path).load(), load_config(path).config)


class TwoBusesTests(TestCase):
    @inlineCallbacks
    def test_one_file_two_environments(self):
        """One config file and two environment files start two buses that
        report different ids in /health."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            json.dump(
                {
                    "version": 3,
                    "name": "${BUSGW_TEST_BUS_NAME}",
                    "extra_config": {
                        "busgw/health": {
                            "interval": "1h",
                            "checks": [{"name": "rtc", "kind": "clock", "min_year": 2000}],
                        }
                    },
                },
                f,
            )
        ids = []
        for bus in ("FW-0001", "FW-0002"):
            env = os.path.abspath(self.mktemp())
            with open(env, "w") as f:
                f.write(f"BUSGW_TEST_BUS_NAME={bus}\n")
            source = ConfigSource(path, env_file=env)
            svc = build_service(
                source.load(), reactor, listen=[LOOPBACK], site_class=TrackingSite, source=source
            )
            svc.startService()
            http = svc.getServiceNamed("http")
            port = yield http.whenListening()
            self.addCleanup(http.factory.close_all)
            self.addCleanup(svc.stopService)
            resp = yield client(self).get(f"http://127.0.0.1:{port.getHost().port}/health")
            body = json.loads((yield resp.content()))
            ids.append(body["bus"])
        self.assertEqual(ids, ["FW-0001", "FW-0002"])
