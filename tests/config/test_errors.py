"""Each config error is reported once, at its exact JSON path."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.config._support import (
    backend as be,
    endpoint as ep,
    service as svc,
    table_tests,
)

E = "error"
DURATION = 'expected a duration string such as "2s" or "500ms"'

# fmt: off
SERVICE_ERRORS = [
    ("not_object", "A config that is not an object is refused at the root.",
     [1, 2], E, "", "must be a JSON object"),
    ("version_missing", "A missing version is an error.", {"endpoints": []}, E,
     "version", "missing required key"),
    ("version_2", "Version 2 is refused with KrakenD's message.",
     {"version": 2}, E, "version", "unsupported version: 2 (want: 3)"),
    ("version_text", "A non-numeric version is a type error.",
     {"version": "three"}, E, "version", 'got string "three"'),
    ("port_zero", "Port 0 is out of range.", svc(port=0), E, "port",
     "between 1 and 65535, got 0"),
    ("port_high", "Port 70000 is out of range.", svc(port=70000), E, "port",
     "between 1 and 65535"),
    ("port_float", "A fractional port is not an integer.", svc(port=80.5), E,
     "port", "expected an integer, got number 80.5"),
    ("port_bool", "A boolean port is not an integer.", svc(port=True), E,
     "port", "expected an integer, got true"),
    ("listen_ip", "listen_ip must be an IP address.",
     svc(listen_ip="localhost"), E, "listen_ip", "not an IPv4 or IPv6"),
    ("timeout_number", "A JSON number is not a duration.", svc(timeout=2), E,
     "timeout", DURATION + ", got number 2"),
    ("timeout_no_unit", "A duration string without unit is refused.",
     svc(timeout="10"), E, "timeout", "missing unit in duration"),
    ("cache_ttl_negative", "A negative cache_ttl is refused.",
     svc(cache_ttl="-1s"), E, "cache_ttl", "must not be negative"),
    ("service_xml", "A service output_encoding busgw lacks is an error.",
     svc(output_encoding="xml"), E, "output_encoding",
     "not supported by busgw"),
    ("debug_endpoint_type", "debug_endpoint must be a boolean.",
     svc(debug_endpoint="yes"), E, "debug_endpoint", "expected a boolean"),
    ("host_invalid", "An unparseable service host is an error.",
     svc(host=["ftp://x"]), E, "host[0]", "invalid host"),
    ("host_bad_ipv6", "A bracketed host must be an IPv6 address.",
     svc(host=["[zz::1]:80"]), E, "host[0]", "invalid IPv6 address"),
    ("endpoints_type", "endpoints must be a list.", svc(endpoints={}), E,
     "endpoints", "expected a list, got an object"),
    ("endpoint_type", "Each endpoint must be an object.", svc("/a"), E,
     "endpoints[0]", "expected an object"),
    ("extra_config_type", "extra_config must be an object.",
     svc(extra_config=[]), E, "extra_config", "expected an object"),
]
# fmt: on

# fmt: off
ENDPOINT_ERRORS = [
    ("path_missing", "An endpoint without a path is an error.",
     svc({"backend": [be()]}), E, "endpoints[0].endpoint",
     "missing required key"),
    ("path_relative", "An endpoint path must start with a slash.",
     svc(ep("a")), E, "endpoints[0].endpoint", 'must start with "/"'),
    ("path_partial", "A placeholder must fill a whole path segment.",
     svc(ep("/x{id}")), E, "endpoints[0].endpoint",
     "must fill the whole path segment"),
    ("path_name", "Placeholder names are letters, digits, - and _.",
     svc(ep("/x/{a.b}")), E, "endpoints[0].endpoint",
     "invalid placeholder name {a.b}"),
    ("path_brace", "An unbalanced brace is reported.", svc(ep("/x/{id")), E,
     "endpoints[0].endpoint", "unbalanced brace"),
    ("path_twice", "A placeholder used twice is reported.",
     svc(ep("/x/{id}/{id}")), E, "endpoints[0].endpoint", "used twice"),
    ("path_wildcard", "Wildcard routes are refused.", svc(ep("/x/*")), E,
     "endpoints[0].endpoint", "wildcard"),
    ("method", "Methods outside GET POST PUT PATCH DELETE are refused.",
     svc(ep(method="HEAD")), E, "endpoints[0].method",
     'unsupported method "HEAD"'),
    ("backend_missing", "An endpoint needs a backend list.",
     svc({"endpoint": "/a"}), E, "endpoints[0].backend",
     "missing required key"),
    ("backend_empty", "An empty backend list is KrakenD's 0 backends.",
     svc({"endpoint": "/a", "backend": []}), E, "endpoints[0].backend",
     "0 backends"),
    ("concurrent_zero", "concurrent_calls must be at least 1.",
     svc(ep(concurrent_calls=0)), E, "endpoints[0].concurrent_calls",
     "at least 1"),
    ("endpoint_timeout", "An endpoint timeout needs a unit.",
     svc(ep(timeout="10")), E, "endpoints[0].timeout", DURATION),
    ("output_xml", "xml output is KrakenD but not busgw.",
     svc(ep(output_encoding="xml")), E, "endpoints[0].output_encoding",
     'output_encoding "xml" is not supported by busgw'),
    ("output_negotiate", "negotiate output is not supported.",
     svc(ep(output_encoding="negotiate")), E, "endpoints[0].output_encoding",
     "not supported by busgw"),
    ("output_unknown", "An unknown output_encoding is an error.",
     svc(ep(output_encoding="csv")), E, "endpoints[0].output_encoding",
     'unknown output_encoding "csv"'),
    ("input_headers_type", "input_headers must be a list of strings.",
     svc(ep(input_headers=[1])), E, "endpoints[0].input_headers[0]",
     "expected a string, got number 1"),
    ("input_headers_name", "A header name must be an HTTP token.",
     svc(ep(input_headers=["X Y"])), E, "endpoints[0].input_headers[0]",
     "invalid header name"),
    ("query_type", "input_query_strings must be a list.",
     svc(ep(input_query_strings={})), E, "endpoints[0].input_query_strings",
     "expected a list of strings"),
    ("noop_two_backends", "no-op allows a single backend.",
     svc(ep("/a", be(), be(), output_encoding="no-op")), E,
     "endpoints[0].output_encoding", "exactly one backend, got 2"),
    ("v2_and_v3", "A v2 name next to its v3 name is a contradiction.",
     svc(ep(input_headers=["A"], headers_to_pass=["B"])), E,
     "endpoints[0].headers_to_pass", "both given"),
]
# fmt: on

# fmt: off
BACKEND_ERRORS = [
    ("no_host", "A backend with no host anywhere is an error.",
     {"version": 3, "endpoints": [ep()]}, E, "endpoints[0].backend[0].host",
     "no host"),
    ("host_path", "A host with a query string is unparseable.",
     svc(ep("/a", be(host=["h?x=1"]))), E, "endpoints[0].backend[0].host[0]",
     "invalid host"),
    ("host_port", "A one-digit port does not parse, as in lura.",
     svc(ep("/a", be(host=["h:1"]))), E, "endpoints[0].backend[0].host[0]",
     "invalid host"),
    ("host_type", "Hosts must be strings.", svc(ep("/a", be(host=[7]))), E,
     "endpoints[0].backend[0].host[0]", "expected a string"),
    ("url_missing", "A backend needs a url_pattern.",
     svc(ep("/a", {"method": "GET"})), E,
     "endpoints[0].backend[0].url_pattern", "missing required key"),
    ("url_relative", "A url_pattern must start with a slash.",
     svc(ep("/a", be("x"))), E, "endpoints[0].backend[0].url_pattern",
     'must start with "/"'),
    ("url_param", "A url_pattern placeholder must be an endpoint param.",
     svc(ep("/a/{id}", be("/x/{ident}"))), E,
     "endpoints[0].backend[0].url_pattern",
     "placeholder {ident} is not a parameter"),
    ("url_resp_not_sequential", "resp0_x needs a sequential endpoint.",
     svc(ep("/a", be(), be("/y/{resp0_id}"))), E,
     "endpoints[0].backend[1].url_pattern", "sequential: true"),
    ("url_resp_later", "resp1_x cannot feed backend 1 itself.",
     svc(ep("/a", be(), be("/y/{resp1_id}"),
            extra_config={"proxy": {"sequential": True}})),
     E, "endpoints[0].backend[1].url_pattern", "reads backend 1"),
    ("url_brace", "An unbalanced brace in a url_pattern is reported.",
     svc(ep("/a/{id}", be("/x/{id"))), E,
     "endpoints[0].backend[0].url_pattern", "unbalanced brace"),
    ("method", "A backend method must be routable.",
     svc(ep("/a", be(method="TRACE"))), E, "endpoints[0].backend[0].method",
     "unsupported method"),
    ("encoding_xml", "xml decoding is not supported by busgw.",
     svc(ep("/a", be(encoding="xml"))), E, "endpoints[0].backend[0].encoding",
     "not supported by busgw"),
    ("encoding_rss", "rss decoding is not supported by busgw.",
     svc(ep("/a", be(encoding="rss"))), E, "endpoints[0].backend[0].encoding",
     "not supported by busgw"),
    ("encoding_unknown", "An unknown encoding is an error.",
     svc(ep("/a", be(encoding="jsonn"))), E,
     "endpoints[0].backend[0].encoding", 'unknown encoding "jsonn"'),
    ("encoding_noop_alone", "A no-op backend needs a no-op endpoint.",
     svc(ep("/a", be(encoding="no-op"))), E,
     "endpoints[0].backend[0].encoding", "needs the endpoint's"),
    ("allow_deny", "allow together with deny is a contradiction.",
     svc(ep("/a", be(allow=["a"], deny=["b"]))), E,
     "endpoints[0].backend[0].deny", "cannot be used together"),
    ("mapping_value", "mapping values must be strings.",
     svc(ep("/a", be(mapping={"a": 1}))), E,
     "endpoints[0].backend[0].mapping.a", "expected a string"),
    ("mapping_type", "mapping must be an object.",
     svc(ep("/a", be(mapping=["a"]))), E, "endpoints[0].backend[0].mapping",
     "expected an object"),
    ("is_collection", "is_collection must be a boolean.",
     svc(ep("/a", be(is_collection="yes"))), E,
     "endpoints[0].backend[0].is_collection", "expected a boolean"),
    ("group_type", "group must be a string.", svc(ep("/a", be(group=1))), E,
     "endpoints[0].backend[0].group", "expected a string"),
    ("backend_type", "Each backend must be an object.",
     svc(ep("/a", "http://x")), E, "endpoints[0].backend[0]",
     "expected an object"),
]
# fmt: on

# fmt: off
ROUTE_ERRORS = [
    ("duplicate", "The same method and path twice is an error.",
     svc(ep("/a"), ep("/a")), E, "endpoints[1].endpoint",
     "duplicate route: GET /a is already declared by endpoints[0]"),
    ("duplicate_params", "/a/{x} and /a/{y} are the same route.",
     svc(ep("/a/{x}"), ep("/a/{y}")), E, "endpoints[1].endpoint",
     "duplicate route"),
    ("duplicate_case", "Method names are compared upper-cased.",
     svc(ep("/a", method="post"), ep("/a", method="POST")), E,
     "endpoints[1].endpoint", "duplicate route: POST /a"),
    ("health", "/__health is reserved.", svc(ep("/__health")), E,
     "endpoints[0].endpoint", "reserved"),
    ("debug", "Paths under /__debug are reserved.", svc(ep("/__debug/x")), E,
     "endpoints[0].endpoint", "reserved"),
    ("echo", "/__echo is reserved.", svc(ep("/__echo")), E,
     "endpoints[0].endpoint", "reserved"),
    ("custom_health", "A custom health_path is reserved too.",
     svc(ep("/status/{x}"),
         extra_config={"router": {"health_path": "/status"}}),
     E, "endpoints[0].endpoint", "built-in endpoint /status"),
]
# fmt: on


class ServiceErrorTests(SynchronousTestCase):
    """Errors in service-level keys."""

    locals().update(table_tests(SERVICE_ERRORS))


class EndpointErrorTests(SynchronousTestCase):
    """Errors in endpoint keys."""

    locals().update(table_tests(ENDPOINT_ERRORS))


class BackendErrorTests(SynchronousTestCase):
    """Errors in backend keys."""

    locals().update(table_tests(BACKEND_ERRORS))


class RouteErrorTests(SynchronousTestCase):
    """Errors between endpoints: duplicates and reserved paths."""

    locals().update(table_tests(ROUTE_ERRORS))
