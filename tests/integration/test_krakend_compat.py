"""KrakenD CE 2.13 compatibility, end to end over loopback sockets.

One realistic KrakenD v3 config (``krakend_compat.json``, valid for KrakenD
itself) is served by the real gateway in front of real Twisted device
backends; each test requests one endpoint and checks what KrakenD would
answer (``/work/shared/KRAKEND.md`` section 3): status, body, the
``X-Krakend-Completed`` and ``Cache-Control`` headers, and what the backends
received. Only the README's deliberate differences are expected to differ
(config-order merge, JSON bodies for the gateway's own errors).
"""

import json
import os

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.server import NOT_DONE_YET

from busd.config.load import parse_config
from busd.testing import JSONBackend
from tests.integration._util import client, serve, start_gateway

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "krakend_compat.json")

# The config's placeholder hosts, by the device each stands for.
PLACEHOLDERS = {
    "http://vehicle.local:9101": "vehicle",
    "http://location.local:9102": "location",
    "http://operations.local:9103": "operations",
    "http://diagnostics.local:9104": "diagnostics",
    "http://camera.local:9105": "camera",
    "http://wifi.local:9106": "wifi",
}

JSON_UTF8 = "application/json; charset=utf-8"

VEHICLE = {
    "fuel": 70,
    "speed_kmh": 42,
    "engine": {"temp_c": 88, "rpm": 1500, "serial": "ECU-778"},
    "battery_v": 24,
    "vin": "WF0XXXGCDX1234567",
}
LOCATION = {
    "lat": 52.52,
    "lon": 13.405,
    "next_stop": "Harbour & Pier",
    "gps": {"satellites": 9, "hdop": 0.9, "raw_nmea": "$GPGGA,123519,4807.038,N"},
    "receiver_id": "GPS-1",
}
SERVICE = {
    "meta": {"schema": 3},
    "service": {
        "line": "FW",
        "passengers": 31,
        "driver": {"name": "Ada", "badge": "B-17"},
    },
}
TYRES = [
    {"position": "front-left", "pressure_bar": 8.5, "sensor_id": "T-11"},
    {"position": "front-right", "pressure_bar": 8.25, "sensor_id": "T-12"},
]
STOPS = [
    {"stop": "Harbour", "eta": "08:02", "platform_code": "H1"},
    {"stop": "Elm St", "eta": "08:09", "platform_code": "E4"},
]
ALERTS = {
    "alerts": [{"text": "Detour via Pine Rd"}],
    "diversions": [{"text": "Elm St stop closed"}],
    "updated": "07:55",
}
NOTICE = b"Road works on Elm St: expect 5 minutes delay"
FAULT = {"fault": "CAN bus timeout", "ecu": "brake"}

# /buses/FW-0042/vehicle: three groups, the assignment narrowed by allow.
BUS_VEHICLE = {
    "vehicle": {"fuel": 70, "odometer_km": 182345},
    "position": {"lat": 52.52, "lon": 13.405},
    "assignment": {"route": "FW", "run": 12},
}

# /status as KrakenD shapes it: vehicle allow+group, location deny+mapping
# (merged at the top level), service target+deny+mapping+group.
STATUS = {
    "vehicle": {"fuel": 70, "speed_kmh": 42, "engine": {"temp_c": 88}},
    "lat": 52.52,
    "lon": 13.405,
    "next_stop_name": "Harbour & Pier",
    "gps": {"satellites": 9, "hdop": 0.9},
    "service": {
        "line": "FW",
        "passenger_count": 31,
        "driver": {"name": "Ada"},
    },
}


class Hanging(JSONBackend):
    """A backend that never answers; ``gone`` fires when its caller hangs up."""

    def __init__(self):
        super().__init__({})
        self.gone: Deferred[None] = Deferred()

    def render(self, request):
        self.requests.append((request.method.decode(), request.uri.decode(), {}, b""))
        request.notifyFinish().addBoth(self._gone)
        return NOT_DONE_YET

    def _gone(self, _):
        if not self.gone.called:
            self.gone.callback(None)


def go_json(data):
    """``data`` as Go's ``json.Marshal`` (gin ``c.JSON``) writes it: compact,
    keys sorted, ``<``, ``>`` and ``&`` escaped, no trailing newline."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, escaped)
    return text.encode("utf-8")


def raw_header(resp, name):
    """Every value of response header ``name``, as text (``None`` if absent).
    Header names go to Twisted as bytes, as the gateway's own: mixing str and
    bytes names in Twisted's shared name cache raises BytesWarnings."""
    values = resp.headers.getRawHeaders(name.encode("ascii"))
    return None if values is None else [v.decode("latin-1") for v in values]


def rewrite_hosts(raw, urls):
    """Replace every placeholder backend host of the parsed config by the
    loopback URL of the device it names."""
    for endpoint in raw["endpoints"]:
        for backend in endpoint["backend"]:
            backend["host"] = [urls[PLACEHOLDERS[h]] for h in backend["host"]]
    return raw


class KrakenDCompatTests(TestCase):
    @inlineCallbacks
    def setUp(self):
        self.faults_ok = False
        self.vehicle = JSONBackend(
            {
                "/vehicle": (200, VEHICLE),
                "/vehicles/FW-0042": (200, {"fuel": 70, "odometer_km": 182345}),
                "/tyres": (200, TYRES),
                "/dtc": (200, {"dtc": ["P0420"], "mil": True}),
            }
        )
        self.location = JSONBackend(
            {
                "/location": (200, LOCATION),
                "/buses/FW-0042/position": (200, {"lat": 52.52, "lon": 13.405}),
                "/alerts": (200, ALERTS),
                "/position": (200, {"lat": 52.53, "lon": 13.41, "heading": 270}),
            }
        )
        self.operations = JSONBackend(
            {
                "/service": (200, SERVICE),
                "/buses/FW-0042/shift": (
                    200,
                    {"bus": "FW-0042", "shift": {"driver_id": 7, "start": "06:00"}},
                ),
                "/drivers/7": (
                    200,
                    {"name": "Ada Lovelace", "licence": "D", "pin": "0000"},
                ),
                "/assignments": (
                    200,
                    {"route": "FW", "run": 12, "dispatcher": "K. Ito"},
                ),
                "/stops": (200, STOPS),
                "/notice": (200, NOTICE),
            }
        )
        self.diagnostics = JSONBackend(
            {
                "/faults": lambda request: (
                    (200, {"count": 0}) if self.faults_ok else (500, FAULT)
                )
            }
        )
        self.camera = Hanging()
        self.wifi = JSONBackend(
            {"/session": (202, b"session granted")},
            headers={
                "Content-Type": "text/plain; charset=utf-8",
                "Set-Cookie": "wifi_session=abc123; Path=/; HttpOnly",
                "X-Wifi-Quota": "500MB",
            },
        )
        urls = {}
        for name in sorted(set(PLACEHOLDERS.values())):
            urls[name], _ = yield serve(self, getattr(self, name))

        with open(CONFIG, encoding="utf-8") as handle:
            raw = rewrite_hosts(json.load(handle), urls)
        loaded = parse_config(raw, source=CONFIG)
        self.assertEqual(loaded.warnings, ())
        self.gw = yield start_gateway(self, loaded.config)
        self.http = client(self)
        self.gw_host = self.gw[len("http://"):]

    # -- helpers ----------------------------------------------------------

    @inlineCallbacks
    def get(self, path, headers=None):
        if headers is not None:
            headers = {
                k.encode("ascii"): [v.encode("latin-1")] for k, v in headers.items()
            }
        resp = yield self.http.get(self.gw + path, headers=headers)
        body = yield resp.content()
        return resp, body

    def assertKrakend(self, resp, status, completed, cache_control=None):
        """Status, ``X-Krakend-Completed`` and ``Cache-Control`` as KrakenD
        sets them (no ``Cache-Control`` at all when ``None``)."""
        self.assertEqual(resp.code, status)
        self.assertEqual(raw_header(resp, "X-Krakend-Completed"), [completed])
        self.assertEqual(
            raw_header(resp, "Cache-Control"),
            None if cache_control is None else [cache_control],
        )

    def assertJSON(self, resp, body, expected):
        self.assertEqual(raw_header(resp, "Content-Type"), [JSON_UTF8])
        self.assertEqual(json.loads(body), expected)

    def received(self, backend):
        """The requests ``backend`` saw, as ``(method, uri, headers)``."""
        return [(m, uri, headers) for m, uri, headers, _ in backend.requests]

    def uris(self, backend):
        """The request URIs (path and query) ``backend`` saw, in order."""
        return [uri for _, uri, _, _ in backend.requests]

    def assertForwardedBy(self, headers):
        """The gateway's own X-Forwarded-For (client IP) and X-Forwarded-Host
        (incoming Host) headers."""
        self.assertEqual(headers.get("x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(headers.get("x-forwarded-host"), [self.gw_host])

    # -- merge and response manipulation (KRAKEND.md 3.4, 3.5) ------------

    @inlineCallbacks
    def test_merge(self):
        """Three backends are called once each and shallow-merged into one JSON object, written as Go does, marked complete."""
        resp, body = yield self.get("/status")
        self.assertKrakend(resp, 200, "true", "public, max-age=60")
        self.assertJSON(resp, body, STATUS)
        self.assertEqual(body, go_json(STATUS))
        self.assertTrue(raw_header(resp, "X-Krakend")[0].startswith("Version "))
        self.assertEqual(self.uris(self.vehicle), ["/vehicle"])
        self.assertEqual(self.uris(self.location), ["/location"])
        self.assertEqual(self.uris(self.operations), ["/service"])

    @inlineCallbacks
    def test_group(self):
        """`group` wraps a backend's (already filtered) data under its key."""
        resp, body = yield self.get("/status")
        self.assertKrakend(resp, 200, "true", "public, max-age=60")
        data = json.loads(body)
        self.assertEqual(
            data["vehicle"], {"fuel": 70, "speed_kmh": 42, "engine": {"temp_c": 88}}
        )
        self.assertNotIn("fuel", data)

    @inlineCallbacks
    def test_target(self):
        """`target` replaces a backend's data by the object at that key before the other operations."""
        resp, body = yield self.get("/status")
        self.assertKrakend(resp, 200, "true", "public, max-age=60")
        data = json.loads(body)
        self.assertNotIn("meta", data)
        self.assertNotIn("meta", data["service"])
        self.assertEqual(data["service"]["line"], "FW")

    @inlineCallbacks
    def test_allow(self):
        """`allow` keeps only the listed fields, nested ones by dot path."""
        resp, body = yield self.get("/status")
        self.assertKrakend(resp, 200, "true", "public, max-age=60")
        self.assertEqual(
            json.loads(body)["vehicle"],
            {"fuel": 70, "speed_kmh": 42, "engine": {"temp_c": 88}},
        )

    @inlineCallbacks
    def test_deny(self):
        """`deny` drops the listed fields, nested ones by dot path, and keeps the rest."""
        resp, body = yield self.get("/status")
        self.assertKrakend(resp, 200, "true", "public, max-age=60")
        data = json.loads(body)
        self.assertNotIn("receiver_id", data)
        self.assertEqual(data["gps"], {"satellites": 9, "hdop": 0.9})
        self.assertEqual(data["service"]["driver"], {"name": "Ada"})

    @inlineCallbacks
    def test_mapping(self):
        """`mapping` renames top-level keys after filtering (and inside a target)."""
        resp, body = yield self.get("/status")
        self.assertKrakend(resp, 200, "true", "public, max-age=60")
        data = json.loads(body)
        self.assertEqual(data["next_stop_name"], "Harbour & Pier")
        self.assertNotIn("next_stop", data)
        self.assertEqual(data["service"]["passenger_count"], 31)
        self.assertNotIn("passengers", data["service"])

    # -- request side (KRAKEND.md 3.1, 3.2) --------------------------------

    @inlineCallbacks
    def test_default_forwarding(self):
        """Without input_query_strings/input_headers no query and only Content-Type reach the backends, plus X-Forwarded-For/-Host."""
        resp, body = yield self.get(
            "/status?units=metric&debug=1",
            headers={
                "Content-Type": "application/json",
                "X-Fleet-Token": "tok-123",
                "Cookie": "session=s1",
                "Accept-Language": "de-DE",
            },
        )
        self.assertKrakend(resp, 200, "true", "public, max-age=60")
        self.assertJSON(resp, body, STATUS)
        for backend in (self.vehicle, self.location, self.operations):
            [(method, uri, headers)] = self.received(backend)
            self.assertEqual(method, "GET")
            self.assertNotIn("?", uri)
            self.assertEqual(headers.get("content-type"), ["application/json"])
            for name in ("x-fleet-token", "cookie", "accept-language"):
                self.assertNotIn(name, headers)
            self.assertForwardedBy(headers)

    @inlineCallbacks
    def test_path_params(self):
        """`{id}` from the endpoint path is substituted into every backend's url_pattern, its query part included."""
        resp, body = yield self.get("/buses/FW-0042/vehicle")
        self.assertKrakend(resp, 200, "true")
        self.assertJSON(resp, body, BUS_VEHICLE)
        self.assertEqual(
            self.uris(self.vehicle), ["/vehicles/FW-0042?source=ecu"]
        )
        self.assertEqual(
            self.uris(self.location), ["/buses/FW-0042/position"]
        )
        # KrakenD docs, "Mandatory query string parameters": placeholders in
        # the url_pattern's query are substituted too (KRAKEND.md 3.2).
        self.assertEqual(
            self.uris(self.operations),
            ["/assignments?bus=FW-0042"],
        )

    @inlineCallbacks
    def test_encoded_path_param(self):
        """A path parameter still URL-encoded after routing is refused with 400 before any backend call."""
        resp, body = yield self.get("/buses/FW%252F42/vehicle")
        self.assertEqual(resp.code, 400)
        # Deliberate difference: busgw's own errors have a JSON body.
        self.assertEqual(
            json.loads(body), {"error": "encoded url params", "status": 400}
        )
        self.assertEqual(self.vehicle.requests, [])
        self.assertEqual(self.location.requests, [])

    @inlineCallbacks
    def test_input_query_strings(self):
        """Only the listed query names are forwarded, sorted, multi-values kept, appended to the url_pattern query and narrowed per backend."""
        resp, body = yield self.get(
            "/buses/FW-0042/vehicle?units=metric&debug=1&fields=fuel&fields=odometer_km"
        )
        self.assertKrakend(resp, 200, "true")
        self.assertEqual(
            self.uris(self.vehicle),
            [
                "/vehicles/FW-0042?source=ecu"
                "&fields=fuel&fields=odometer_km&units=metric"
            ],
        )
        self.assertEqual(
            self.uris(self.location),
            ["/buses/FW-0042/position?units=metric"],
        )

    @inlineCallbacks
    def test_input_headers(self):
        """Only the listed headers are forwarded (narrowed per backend); X-Forwarded-For/-Host are always set."""
        resp, body = yield self.get(
            "/buses/FW-0042/vehicle",
            headers={
                "X-Fleet-Token": "tok-123",
                "Accept-Language": "de-DE",
                "X-Internal-Trace": "abc",
                "Cookie": "session=s1",
                "Content-Type": "application/json",
            },
        )
        self.assertKrakend(resp, 200, "true")
        [(_, _, vehicle)] = self.received(self.vehicle)
        self.assertEqual(vehicle.get("x-fleet-token"), ["tok-123"])
        self.assertEqual(vehicle.get("accept-language"), ["de-DE"])
        for name in ("x-internal-trace", "cookie", "content-type"):
            self.assertNotIn(name, vehicle)
        self.assertForwardedBy(vehicle)
        [(_, _, location)] = self.received(self.location)
        self.assertEqual(location.get("accept-language"), ["de-DE"])
        for name in ("x-fleet-token", "x-internal-trace", "cookie", "content-type"):
            self.assertNotIn(name, location)
        self.assertForwardedBy(location)

    # -- sequential (KRAKEND.md 3.6) ----------------------------------------

    @inlineCallbacks
    def test_sequential(self):
        """Backends run in order and `{resp0_shift.driver_id}` takes backend 0's value into the next URL."""
        resp, body = yield self.get("/buses/FW-0042/driver")
        self.assertKrakend(resp, 200, "true")
        self.assertJSON(
            resp,
            body,
            {
                "bus": "FW-0042",
                "shift": {"driver_id": 7, "start": "06:00"},
                "driver": {"name": "Ada Lovelace", "licence": "D"},
            },
        )
        self.assertEqual(
            self.uris(self.operations),
            ["/buses/FW-0042/shift", "/drivers/7"],
        )

    # -- collections and flatmap (KRAKEND.md 3.3, 3.4, 3.10) ----------------

    @inlineCallbacks
    def test_is_collection_json_collection(self):
        """A backend array with is_collection is served by json-collection as a top-level JSON array."""
        resp, body = yield self.get("/tyres")
        self.assertKrakend(resp, 200, "true")
        self.assertJSON(
            resp,
            body,
            [
                {"position": "front-left", "pressure": 8.5},
                {"position": "front-right", "pressure": 8.25},
            ],
        )
        self.assertEqual(self.uris(self.vehicle), ["/tyres"])

    @inlineCallbacks
    def test_backend_flatmap(self):
        """A backend flatmap_filter deletes and renames a field in every array item via `*`."""
        resp, body = yield self.get("/tyres")
        self.assertKrakend(resp, 200, "true")
        items = json.loads(body)
        self.assertEqual(len(items), 2)
        for item in items:
            self.assertNotIn("sensor_id", item)
            self.assertNotIn("pressure_bar", item)
            self.assertIn("pressure", item)

    @inlineCallbacks
    def test_endpoint_flatmap(self):
        """The endpoint flatmap_filter runs on the merged data: move, del with `*`, and append (source removed)."""
        resp, body = yield self.get("/timetable")
        self.assertKrakend(resp, 200, "true")
        self.assertJSON(
            resp,
            body,
            {
                "stops": [
                    {"stop": "Harbour", "eta": "08:02"},
                    {"stop": "Elm St", "eta": "08:09"},
                ],
                "alerts": [
                    {"text": "Detour via Pine Rd"},
                    {"text": "Elm St stop closed"},
                ],
                "updated": "07:55",
            },
        )

    @inlineCallbacks
    def test_safejson(self):
        """`safejson` accepts a top-level array (as `collection`) and an object (as is) without is_collection."""
        resp, body = yield self.get("/timetable")
        self.assertKrakend(resp, 200, "true")
        data = json.loads(body)
        self.assertNotIn("collection", data)  # moved to "stops" by the flatmap
        self.assertEqual([s["stop"] for s in data["stops"]], ["Harbour", "Elm St"])
        self.assertEqual(data["updated"], "07:55")
        self.assertEqual(self.uris(self.operations), ["/stops"])
        self.assertEqual(self.uris(self.location), ["/alerts"])

    # -- encodings and caching (KRAKEND.md 3.3, 3.5, 3.10) ------------------

    @inlineCallbacks
    def test_output_encoding_string(self):
        """A `string` backend body is served by output_encoding `string` as text/plain, untouched."""
        resp, body = yield self.get("/notice")
        self.assertKrakend(resp, 200, "true", "public, max-age=300")
        self.assertEqual(
            raw_header(resp, "Content-Type"), ["text/plain; charset=utf-8"]
        )
        self.assertEqual(body, NOTICE)

    @inlineCallbacks
    def test_cache_ttl(self):
        """`cache_ttl` gives `Cache-Control: public, max-age=N` on complete answers only."""
        resp, _ = yield self.get("/notice")
        self.assertKrakend(resp, 200, "true", "public, max-age=300")
        resp, _ = yield self.get("/diagnostics")  # cache_ttl 30s, but partial
        self.assertKrakend(resp, 200, "false")
        self.faults_ok = True
        resp, _ = yield self.get("/diagnostics")
        self.assertKrakend(resp, 200, "true", "public, max-age=30")
        resp, _ = yield self.get("/buses/FW-0042/vehicle")  # no cache_ttl
        self.assertKrakend(resp, 200, "true")

    # -- failures, static, timeouts (KRAKEND.md 3.3, 3.5, 3.7, 3.8) ---------

    @inlineCallbacks
    def test_failing_backend_partial(self):
        """A backend answering 500 in a merge is left out: 200 with the rest, marked incomplete."""
        resp, body = yield self.get("/diagnostics")
        self.assertKrakend(resp, 200, "false")
        data = json.loads(body)
        self.assertEqual(data["dtc"], ["P0420"])
        self.assertIs(data["mil"], True)
        self.assertNotIn("faults", data)
        self.assertNotIn("fault", data)
        self.assertEqual(self.uris(self.diagnostics), ["/faults"])

    @inlineCallbacks
    def test_static_strategy(self):
        """Static data with strategy `incomplete` is added over a partial answer and left out of a complete one."""
        resp, body = yield self.get("/diagnostics")
        self.assertKrakend(resp, 200, "false")
        self.assertJSON(
            resp,
            body,
            {
                "dtc": ["P0420"],
                "mil": True,
                "advice": "some on-board systems did not answer",
            },
        )
        self.faults_ok = True
        resp, body = yield self.get("/diagnostics")
        self.assertKrakend(resp, 200, "true", "public, max-age=30")
        self.assertJSON(
            resp, body, {"dtc": ["P0420"], "mil": True, "faults": {"count": 0}}
        )

    @inlineCallbacks
    def test_failing_backend_alone(self):
        """A single backend answering 500 leaves no data: the endpoint answers 500, incomplete, uncached."""
        resp, body = yield self.get("/faults")
        self.assertKrakend(resp, 500, "false")
        # Deliberate difference: a JSON body naming a stable code (KrakenD: empty).
        self.assertEqual(json.loads(body), {"error": "backend_status", "status": 500})
        self.assertEqual(self.uris(self.diagnostics), ["/faults"])

    @inlineCallbacks
    def test_return_error_details(self):
        """With return_error_details the backend's status, body and content type become data under `error_<name>`, served as an incomplete 200."""
        resp, body = yield self.get("/faults/detailed")
        self.assertKrakend(resp, 200, "false")
        self.assertJSON(
            resp,
            body,
            {
                "error_faults": {
                    "http_status_code": 500,
                    "http_body": json.dumps(FAULT),
                    "http_body_encoding": "application/json",
                }
            },
        )

    @inlineCallbacks
    def test_timeout_partial(self):
        """A backend still silent at the timeout is cut off: 200 with what arrived, incomplete, uncached."""
        resp, body = yield self.get("/location/live")
        self.assertKrakend(resp, 200, "false")
        self.assertJSON(resp, body, {"lat": 52.53, "lon": 13.41, "heading": 270})
        self.assertEqual(self.uris(self.camera), ["/occupancy"])
        yield self.camera.gone  # the timed-out call was really aborted

    # -- no-op (KRAKEND.md 3.11) ---------------------------------------------

    @inlineCallbacks
    def test_no_op(self):
        """`no-op` passes the backend's status, headers (Set-Cookie included) and body through; request filters still apply."""
        resp, body = yield self.get(
            "/wifi/session?seat=14&tracking=1",
            headers={"Cookie": "passenger=p9", "X-Internal-Trace": "abc"},
        )
        self.assertKrakend(resp, 202, "false")
        self.assertEqual(body, b"session granted")
        self.assertEqual(
            raw_header(resp, "Content-Type"), ["text/plain; charset=utf-8"]
        )
        self.assertEqual(
            raw_header(resp, "Set-Cookie"),
            ["wifi_session=abc123; Path=/; HttpOnly"],
        )
        self.assertEqual(raw_header(resp, "X-Wifi-Quota"), ["500MB"])
        [(method, uri, headers)] = self.received(self.wifi)
        self.assertEqual((method, uri), ("GET", "/session?seat=14"))
        self.assertEqual(headers.get("cookie"), ["passenger=p9"])
        self.assertNotIn("x-internal-trace", headers)
        self.assertForwardedBy(headers)
