"""Reading one endpoint object, with the service's defaults resolved.

Defaults arrive from the service in :class:`ServiceDefaults` and go on to
the backends in :class:`EndpointContext`; nothing is written back, so an
explicit lower value always wins.
"""

from __future__ import annotations

from typing import Tuple

# A module import: busd.auth.config imports busd.config while it loads.
from busd.auth import config as auth_config
from busd.config import krakend
from busd.config._backend import read_backend
from busd.config._fields import (
    EndpointContext,
    ServiceDefaults,
    read_encoding,
    read_headers,
    read_method,
)
from busd.config._namespaces import read_endpoint_proxy, read_extra
from busd.config._syntax import endpoint_params, q
from busd.config._walk import Node, object_items
from busd.config.model import OUTPUT_ENCODINGS, BackendConfig, EndpointConfig
from busd.qos.ratelimit import NAMESPACE as RATELIMIT, read_rate_limit

__all__ = ["read_endpoint"]


def read_endpoint(
    node: Node, svc: ServiceDefaults
) -> Tuple[EndpointConfig, bool]:
    """One ``endpoints[i]`` object; also whether its path is valid (so
    route checks can skip broken ones)."""
    path = node.string(
        "endpoint", required='an endpoint path such as "/users/{id}"'
    )
    problems: list[str] = []
    if path and not path.startswith("/"):
        problems.append(f'must start with "/", got {q(path)}')
    if "*" in path:
        problems.append(
            "wildcard routes (*) are not supported (KrakenD Enterprise only)"
        )
    params, param_problems = endpoint_params(path)
    problems.extend(param_problems)
    for problem in problems:
        node.report.error(node.at("endpoint"), problem)
    path_ok = bool(path) and not problems

    method = read_method(node, "GET")
    concurrent_calls = node.integer("concurrent_calls", 1, minimum=1)
    timeout = node.duration("timeout", svc.timeout)
    output = read_encoding(
        node,
        "output_encoding",
        svc.output_encoding,
        OUTPUT_ENCODINGS,
        krakend.UNSUPPORTED_OUTPUT_ENCODINGS,
    )
    headers = read_headers(
        node, node.renamed("input_headers", "headers_to_pass")
    )
    query = node.strings(
        node.renamed("input_query_strings", "querystring_params")
    )
    extra = read_extra(node, "endpoint")
    proxy_node = extra.nodes.get("proxy")
    proxy = read_endpoint_proxy(proxy_node)

    ctx = EndpointContext(
        method=method,
        params=params,
        params_ok=path_ok,
        sequential=proxy.sequential,
        output_encoding=output,
        input_headers=headers or (),
        input_query_strings=query or (),
        timeout=timeout,
        concurrent_calls=concurrent_calls,
    )
    backends: list[BackendConfig] = []
    raw_backends = node.array(
        "backend", required="an endpoint needs at least one backend"
    )
    if raw_backends is not None:
        if not raw_backends:
            node.report.error(
                node.at("backend"),
                "0 backends: an endpoint needs at least one backend",
            )
        loc = node.at("backend")
        for index, child in object_items(node.report, loc, raw_backends):
            backends.append(read_backend(child, index, ctx, svc))
        count = len(raw_backends)
        if output == "no-op" and count > 1:
            where = "backend"
            if node.has("output_encoding"):
                where = "output_encoding"
            node.report.error(
                node.at(where),
                "no-op output_encoding allows exactly one backend,"
                f" got {count}",
            )
        if proxy.flatmap_filter and count == 1 and proxy_node is not None:
            # lura runs the endpoint flatmap only after merging several.
            proxy_node.report.warn(
                proxy_node.at("flatmap_filter"),
                "an endpoint flatmap_filter runs only with several backends"
                " (ignored); put it on the backend",
            )

    auth = auth_config.resolve_endpoint_auth(
        node,
        extra.nodes.get("auth/validator"),
        extra.nodes.get("busgw/auth"),
        svc.auth,
        input_headers=ctx.input_headers,
    )
    config = EndpointConfig(
        endpoint=path,
        method=method,
        backends=tuple(backends),
        timeout=timeout,
        cache_ttl=node.duration("cache_ttl", svc.cache_ttl),
        output_encoding=output,
        concurrent_calls=concurrent_calls,
        input_headers=ctx.input_headers,
        input_query_strings=ctx.input_query_strings,
        sequential=proxy.sequential,
        static=proxy.static,
        flatmap_filter=proxy.flatmap_filter,
        params=params,
        extra_config=extra.frozen,
        auth=auth,
        rate_limit=read_rate_limit(extra.nodes.get(RATELIMIT), params),
    )
    node.finish(krakend.ENDPOINT_KEYS, krakend.UNSUPPORTED_ENDPOINT_KEYS)
    return config, path_ok
