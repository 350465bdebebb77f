"""Reading one ``backend[j]`` object, with the endpoint's defaults."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Optional, Tuple

from busd.config import krakend
from busd.config._fields import (
    EndpointContext,
    ServiceDefaults,
    clean_host,
    read_encoding,
    read_headers,
    read_method,
)
from busd.config._namespaces import (
    read_backend_http,
    read_backend_proxy,
    read_extra,
    read_max_body,
)
from busd.config._http_cache import read_http_cache
from busd.config._fleet_backend import (
    NAMESPACE as FLEET,
    check_fleet_backend,
    read_fleet_backend,
)
from busd.config._syntax import check_url_placeholder, q, url_placeholders
from busd.config._json import describe
from busd.config._walk import Node
from busd.config.model import BACKEND_ENCODINGS, BackendConfig

__all__ = ["read_backend"]

# Backend keys that shape the decoded data, which no-op never decodes.
_DATA_KEYS = ("is_collection", "target", "allow", "deny", "mapping", "group")


def read_backend(
    node: Node, index: int, ep: EndpointContext, svc: ServiceDefaults
) -> BackendConfig:
    """Backend ``index`` of an endpoint; timeout and concurrent_calls are
    the endpoint's, as KrakenD CE copies them into every backend."""
    raw_hosts = node.boolean("disable_host_sanitize")
    extra = read_extra(node, "backend")
    # A fleet backend calls the central's buses: no host of its own.
    fleet = read_fleet_backend(extra.nodes.get(FLEET), ep.timeout)
    hosts = () if fleet is not None else _read_hosts(node, svc, raw_hosts)
    url = node.string("url_pattern", required='a path such as "/users/{id}"')
    _check_url_pattern(node, url, index, ep)
    encoding = _read_backend_encoding(node, ep)
    allow_key = node.renamed("allow", "whitelist")
    allow = node.strings(allow_key) or ()
    deny_key = node.renamed("deny", "blacklist")
    deny = node.strings(deny_key) or ()
    if allow and deny:
        # lura silently ignores deny when allow is set.
        node.report.error(
            node.at(deny_key), "allow and deny cannot be used together"
        )
    mapping = _read_mapping(node)
    headers_key = node.renamed("input_headers", "headers_to_pass")
    headers = read_headers(node, headers_key)
    # With no input_headers, KrakenD forwards Content-Type alone.
    _check_narrowing(
        node, headers_key, headers, ep.input_headers, ("Content-Type",)
    )
    query_key = node.renamed("input_query_strings", "querystring_params")
    query = node.strings(query_key)
    _check_narrowing(node, query_key, query, ep.input_query_strings, ())
    proxy_node = extra.nodes.get("proxy")
    flatmap = read_backend_proxy(proxy_node)
    if flatmap and (allow or deny or mapping) and proxy_node is not None:
        proxy_node.report.warn(
            proxy_node.at("flatmap_filter"),
            "flatmap_filter replaces allow, deny and mapping, which are"
            " ignored",
        )
    details, code = read_backend_http(extra.nodes.get("backend/http"))
    if encoding == "no-op":
        for key in _DATA_KEYS:
            if node.has(key):
                node.report.warn(
                    node.at(key), "has no effect with no-op encoding"
                )
    config = BackendConfig(
        hosts=hosts,
        url_pattern=url,
        method=read_method(node, ep.method),
        encoding=encoding,
        is_collection=node.boolean("is_collection"),
        target=node.string("target"),
        allow=allow,
        deny=deny,
        mapping=mapping,
        group=node.string("group"),
        input_headers=headers,
        input_query_strings=query,
        flatmap_filter=flatmap,
        return_error_details=details,
        return_error_code=code,
        timeout=ep.timeout,
        concurrent_calls=ep.concurrent_calls,
        max_body_bytes=read_max_body(
            extra.nodes.get("busgw/backend"), svc.max_body_bytes
        ),
        disable_host_sanitize=raw_hosts,
        extra_config=extra.frozen,
        http_cache=read_http_cache(extra.nodes.get("qos/http-cache")),
        fleet=fleet,
    )
    if fleet is not None:
        check_fleet_backend(node, config)
    node.finish(krakend.BACKEND_KEYS, krakend.UNSUPPORTED_BACKEND_KEYS)
    return config


def _read_backend_encoding(node: Node, ep: EndpointContext) -> str:
    """``encoding``, forced to no-op under a no-op endpoint (KrakenD)."""
    encoding = read_encoding(
        node,
        "encoding",
        "json",
        BACKEND_ENCODINGS,
        krakend.UNSUPPORTED_BACKEND_ENCODINGS,
    )
    if ep.output_encoding == "no-op":
        if node.has("encoding") and encoding != "no-op":
            node.report.warn(
                node.at("encoding"),
                f"encoding {q(encoding)} is replaced by no-op, because the"
                " endpoint's output_encoding is no-op",
            )
        return "no-op"
    if encoding == "no-op":
        node.report.error(
            node.at("encoding"),
            "no-op encoding needs the endpoint's output_encoding to be"
            f" no-op too (it is {q(ep.output_encoding)})",
        )
    return encoding


def _read_hosts(node: Node, svc: ServiceDefaults, raw: bool) -> Tuple[str, ...]:
    """The backend's hosts, or the service's when it has none."""
    given = node.strings("host")
    if not given:
        if not svc.hosts and svc.hosts_ok:
            node.report.error(
                node.at("host"),
                "no host: set host on this backend or on the service",
            )
        # Service hosts were checked at the service level already.
        return tuple(clean_host(h, raw) for h in svc.hosts)
    loc = node.at("host")
    single = isinstance(node.raw.get("host"), str)
    hosts: list[str] = []
    for index, host in enumerate(given):
        try:
            hosts.append(clean_host(host, raw))
        except ValueError as exc:
            node.report.error(loc if single else loc.item(index), str(exc))
    return tuple(hosts)


def _check_url_pattern(
    node: Node, url: str, index: int, ep: EndpointContext
) -> None:
    """Report a url_pattern that is not a path or has placeholders the
    endpoint cannot fill."""
    if not url:
        return
    loc = node.at("url_pattern")
    if not url.startswith("/"):
        node.report.error(loc, f'must start with "/", got {q(url)}')
    names, problems = url_placeholders(url)
    for problem in problems:
        node.report.error(loc, problem)
    if not ep.params_ok:
        # A broken endpoint path has no reliable params: do not pile on.
        return
    for name in names:
        why = check_url_placeholder(
            name, params=ep.params, sequential=ep.sequential, index=index
        )
        if why:
            node.report.error(loc, why)


def _read_mapping(node: Node) -> Mapping[str, str]:
    """``mapping``: an object of strings (old name -> new name)."""
    child = node.child("mapping")
    if child is None:
        return MappingProxyType({})
    result: dict[str, str] = {}
    for old, new in child.raw.items():
        if not isinstance(new, str):
            child.report.error(
                child.at(old), f"expected a string, got {describe(new)}"
            )
            continue
        if "." in new:
            # lura renames top-level keys only and cuts the new name.
            child.report.warn(
                child.at(old),
                f"mapping renames top-level keys only; {q(new)} is cut to"
                f" {q(new.split('.')[0])}",
            )
        result[old] = new
    return MappingProxyType(result)


def _check_narrowing(
    node: Node,
    key: str,
    names: Optional[Tuple[str, ...]],
    endpoint_names: Tuple[str, ...],
    default: Tuple[str, ...],
) -> None:
    """Warn about backend input_headers / input_query_strings entries the
    endpoint never forwards: the backend list only narrows it."""
    if not names:
        return
    forwarded = endpoint_names or default
    if "*" in forwarded:
        return
    loc = node.at(key)
    single = isinstance(node.raw.get(key), str)
    for index, name in enumerate(names):
        if name != "*" and name not in forwarded:
            node.report.warn(
                loc if single else loc.item(index),
                f"the endpoint does not forward {q(name)}, so this backend"
                " never receives it",
            )
