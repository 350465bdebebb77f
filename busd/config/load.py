"""Load a KrakenD v3 JSON config into frozen busgw objects.

Two phases, as lura's parseable structs and ``normalize()``: ``json.loads``
first (a syntax error names line and column), then a path-aware walk that
builds :mod:`busd.config.model` objects with every default resolved. The
walk never stops at the first problem: :class:`ConfigError` carries all
of them, each with its JSON path, in document order.
"""

from __future__ import annotations

import ipaddress
import json
import os
from typing import Any, Mapping, Optional, Tuple

import attrs

# A module import: busd.auth.config imports busd.config while it loads.
from busd.auth import config as auth_config
from busd.config import krakend
from busd.config._endpoint import read_endpoint
from busd.config._tls import read_client_tls
from busd.config._telemetry import read_telemetry
from busd.config._health import NAMESPACE as HEALTH, read_health
from busd.config._inbound import NAMESPACE as INBOUND, read_inbound
from busd.config._bus import NAMESPACE as BUS, read_bus
from busd.config._fleet_backend import check_fleet_backends
from busd.config._central import NAMESPACE as CENTRAL
from busd.config._central_read import read_central
from busd.config.env import apply_environment
from busd.config._fields import ServiceDefaults, clean_host, read_encoding
from busd.config._namespaces import read_extra, read_max_body, read_router
from busd.limits import NAMESPACE as LIMITS, read_limits
from busd.security.cors import NAMESPACE as CORS, read_cors
from busd.config._syntax import q, route_key
from busd.config._json import JSONObject, as_int, describe
from busd.config._walk import MISSING, ROOT, Node, Report, object_items
from busd.config.model import (
    DEFAULT_MAX_BODY_BYTES,
    OUTPUT_ENCODINGS,
    EndpointConfig,
    GatewayConfig,
)
from busd.errors import ConfigError, ConfigProblem

__all__ = ["LoadResult", "load_config", "parse_config", "decode_json"]

# busgw's own built-in paths, reserved whatever the router options say.
_RESERVED_PREFIXES = ("/__debug", "/__echo", "/__health")
_NOT_JSON_EXTENSIONS = (".yaml", ".yml", ".toml")
# An endpoint as read: its index, node, config and whether its path is valid.
_Read = Tuple[int, Node, EndpointConfig, bool]


@attrs.frozen
class LoadResult:
    """A valid config and the warnings found while loading it."""

    config: GatewayConfig
    warnings: Tuple[ConfigProblem, ...]


def load_config(
    path: str,
    *,
    strict: bool = False,
    environ: Optional[Mapping[str, str]] = None,
) -> LoadResult:
    """Read, parse and validate the JSON config file at ``path``.

    Raises :class:`ConfigError` (``source=path``) listing every problem
    when the file cannot be read, is not JSON, or has at least one error,
    or with ``strict`` at least one warning.
    """
    path = os.fspath(path)
    if path.lower().endswith(_NOT_JSON_EXTENSIONS):
        raise ConfigError(
            [ConfigProblem("", "busgw reads JSON config files only")],
            source=path,
        )
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            [ConfigProblem("", f"cannot read the config file: {reason}")],
            source=path,
        ) from None
    try:
        # KrakenD (Go) rejects a BOM; accepting one costs nothing.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    "", f"the file is not UTF-8 text (byte {exc.start})"
                )
            ],
            source=path,
        ) from None
    raw = decode_json(text, source=path)
    return parse_config(raw, source=path, strict=strict, environ=environ)


def decode_json(text: str, *, source: str = "") -> Any:
    """``json.loads`` that rejects NaN/Infinity (as Go does), remembers
    repeated keys, and turns a syntax error into a :class:`ConfigError`
    naming line and column."""

    def reject(token: str) -> Any:
        raise _NotJSON(token)

    try:
        return json.loads(
            text,
            object_pairs_hook=JSONObject.from_pairs,
            parse_constant=reject,
        )
    except json.JSONDecodeError as exc:
        message = (
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        )
    except _NotJSON as exc:
        message = f"invalid JSON: {exc.args[0]} is not a JSON value"
    raise ConfigError([ConfigProblem("", message)], source=source)


class _NotJSON(ValueError):
    """NaN, Infinity or -Infinity, which Python reads and JSON forbids."""


def parse_config(
    raw: object,
    *,
    source: str = "",
    strict: bool = False,
    environ: Optional[Mapping[str, str]] = None,
) -> LoadResult:
    """Validate decoded JSON ``raw`` and build a :class:`GatewayConfig`.

    Raises :class:`ConfigError` holding every problem (errors and
    warnings, in document order) when there is at least one error, or,
    with ``strict``, at least one warning (then reported as errors).
    """
    report = Report()
    # ${NAME} placeholders and KRAKEND_* overrides (busd.config.env);
    # ``environ`` defaults to the process environment.
    raw = apply_environment(
        report, raw, os.environ if environ is None else environ
    )
    config = _read_service(report, raw, source)
    problems = report.problems(strict=strict)
    if config is None or any(p.severity == "error" for p in problems):
        raise ConfigError(problems, source=source)
    return LoadResult(config=config, warnings=problems)


def _read_service(
    report: Report, raw: object, source: str
) -> Optional[GatewayConfig]:
    """The root object: service keys, then every endpoint."""
    if not isinstance(raw, Mapping):
        report.error(
            ROOT, f"the config must be a JSON object, got {describe(raw)}"
        )
        return None
    node = Node(report, ROOT, raw)
    _check_version(node)
    listen_ip = node.string("listen_ip")
    if listen_ip:
        try:
            ipaddress.ip_address(listen_ip)
        except ValueError:
            report.error(
                node.at("listen_ip"),
                f"not an IPv4 or IPv6 address: {q(listen_ip)}",
            )
    raw_hosts, hosts, hosts_ok = _read_service_hosts(node)
    extra = read_extra(node, "service")
    router = read_router(extra.nodes.get("router"))
    telemetry = read_telemetry(extra.nodes.get("busgw/telemetry"))
    max_body = read_max_body(
        extra.nodes.get("busgw/backend"), DEFAULT_MAX_BODY_BYTES
    )
    timeout = node.duration("timeout", 2.0)
    cache_ttl = node.duration("cache_ttl", 0.0)
    output = read_encoding(
        node,
        "output_encoding",
        "json",
        OUTPUT_ENCODINGS,
        krakend.UNSUPPORTED_OUTPUT_ENCODINGS,
    )
    svc = ServiceDefaults(
        hosts=raw_hosts,
        hosts_ok=hosts_ok,
        timeout=timeout,
        cache_ttl=cache_ttl,
        output_encoding=output,
        max_body_bytes=max_body,
        auth=auth_config.read_service_auth(extra.nodes.get("busgw/auth")),
    )
    endpoints: list[EndpointConfig] = []
    read: list[_Read] = []
    items = node.array("endpoints") or []
    for index, child in object_items(report, node.at("endpoints"), items):
        endpoint, path_ok = read_endpoint(child, svc)
        endpoints.append(endpoint)
        read.append((index, child, endpoint, path_ok))
    _check_routes(read, router.health_path)
    check_fleet_backends(
        report, [(n, e) for _, n, e, _ in read], "busgw/central" in extra.frozen
    )
    # The bus role's own routes (busd.health, busd.bus.inbound).
    reserved = _RESERVED_PREFIXES + (router.health_path,)
    health = read_health(extra.nodes.get(HEALTH), endpoints, reserved)
    inbound = read_inbound(
        extra.nodes.get(INBOUND),
        endpoints,
        reserved,
        (health.path,) if health is not None else (),
    )
    taken = [health.path] if health is not None else []
    for topic in inbound.topics if inbound is not None else ():
        taken += [topic.path, topic.path.rstrip("/") + "/history"]
    bus = read_bus(
        extra.nodes.get(BUS),
        default_auth=svc.auth,
        endpoints=endpoints,
        reserved=reserved,
        taken=taken,
    )
    if bus is not None:
        taken.append(bus.events.path)
    central = read_central(
        extra.nodes.get(CENTRAL), os.getcwd(), endpoints, reserved, taken
    )
    config = GatewayConfig(
        version=3,
        name=node.string("name"),
        port=node.integer("port", 8080, minimum=1, maximum=65535),
        listen_ip=listen_ip,
        hosts=hosts,
        timeout=timeout,
        cache_ttl=cache_ttl,
        output_encoding=output,
        debug_endpoint=node.boolean("debug_endpoint"),
        endpoints=tuple(endpoints),
        router=router,
        max_body_bytes=max_body,
        extra_config=extra.frozen,
        source=source,
        client_tls=read_client_tls(node),
        telemetry=telemetry,
        cors=read_cors(extra.nodes.get(CORS)),
        limits=read_limits(node, extra.nodes.get(LIMITS)),
        default_auth=svc.auth,
        health=health,
        inbound=inbound,
        bus=bus,
        central=central,
    )
    node.finish(
        krakend.SERVICE_KEYS,
        krakend.UNSUPPORTED_SERVICE_KEYS,
        ignored=krakend.IGNORED_ROOT_KEYS,
    )
    return config


def _check_version(node: Node) -> None:
    """``version`` must be exactly 3 (KrakenD v2.x configs)."""
    value = node.take("version", required='add "version": 3')
    if value is MISSING:
        return
    number = as_int(value)
    if number is None:
        node.mismatch("version", "the integer 3", value)
    elif number != 3:
        node.report.error(
            node.at("version"), f"unsupported version: {number} (want: 3)"
        )


def _read_service_hosts(
    node: Node,
) -> Tuple[Tuple[str, ...], Tuple[str, ...], bool]:
    """The service ``host`` list: the valid entries as given (backends
    sanitise them or not, each by its own disable_host_sanitize), the same
    sanitised, and False when hosts were given but none is valid."""
    given = node.strings("host") or ()
    loc = node.at("host")
    single = isinstance(node.raw.get("host"), str)
    raw: list[str] = []
    clean: list[str] = []
    for index, host in enumerate(given):
        try:
            clean.append(clean_host(host, False))
        except ValueError as exc:
            node.report.error(loc if single else loc.item(index), str(exc))
        else:
            raw.append(host)
    return tuple(raw), tuple(clean), bool(raw) or not given


def _check_routes(read: list[_Read], health_path: str) -> None:
    """Duplicate routes and paths reserved for busgw's own endpoints."""
    reserved = _RESERVED_PREFIXES + (health_path,)
    seen: dict[tuple[str, str], tuple[int, str]] = {}
    for index, node, endpoint, path_ok in read:
        if not path_ok:
            continue
        path = endpoint.endpoint
        loc = node.at("endpoint")
        for prefix in reserved:
            if _under(path, prefix):
                node.report.error(
                    loc,
                    f"{q(path)} is reserved for busgw's built-in endpoint"
                    f" {prefix}",
                )
                break
        key = route_key(endpoint.method, path)
        if key in seen:
            first, first_path = seen[key]
            node.report.error(
                loc,
                f"duplicate route: {endpoint.method} {path} is already"
                f" declared by endpoints[{first}] ({first_path})",
            )
        else:
            seen[key] = (index, path)


def _under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or below it, segment-wise."""
    base = prefix.rstrip("/")
    if not base:
        return path == prefix
    return path == base or path.startswith(base + "/")
