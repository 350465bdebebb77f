"""extra_config namespaces: router, proxy, backend/http, busgw/backend."""

from __future__ import annotations

import json
from types import MappingProxyType

from twisted.trial.unittest import SynchronousTestCase

from busd.config import FlatmapOp, StaticResponse
from tests.config._support import (
    backend as be,
    endpoint as ep,
    load,
    problems,
    service as svc,
    table_tests,
)

E = "error"
P = "endpoints[0].extra_config.proxy"
BP = "endpoints[0].backend[0].extra_config.proxy"


def proxy(**options: object) -> dict:
    """An endpoint whose extra_config.proxy holds ``options``."""
    return svc(ep("/a", be(), be("/y"), extra_config={"proxy": options}))


def backend_flatmap(*ops: object) -> dict:
    """A backend whose proxy.flatmap_filter holds ``ops``."""
    extra = {"proxy": {"flatmap_filter": list(ops)}}
    return svc(ep("/a", be(extra_config=extra)))


# fmt: off
NAMESPACE_ERRORS = [
    ("sequential_type", "proxy.sequential must be a boolean.",
     proxy(sequential="maybe"), E, P + ".sequential", "expected a boolean"),
    ("static_no_data", "A static response needs data.",
     proxy(static={"strategy": "always"}), E, P + ".static.data",
     "missing required key"),
    ("static_array", "Static data must be an object.",
     proxy(static={"data": [1]}), E, P + ".static.data",
     "expected an object, got an array"),
    ("static_strategy", "An unknown static strategy is an error.",
     proxy(static={"data": {}, "strategy": "sometimes"}), E,
     P + ".static.strategy", 'unknown strategy "sometimes"'),
    ("static_type", "proxy.static must be an object.", proxy(static=True), E,
     P + ".static", "expected an object"),
    ("proxy_type", "A namespace busgw reads must be an object.",
     svc(ep(extra_config={"proxy": []})), E, P, "expected an object"),
    ("flatmap_type", "flatmap_filter must be a list.",
     svc(ep("/a", be(extra_config={"proxy": {"flatmap_filter": {}}}))), E,
     BP + ".flatmap_filter", "expected a list"),
    ("flatmap_op_type", "A flatmap op must be an object.",
     backend_flatmap("del"), E, BP + ".flatmap_filter[0]",
     "expected an object"),
    ("flatmap_kind", "Only move, del and append exist.",
     backend_flatmap({"type": "copy", "args": ["a", "b"]}), E,
     BP + ".flatmap_filter[0].type", 'unknown flatmap operation "copy"'),
    ("flatmap_no_type", "A flatmap op needs a type.",
     backend_flatmap({"args": ["a"]}), E, BP + ".flatmap_filter[0].type",
     "missing required key"),
    ("flatmap_move_args", "move takes exactly two paths.",
     backend_flatmap({"type": "move", "args": ["a"]}), E,
     BP + ".flatmap_filter[0].args", "exactly 2 paths"),
    ("flatmap_append_args", "append takes exactly two paths.",
     backend_flatmap({"type": "append", "args": ["a", "b", "c"]}), E,
     BP + ".flatmap_filter[0].args", "got 3"),
    ("flatmap_del_args", "del takes at least one path.",
     backend_flatmap({"type": "del", "args": []}), E,
     BP + ".flatmap_filter[0].args", "at least one path"),
    ("flatmap_arg_type", "Flatmap paths are strings.",
     backend_flatmap({"type": "del", "args": [3]}), E,
     BP + ".flatmap_filter[0].args[0]", "expected a dot path"),
    ("flatmap_arg_empty", "Flatmap paths have no empty segments.",
     backend_flatmap({"type": "del", "args": ["a..b"]}), E,
     BP + ".flatmap_filter[0].args[0]", "empty segment"),
    ("router_health_path", "health_path must start with a slash.",
     svc(extra_config={"router": {"health_path": "health"}}), E,
     "extra_config.router.health_path", 'must start with "/"'),
    ("router_bool", "Router flags must be booleans.",
     svc(extra_config={"router": {"return_error_msg": 1}}), E,
     "extra_config.router.return_error_msg", "expected a boolean"),
    ("error_body_type", "error_body must be an object.",
     svc(extra_config={"router": {"error_body": "x"}}), E,
     "extra_config.router.error_body", "expected an object"),
    ("max_body_zero", "max_body_bytes must be positive.",
     svc(extra_config={"busgw/backend": {"max_body_bytes": 0}}), E,
     "extra_config.busgw/backend.max_body_bytes", "at least 1"),
    ("max_body_backend", "A backend max_body_bytes must be an integer.",
     svc(ep("/a", be(extra_config={
         "busgw/backend": {"max_body_bytes": "big"}}))),
     E, "endpoints[0].backend[0].extra_config.busgw/backend.max_body_bytes",
     "expected an integer"),
    ("error_code_type", "return_error_code must be a boolean.",
     svc(ep("/a", be(extra_config={
         "backend/http": {"return_error_code": "yes"}}))), E,
     "endpoints[0].backend[0].extra_config.backend/http.return_error_code",
     "expected a boolean"),
    ("alias_twice", "A namespace under its old and new name is an error.",
     svc(ep(extra_config={"proxy": {},
                          "github.com/devopsfaith/krakend/proxy": {}})), E,
     'endpoints[0].extra_config["github.com/devopsfaith/krakend/proxy"]',
     'also given as "proxy"'),
]
# fmt: on


class NamespaceErrorTests(SynchronousTestCase):
    """Errors inside the namespaces busgw reads."""

    locals().update(table_tests(NAMESPACE_ERRORS))


class NamespaceValueTests(SynchronousTestCase):
    def test_router(self) -> None:
        """Router options land in RouterOptions, error_body frozen."""
        config = load(
            self,
            svc(
                extra_config={
                    "router": {
                        "return_error_msg": True,
                        "disable_health": "true",
                        "health_path": "/health",
                        "error_body": {"404": {"e": [1]}, "405": "no"},
                    }
                }
            ),
        ).config
        router = config.router
        self.assertTrue(router.return_error_msg)
        self.assertTrue(router.disable_health)
        self.assertEqual(router.health_path, "/health")
        self.assertEqual(router.error_body["404"]["e"], (1,))
        self.assertEqual(router.error_body["405"], "no")
        self.assertIsInstance(router.error_body, MappingProxyType)

    def test_old_router_name(self) -> None:
        """The old long router name is read as "router"."""
        config = load(
            self,
            svc(
                extra_config={
                    "github_com/luraproject/lura/router/gin": {
                        "health_path": "/h"
                    }
                }
            ),
        ).config
        self.assertEqual(config.router.health_path, "/h")
        self.assertEqual(list(config.extra_config), ["router"])

    def test_endpoint_proxy(self) -> None:
        """sequential, static and flatmap_filter are typed on the endpoint."""
        endpoint = load(
            self,
            proxy(
                sequential=True,
                static={"data": {"a": [1, {"b": 2}]}, "strategy": "errored"},
                flatmap_filter=[
                    {"type": "move", "args": ["a.*.b", "c"]},
                    {"type": "del", "args": ["x", "y.z"]},
                ],
            ),
        ).config.endpoints[0]
        self.assertTrue(endpoint.sequential)
        self.assertEqual(
            endpoint.static,
            StaticResponse(data={"a": (1, {"b": 2})}, strategy="errored"),
        )
        self.assertEqual(
            endpoint.flatmap_filter,
            (
                FlatmapOp(type="move", args=("a.*.b", "c")),
                FlatmapOp(type="del", args=("x", "y.z")),
            ),
        )

    def test_static_default_strategy(self) -> None:
        """A static response without strategy uses "always"."""
        endpoint = load(self, proxy(static={"data": {}})).config.endpoints[0]
        assert endpoint.static is not None
        self.assertEqual(endpoint.static.strategy, "always")

    def test_backend_namespaces(self) -> None:
        """Backend flatmap, backend/http and busgw/backend are typed."""
        extra = {
            "github.com/devopsfaith/krakend/http": {
                "return_error_details": "b1",
                "return_error_code": True,
            },
            "proxy": {
                "flatmap_filter": [{"type": "append", "args": ["a", "b"]}]
            },
            "busgw/backend": {"max_body_bytes": "2048"},
        }
        config = load(self, svc(ep("/a", be(extra_config=extra)))).config
        backend = config.endpoints[0].backends[0]
        self.assertEqual(backend.return_error_details, "b1")
        self.assertTrue(backend.return_error_code)
        self.assertEqual(
            backend.flatmap_filter, (FlatmapOp(type="append", args=("a", "b")),)
        )
        self.assertEqual(backend.max_body_bytes, 2048)
        self.assertEqual(
            sorted(backend.extra_config),
            ["backend/http", "busgw/backend", "proxy"],
        )

    def test_raw_namespaces_kept(self) -> None:
        """Every namespace, supported or not, is kept read-only under its
        short name for later features."""
        raw = svc(
            ep(
                "/a",
                extra_config={
                    "github.com/devopsfaith/krakend-jose/signer": {
                        "alg": "RS256",
                        "audience": ["a"],
                    }
                },
            )
        )
        found = problems(raw)
        self.assertEqual([p[0] for p in found], ["warning"])
        from busd.config import parse_config

        extra = parse_config(raw).config.endpoints[0].extra_config
        self.assertEqual(list(extra), ["auth/signer"])
        self.assertEqual(extra["auth/signer"]["audience"], ("a",))
        self.assertIsInstance(extra, MappingProxyType)
        with self.assertRaises(TypeError):
            extra["auth/signer"]["alg"] = "none"

    def test_frozen_values_encode(self) -> None:
        """Static data and error bodies are read-only yet still encode as
        JSON, since the gateway sends them as they are."""
        static_data = {"static": {"data": {"a": {"b": [1]}}}}
        config = load(
            self,
            svc(
                ep(extra_config={"proxy": static_data}),
                extra_config={"router": {"error_body": {"404": {"e": "nf"}}}},
            ),
        ).config
        static = config.endpoints[0].static
        assert static is not None
        self.assertEqual(json.dumps(static.data), '{"a": {"b": [1]}}')
        self.assertEqual(
            json.dumps(config.router.error_body["404"]), '{"e": "nf"}'
        )
        with self.assertRaises(TypeError):
            static.data["a"]["c"] = 1
        with self.assertRaises(TypeError):
            config.router.error_body["404"].clear()
