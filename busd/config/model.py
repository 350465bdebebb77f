"""The typed, frozen form of a busgw (KrakenD v3) config.

``busd.config.load`` builds these from JSON once; nothing mutates them
afterwards. Durations are floats in seconds. Defaults have already flowed
service -> endpoint -> backend, so every field holds its effective value.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping, Optional, Tuple

import attrs

from busd._tls_model import ClientTLSConfig
from busd.config._telemetry import TelemetryConfig
from busd.config._http_cache import HttpCacheConfig
from busd.config._health import HealthConfig
from busd.config._inbound import InboundConfig
from busd.config._bus import BusConfig
from busd.config._central import CentralRoleConfig
from busd.config._fleet_backend import FleetBackendConfig
from busd.limits import RequestLimits
from busd.qos.ratelimit import RateLimitConfig
from busd.security.cors import CorsConfig

if TYPE_CHECKING:  # busd.auth.config imports busd.config while it loads
    from busd.auth.config import ValidatorConfig

__all__ = [
    "FlatmapOp",
    "StaticResponse",
    "BackendConfig",
    "EndpointConfig",
    "RouterOptions",
    "GatewayConfig",
    "EMPTY_MAPPING",
    "DEFAULT_MAX_BODY_BYTES",
    "OUTPUT_ENCODINGS",
    "BACKEND_ENCODINGS",
    "STATIC_STRATEGIES",
    "METHODS",
]

EMPTY_MAPPING: Mapping[str, Any] = MappingProxyType({})
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
OUTPUT_ENCODINGS = ("json", "json-collection", "string", "no-op")
BACKEND_ENCODINGS = ("json", "safejson", "string", "no-op")
STATIC_STRATEGIES = ("always", "success", "errored", "complete", "incomplete")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@attrs.frozen(kw_only=True)
class FlatmapOp:
    """One flatmap_filter operation: ``move``/``append`` take two dot paths
    (``args == (from, to)``), ``del`` takes one or more."""

    type: str
    args: Tuple[str, ...]


@attrs.frozen(kw_only=True)
class StaticResponse:
    """``extra_config.proxy.static`` on an endpoint."""

    data: Mapping[str, Any]
    strategy: str = "always"


@attrs.frozen(kw_only=True)
class BackendConfig:
    """One backend of an endpoint, with every default resolved.

    ``hosts`` are already sanitised (``http://name:port``, no path) unless
    ``disable_host_sanitize``. ``input_headers`` / ``input_query_strings``
    are ``None`` when the backend does not narrow the endpoint's lists.
    ``timeout`` and ``concurrent_calls`` are the endpoint's (as in KrakenD
    CE, where they are not configurable per backend).
    """

    hosts: Tuple[str, ...]
    url_pattern: str
    method: str
    encoding: str = "json"
    is_collection: bool = False
    target: str = ""
    allow: Tuple[str, ...] = ()
    deny: Tuple[str, ...] = ()
    mapping: Mapping[str, str] = EMPTY_MAPPING
    group: str = ""
    input_headers: Optional[Tuple[str, ...]] = None
    input_query_strings: Optional[Tuple[str, ...]] = None
    flatmap_filter: Tuple[FlatmapOp, ...] = ()
    return_error_details: str = ""
    return_error_code: bool = False
    timeout: float = 2.0
    concurrent_calls: int = 1
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    disable_host_sanitize: bool = False
    extra_config: Mapping[str, Any] = EMPTY_MAPPING
    #: qos/http-cache (busd.pipeline.cache), None when not cached.
    http_cache: Optional[HttpCacheConfig] = None
    #: busgw/fleet (busd.central.live): call every bus of the central's
    #: fleet instead of ``hosts``; None for an ordinary backend.
    fleet: Optional[FleetBackendConfig] = None


@attrs.frozen(kw_only=True)
class EndpointConfig:
    """One endpoint object; ``params`` are the ``{placeholders}`` of
    ``endpoint`` in order of appearance."""

    endpoint: str
    method: str
    backends: Tuple[BackendConfig, ...]
    timeout: float = 2.0
    cache_ttl: float = 0.0
    output_encoding: str = "json"
    concurrent_calls: int = 1
    input_headers: Tuple[str, ...] = ()
    input_query_strings: Tuple[str, ...] = ()
    sequential: bool = False
    static: Optional[StaticResponse] = None
    flatmap_filter: Tuple[FlatmapOp, ...] = ()
    params: Tuple[str, ...] = ()
    extra_config: Mapping[str, Any] = EMPTY_MAPPING
    #: The JWT validation this endpoint runs (its own auth/validator or the
    #: service's busgw/auth default), None when it is public.
    auth: Optional[ValidatorConfig] = None
    #: qos/ratelimit/router (busd.qos.ratelimit), None when unlimited.
    rate_limit: Optional[RateLimitConfig] = None


@attrs.frozen(kw_only=True)
class RouterOptions:
    """The supported subset of ``extra_config.router`` (KRAKEND.md 3.14).

    ``error_body`` maps ``"404"`` / ``"405"`` to the JSON value to answer
    with instead of busgw's default ``{"error": ..., "status": ...}``.
    """

    return_error_msg: bool = False
    disable_health: bool = False
    health_path: str = "/__health"
    error_body: Mapping[str, Any] = EMPTY_MAPPING


@attrs.frozen(kw_only=True)
class GatewayConfig:
    """A whole, valid config. ``source`` is the file it came from."""

    version: int = 3
    name: str = ""
    port: int = 8080
    listen_ip: str = ""
    hosts: Tuple[str, ...] = ()
    timeout: float = 2.0
    cache_ttl: float = 0.0
    output_encoding: str = "json"
    debug_endpoint: bool = False
    endpoints: Tuple[EndpointConfig, ...] = ()
    router: RouterOptions = RouterOptions()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    extra_config: Mapping[str, Any] = EMPTY_MAPPING
    source: str = ""
    client_tls: ClientTLSConfig = ClientTLSConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    #: security/cors (busd.security.cors), None when CORS is off.
    cors: Optional[CorsConfig] = None
    #: Inbound request limits (busd.limits).
    limits: RequestLimits = RequestLimits()
    #: The service's JWT default (busgw/auth.validator), which built-in
    #: routes of the bus role (/health, inbound topics) apply too.
    default_auth: Optional[ValidatorConfig] = None
    #: busgw/health (busd.health), None when the bus reports no health.
    health: Optional[HealthConfig] = None
    #: busgw/inbound (busd.bus.inbound), None when no topic is configured.
    inbound: Optional[InboundConfig] = None
    #: busgw/bus (busd.bus): the bus id, state dir, central and events.
    bus: Optional[BusConfig] = None
    #: busgw/central (busd.central): the fleet, its poller, event ingest.
    central: Optional[CentralRoleConfig] = None
