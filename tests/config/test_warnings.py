"""Warnings: unknown and unsupported keys, v2 names, ignored namespaces;
and strict mode, which turns each of them into an error."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from busd.config import ConfigError, parse_config
from tests.config._support import (
    backend as be,
    endpoint as ep,
    problems,
    service as svc,
    table_tests,
)

W = "warning"
E = "error"
NS = "KrakenD namespace not supported by busgw (ignored)"

# fmt: off
WARNINGS = [
    ("unknown_service_key", "An unknown service key is a warning.",
     svc(colour="red"), W, "colour", "unknown key"),
    ("did_you_mean", "A misspelt key gets a suggestion.", svc(timout="3s"), W,
     "timout", 'did you mean "timeout"?'),
    ("unknown_endpoint_key", "An unknown endpoint key is a warning.",
     svc(ep(backends=[])), W, "endpoints[0].backends", "unknown key"),
    ("unknown_backend_key", "An unknown backend key is a warning.",
     svc(ep("/a", be(uri="/x"))), W, "endpoints[0].backend[0].uri",
     "unknown key"),
    ("unsupported_service_key", "tls is KrakenD but not busgw.",
     svc(tls={"public_key": "k"}), W, "tls",
     "not supported by busgw (ignored)"),
    ("write_timeout", "write_timeout is not supported.",
     svc(write_timeout="1s"), W, "write_timeout", "not supported by busgw"),
    ("backend_timeout", "A backend timeout is ignored, as in KrakenD CE.",
     svc(ep("/a", be(timeout="1s"))), W, "endpoints[0].backend[0].timeout",
     "not configurable per backend"),
    ("backend_sd", "Service discovery is not supported.",
     svc(ep("/a", be(sd="dns"))), W, "endpoints[0].backend[0].sd",
     "not supported by busgw"),
    ("headers_to_pass", "headers_to_pass is read as input_headers.",
     svc(ep(headers_to_pass=["X-A"])), W, "endpoints[0].headers_to_pass",
     'use "input_headers"'),
    ("querystring_params",
     "querystring_params is read as input_query_strings.",
     svc(ep(querystring_params=["a"])), W, "endpoints[0].querystring_params",
     'use "input_query_strings"'),
    ("whitelist", "whitelist is read as allow.",
     svc(ep("/a", be(whitelist=["a"]))), W,
     "endpoints[0].backend[0].whitelist", 'use "allow"'),
    ("blacklist", "blacklist is read as deny.",
     svc(ep("/a", be(blacklist=["a"]))), W,
     "endpoints[0].backend[0].blacklist", 'use "deny"'),
    ("krakend_namespace", "A KrakenD namespace busgw lacks is a warning.",
     svc(ep(extra_config={"auth/signer": {"alg": "RS256"}})), W,
     "endpoints[0].extra_config.auth/signer", NS),
    ("krakend_family", "Any qos/ namespace counts as KrakenD's.",
     svc(ep("/a", be(extra_config={"qos/new-thing": {}}))), W,
     "endpoints[0].backend[0].extra_config.qos/new-thing", NS),
    ("old_long_name", "An old long namespace name is known too.",
     svc(extra_config={"github_com/devopsfaith/krakend-httpsecure": {}}), W,
     "extra_config.github_com/devopsfaith/krakend-httpsecure", NS),
    ("busgw_namespace", "An unknown busgw/ namespace is a warning.",
     svc(extra_config={"busgw/nope": {}}), W, "extra_config.busgw/nope",
     "unknown busgw namespace"),
    ("unknown_namespace", "A namespace nobody knows is a warning.",
     svc(extra_config={"mything": {}}), W, "extra_config.mything",
     "unknown namespace"),
    ("wrong_level", "router at an endpoint belongs to the service.",
     svc(ep(extra_config={"router": {}})), W,
     "endpoints[0].extra_config.router", "belongs at the service level"),
    ("router_option", "Router options busgw lacks are warnings.",
     svc(extra_config={"router": {"auto_options": True}}), W,
     "extra_config.router.auto_options", "not supported by busgw"),
    ("router_unknown", "Unknown router keys are warnings.",
     svc(extra_config={"router": {"health": "/h"}}), W,
     "extra_config.router.health", "unknown key"),
    ("error_body_status", "error_body keys other than 404/405 are unused.",
     svc(extra_config={"router": {"error_body": {"500": {}}}}), W,
     "extra_config.router.error_body.500", 'only "404" and "405"'),
    ("combiner", "A custom combiner is not supported.",
     svc(ep(extra_config={"proxy": {"combiner": "x"}})), W,
     "endpoints[0].extra_config.proxy.combiner", "not supported by busgw"),
    ("propagated", "sequential_propagated_params is not supported.",
     svc(ep(extra_config={"proxy": {"sequential_propagated_params": []}})), W,
     "endpoints[0].extra_config.proxy.sequential_propagated_params",
     "not supported by busgw"),
    ("shadow", "Shadow backends are not supported.",
     svc(ep("/a", be(extra_config={"proxy": {"shadow": True}}))), W,
     "endpoints[0].backend[0].extra_config.proxy.shadow",
     "not supported by busgw"),
    ("static_on_backend", "static on a backend belongs on the endpoint.",
     svc(ep("/a", be(extra_config={"proxy": {"static": {"data": {}}}}))), W,
     "endpoints[0].backend[0].extra_config.proxy.static",
     "belongs on the endpoint"),
    ("sequential_on_backend", "sequential on a backend is misplaced.",
     svc(ep("/a", be(extra_config={"proxy": {"sequential": True}}))), W,
     "endpoints[0].backend[0].extra_config.proxy.sequential",
     "belongs on the endpoint"),
    ("busgw_backend_key", "Unknown keys in busgw/backend are warnings.",
     svc(extra_config={"busgw/backend": {"max_body": 1}}), W,
     "extra_config.busgw/backend.max_body", 'did you mean "max_body_bytes"'),
    ("flatmap_op_key", "Unknown keys in a flatmap op are warnings.",
     svc(ep("/a", be(extra_config={"proxy": {"flatmap_filter": [
         {"type": "del", "args": ["a"], "note": 1}]}}))), W,
     "endpoints[0].backend[0].extra_config.proxy.flatmap_filter[0].note",
     "unknown key"),
    ("noop_encoding", "An explicit encoding under no-op is replaced.",
     svc(ep("/a", be(encoding="json"), output_encoding="no-op")), W,
     "endpoints[0].backend[0].encoding", "replaced by no-op"),
    ("noop_data_key", "Data manipulation under no-op has no effect.",
     svc(ep("/a", be(group="g"), output_encoding="no-op")), W,
     "endpoints[0].backend[0].group", "no effect with no-op"),
    ("flatmap_replaces", "A backend flatmap makes allow/deny/mapping moot.",
     svc(ep("/a", be(allow=["a"], extra_config={"proxy": {
         "flatmap_filter": [{"type": "del", "args": ["b"]}]}}))), W,
     "endpoints[0].backend[0].extra_config.proxy.flatmap_filter",
     "replaces allow, deny and mapping"),
    ("endpoint_flatmap_single", "An endpoint flatmap needs several backends.",
     svc(ep(extra_config={"proxy": {
         "flatmap_filter": [{"type": "del", "args": ["b"]}]}})), W,
     "endpoints[0].extra_config.proxy.flatmap_filter",
     "runs only with several backends"),
    ("header_not_forwarded", "A backend header the endpoint drops is moot.",
     svc(ep("/a", be(input_headers=["X-B"]), input_headers=["X-A"])), W,
     "endpoints[0].backend[0].input_headers[0]", 'does not forward "X-B"'),
    ("query_not_forwarded", "A backend query the endpoint drops is moot.",
     svc(ep("/a", be(input_query_strings=["b"]))), W,
     "endpoints[0].backend[0].input_query_strings[0]", 'does not forward "b"'),
    ("mapping_dot", "A dotted new name is cut at the dot, as in lura.",
     svc(ep("/a", be(mapping={"a": "b.c"}))), W,
     "endpoints[0].backend[0].mapping.a", 'is cut to "b"'),
]
# fmt: on


class WarningTableTests(SynchronousTestCase):
    """Each warning is reported once, at its exact path."""

    locals().update(table_tests(WARNINGS))


class WarningBehaviourTests(SynchronousTestCase):
    def test_warnings_do_not_fail(self) -> None:
        """A config with only warnings loads and returns them."""
        result = parse_config(svc(colour="red", tls={}))
        self.assertEqual(
            [(p.severity, p.path) for p in result.warnings],
            [("warning", "colour"), ("warning", "tls")],
        )

    def test_strict(self) -> None:
        """With strict=True every warning becomes an error and fails."""
        with self.assertRaises(ConfigError) as caught:
            parse_config(svc(ep(headers_to_pass=["X"]), tls={}), strict=True)
        found = [(p.severity, p.path) for p in caught.exception.problems]
        self.assertEqual(
            found,
            [("error", "endpoints[0].headers_to_pass"), ("error", "tls")],
        )

    def test_strict_clean(self) -> None:
        """A config without warnings loads under strict=True."""
        result = parse_config(svc(ep()), strict=True)
        self.assertEqual(result.warnings, ())

    def test_comments_and_schema(self) -> None:
        """ "$schema" at the root and "@comment" keys anywhere are silent."""
        raw = svc(
            ep("/a", be(**{"@comment": "x"}), **{"@comment": "y"}),
            **{"$schema": "https://www.krakend.io/schema/krakend.json"},
        )
        raw["@comment"] = "z"
        self.assertEqual(problems(raw), [])

    def test_unsupported_at_default(self) -> None:
        """Unsupported options left at KrakenD's default value draw no
        warning, as KrakenD Designer writes them everywhere."""
        raw = svc(
            ep("/a", be(sd="static", sd_scheme="http")), echo_endpoint=False
        )
        self.assertEqual(problems(raw), [])

    def test_duplicate_json_key(self) -> None:
        """A key repeated in the JSON text warns; the last value wins."""
        from busd.config.load import decode_json

        raw = decode_json(
            '{"version": 3, "port": 1, "port": 2, "host": ["h:80"],'
            ' "endpoints": []}'
        )
        result = parse_config(raw)
        self.assertEqual(result.config.port, 2)
        self.assertEqual(
            [(p.path, p.message) for p in result.warnings],
            [("port", "key given more than once; the last value is used")],
        )

    def test_v2_values_are_used(self) -> None:
        """Values under v2 names land in the v3 fields."""
        result = parse_config(
            svc(
                ep(
                    "/a",
                    be(whitelist=["a"], blacklist=[]),
                    headers_to_pass=["x-a"],
                    querystring_params=["q"],
                )
            )
        )
        endpoint = result.config.endpoints[0]
        self.assertEqual(endpoint.input_headers, ("X-A",))
        self.assertEqual(endpoint.input_query_strings, ("q",))
        self.assertEqual(endpoint.backends[0].allow, ("a",))
        self.assertEqual(len(result.warnings), 4)
