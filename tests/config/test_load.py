"""The model built from a valid config: defaults, weak typing, hosts."""

from __future__ import annotations

from types import MappingProxyType

from twisted.trial.unittest import SynchronousTestCase

from busd.config import (
    DEFAULT_MAX_BODY_BYTES,
    BackendConfig,
    ConfigError,
    EndpointConfig,
    GatewayConfig,
    parse_config,
)
from busd.config._syntax import sanitize_host
from tests.config._support import (
    HOST,
    backend as be,
    endpoint as ep,
    load,
    problems,
    service as svc,
)


class DefaultsTests(SynchronousTestCase):
    def test_service_defaults(self) -> None:
        """An almost empty config gets KrakenD's service defaults."""
        config = load(self, {"version": 3}).config
        self.assertEqual(config, GatewayConfig(router=config.router, source=""))
        self.assertEqual(config.port, 8080)
        self.assertEqual(config.timeout, 2.0)
        self.assertEqual(config.cache_ttl, 0.0)
        self.assertEqual(config.output_encoding, "json")
        self.assertEqual(config.router.health_path, "/__health")
        self.assertEqual(config.max_body_bytes, DEFAULT_MAX_BODY_BYTES)
        self.assertEqual(config.endpoints, ())

    def test_minimal_endpoint(self) -> None:
        """An endpoint with one backend gets every default filled in."""
        config = load(self, svc(ep("/a", be("/x")))).config
        self.assertEqual(
            config.endpoints[0],
            EndpointConfig(
                endpoint="/a",
                method="GET",
                backends=(
                    BackendConfig(
                        hosts=(HOST,), url_pattern="/x", method="GET"
                    ),
                ),
            ),
        )

    def test_service_values_flow_down(self) -> None:
        """Service timeout, cache_ttl, encoding, hosts and body cap reach
        endpoints and backends that do not set their own."""
        config = load(
            self,
            svc(
                ep("/a"),
                timeout="3s",
                cache_ttl="1m",
                output_encoding="string",
                extra_config={"busgw/backend": {"max_body_bytes": 100}},
            ),
        ).config
        endpoint = config.endpoints[0]
        self.assertEqual(
            (endpoint.timeout, endpoint.cache_ttl, endpoint.output_encoding),
            (3.0, 60.0, "string"),
        )
        backend = endpoint.backends[0]
        self.assertEqual(backend.hosts, (HOST,))
        self.assertEqual(backend.timeout, 3.0)
        self.assertEqual(backend.max_body_bytes, 100)
        self.assertEqual(config.max_body_bytes, 100)

    def test_explicit_values_win(self) -> None:
        """Values set at a lower level are not overwritten by defaults."""
        config = load(
            self,
            svc(
                ep(
                    "/a",
                    be(
                        host=["other:9000"],
                        method="post",
                        encoding="safejson",
                        extra_config={"busgw/backend": {"max_body_bytes": 5}},
                    ),
                    method="put",
                    timeout="500ms",
                    cache_ttl="10s",
                    output_encoding="json-collection",
                    concurrent_calls=3,
                ),
                timeout="3s",
                cache_ttl="1m",
                extra_config={"busgw/backend": {"max_body_bytes": 100}},
            ),
        ).config
        endpoint = config.endpoints[0]
        self.assertEqual(endpoint.method, "PUT")
        self.assertEqual(endpoint.timeout, 0.5)
        self.assertEqual(endpoint.cache_ttl, 10.0)
        self.assertEqual(endpoint.output_encoding, "json-collection")
        backend = endpoint.backends[0]
        self.assertEqual(backend.hosts, ("http://other:9000",))
        self.assertEqual(backend.method, "POST")
        self.assertEqual(backend.encoding, "safejson")
        self.assertEqual(backend.max_body_bytes, 5)
        # KrakenD CE copies these two from the endpoint into every backend.
        self.assertEqual((backend.timeout, backend.concurrent_calls), (0.5, 3))

    def test_backend_method_defaults_to_endpoint(self) -> None:
        """A backend without method uses the endpoint's."""
        config = load(self, svc(ep("/a", method="DELETE"))).config
        self.assertEqual(config.endpoints[0].backends[0].method, "DELETE")

    def test_zero_duration_means_default(self) -> None:
        """ "0" and "0s" leave the inherited value, as KrakenD's zero does."""
        config = load(self, svc(ep("/a", timeout="0s"), timeout="4s")).config
        self.assertEqual(config.endpoints[0].timeout, 4.0)

    def test_noop_forces_backend_encoding(self) -> None:
        """A no-op endpoint makes its backend no-op without saying so."""
        config = load(self, svc(ep("/a", output_encoding="no-op"))).config
        self.assertEqual(config.endpoints[0].backends[0].encoding, "no-op")

    def test_empty_encoding_is_json(self) -> None:
        """An empty backend encoding means json."""
        config = load(self, svc(ep("/a", be(encoding="")))).config
        self.assertEqual(config.endpoints[0].backends[0].encoding, "json")

    def test_backend_lists(self) -> None:
        """Backend input lists are None when absent, tuples when given."""
        config = load(
            self,
            svc(
                ep(
                    "/a",
                    be(),
                    be(input_headers=["*"], input_query_strings=[]),
                    input_headers=["*"],
                )
            ),
        ).config
        first, second = config.endpoints[0].backends
        self.assertIsNone(first.input_headers)
        self.assertIsNone(first.input_query_strings)
        self.assertEqual(second.input_headers, ("*",))
        self.assertEqual(second.input_query_strings, ())

    def test_response_fields(self) -> None:
        """target, allow, mapping, group and is_collection are kept."""
        backend = (
            load(
                self,
                svc(
                    ep(
                        "/a",
                        be(
                            target="data",
                            allow=["a.b", "c"],
                            mapping={"a": "x"},
                            group="g",
                            is_collection=True,
                        ),
                    )
                ),
            )
            .config.endpoints[0]
            .backends[0]
        )
        self.assertEqual(backend.target, "data")
        self.assertEqual(backend.allow, ("a.b", "c"))
        self.assertEqual(dict(backend.mapping), {"a": "x"})
        self.assertIsInstance(backend.mapping, MappingProxyType)
        self.assertEqual(backend.group, "g")
        self.assertTrue(backend.is_collection)


class WeakTypingTests(SynchronousTestCase):
    def test_non_string_in_a_list_keeps_paths_right(self) -> None:
        """A non-string item in a list of strings is reported at its own
        index, and no other item is reported at a shifted one."""
        found = problems(svc(ep("/a", be(), input_headers=["X-A", 5, "bad header"])))
        self.assertEqual(
            [(p[0], p[1]) for p in found],
            [("error", "endpoints[0].input_headers[1]")],
        )
        self.assertIn("expected a string", found[0][2])

    def test_strings_for_numbers_and_bools(self) -> None:
        """ "1" reads as an integer and "true" as a boolean, as KrakenD's
        mapstructure weak typing does."""
        config = load(
            self,
            svc(
                ep("/a", be(is_collection="true"), concurrent_calls="2"),
                version="3",
                port="9000",
                debug_endpoint="false",
            ),
        ).config
        self.assertEqual(config.port, 9000)
        self.assertFalse(config.debug_endpoint)
        self.assertEqual(config.endpoints[0].concurrent_calls, 2)
        self.assertTrue(config.endpoints[0].backends[0].is_collection)

    def test_single_string_list(self) -> None:
        """A lone string where a list is due counts as a list of one."""
        config = load(self, svc(ep("/a", be(host="h:81")), host="h:80")).config
        self.assertEqual(config.hosts, ("http://h:80",))
        self.assertEqual(
            config.endpoints[0].backends[0].hosts, ("http://h:81",)
        )

    def test_null_is_absent(self) -> None:
        """A JSON null leaves the default, as Go's zero value does."""
        config = load(self, svc(ep("/a", timeout=None), port=None)).config
        self.assertEqual(config.port, 8080)
        self.assertEqual(config.endpoints[0].timeout, 2.0)

    def test_other_strings_fail(self) -> None:
        """A string that is no integer is a type error naming the type."""
        self.assertEqual(
            problems(svc(ep("/a", concurrent_calls="two"))),
            [
                (
                    "error",
                    "endpoints[0].concurrent_calls",
                    'expected an integer, got string "two"',
                )
            ],
        )


HOSTS = [
    ("localhost:9101", "http://localhost:9101"),
    ("127.0.0.1:9101/", "http://127.0.0.1:9101"),
    ("http://127.0.0.1:9101/v1/x", "http://127.0.0.1:9101"),
    ("https://api.example.com", "https://api.example.com"),
    ("my_host-1.local", "http://my_host-1.local"),
    ("[::1]:8080", "http://[::1]:8080"),
    ("https://[2001:db8::1]/p", "https://[2001:db8::1]"),
]


class HostTests(SynchronousTestCase):
    def test_sanitize(self) -> None:
        """Hosts get a scheme, lose their path and keep their port."""
        for given, expected in HOSTS:
            self.assertEqual(sanitize_host(given), expected, given)

    def test_invalid(self) -> None:
        """Hosts the lura pattern cannot read are refused."""
        for given in (
            "",
            "ftp://x",
            "HTTP://x",
            "h:1",
            "a b",
            "[::1",
            "h:99999",
        ):
            with self.assertRaises(ValueError, msg=given):
                sanitize_host(given)

    def test_disable_host_sanitize(self) -> None:
        """With disable_host_sanitize hosts stay as given, minus trailing
        slashes, including inherited service hosts."""
        config = load(
            self,
            svc(
                ep("/a", be(disable_host_sanitize=True)),
                ep("/b", be(host=["unix:/x/"], disable_host_sanitize=True)),
                host=["svc:80/base/"],
            ),
        ).config
        self.assertEqual(
            config.endpoints[0].backends[0].hosts, ("svc:80/base",)
        )
        self.assertEqual(config.endpoints[1].backends[0].hosts, ("unix:/x",))
        self.assertTrue(config.endpoints[1].backends[0].disable_host_sanitize)


class PlaceholderTests(SynchronousTestCase):
    def test_params_in_order(self) -> None:
        """EndpointConfig.params lists the placeholders in path order."""
        config = load(
            self, svc(ep("/v/{bus}/x/{device-id}/{a_1}", be("/{a_1}/{bus}")))
        ).config
        self.assertEqual(
            config.endpoints[0].params, ("bus", "device-id", "a_1")
        )

    def test_allowed_url_placeholders(self) -> None:
        """Sequential resp placeholders of earlier backends and JWT claims
        are accepted in url_patterns."""
        raw = svc(
            ep(
                "/a/{id}",
                be("/x/{id}?u={JWT.sub}"),
                be("/y/{resp0_user.id}"),
                be("/z/{resp0}/{resp1_k}/{JWT.https://ex.com/tenant}"),
                extra_config={"proxy": {"sequential": True}},
            )
        )
        endpoint = load(self, raw).config.endpoints[0]
        self.assertTrue(endpoint.sequential)
        self.assertEqual(len(endpoint.backends), 3)

    def test_same_path_other_method(self) -> None:
        """One path with two methods is two routes, not a duplicate."""
        load(self, svc(ep("/a"), ep("/a", method="POST")))

    def test_no_cascade(self) -> None:
        """A broken endpoint path does not also fail its url_patterns."""
        self.assertEqual(
            [p[1] for p in problems(svc(ep("/x{id}", be("/y/{id}"))))],
            ["endpoints[0].endpoint"],
        )

    def test_reserved_lookalike(self) -> None:
        """/__healthz is not under /__health."""
        load(self, svc(ep("/__healthz")))


class ThreeMistakesTests(SynchronousTestCase):
    def test_all_reported_in_order(self) -> None:
        """Three unrelated mistakes are all reported, in document order."""
        raw = svc(
            ep("/a", be("/x", encoding="xml")),
            ep("/b/{id}", be("/y/{ident}")),
            port=0,
        )
        with self.assertRaises(ConfigError) as caught:
            parse_config(raw, source="gw.json")
        err = caught.exception
        self.assertEqual(err.source, "gw.json")
        self.assertEqual(
            [(p.severity, p.path) for p in err.problems],
            [
                ("error", "endpoints[0].backend[0].encoding"),
                ("error", "endpoints[1].backend[0].url_pattern"),
                ("error", "port"),
            ],
        )
        text = str(err)
        self.assertIn("gw.json: 3 problem(s)", text)
        self.assertIn("error: port: must be between 1 and 65535", text)
