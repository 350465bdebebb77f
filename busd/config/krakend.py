"""What busgw knows about KrakenD v3 config keys (KRAKEND.md sections 1-3).

These tables decide, for every key the loader meets, whether busgw reads
it, knows it as a KrakenD option it does not implement (a warning), or has
never heard of it (an "unknown key" warning). A feature that starts
supporting a key or a namespace moves it from the "unsupported" tables to
the supported ones here, and the loader follows.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

__all__ = [
    "SERVICE_KEYS",
    "ENDPOINT_KEYS",
    "BACKEND_KEYS",
    "UNSUPPORTED_SERVICE_KEYS",
    "UNSUPPORTED_ENDPOINT_KEYS",
    "UNSUPPORTED_BACKEND_KEYS",
    "UNSUPPORTED_DEFAULTS",
    "V2_RENAMES",
    "NAMESPACE_ALIASES",
    "SUPPORTED_NAMESPACES",
    "KRAKEND_NAMESPACES",
    "KRAKEND_NAMESPACE_PREFIXES",
    "BUSGW_NAMESPACE_PREFIX",
    "ROUTER_KEYS",
    "UNSUPPORTED_ROUTER_KEYS",
    "PROXY_ENDPOINT_KEYS",
    "PROXY_BACKEND_KEYS",
    "UNSUPPORTED_PROXY_KEYS",
    "BACKEND_HTTP_KEYS",
    "BUSGW_BACKEND_KEYS",
    "CLIENT_TLS_KEYS",
    "UNSUPPORTED_CLIENT_TLS_KEYS",
    "UNSUPPORTED_OUTPUT_ENCODINGS",
    "UNSUPPORTED_BACKEND_ENCODINGS",
    "IGNORED_ROOT_KEYS",
]

_NOT_SUPPORTED = "not supported by busgw (ignored)"

# Keys busgw reads, per level.
SERVICE_KEYS = frozenset(
    {
        "version",
        "name",
        "port",
        "listen_ip",
        "host",
        "timeout",
        "cache_ttl",
        "output_encoding",
        "debug_endpoint",
        "endpoints",
        "extra_config",
        "client_tls",
        "allow_insecure_connections",
        # HTTP server limits (busd.limits).
        "read_timeout",
        "idle_timeout",
        "read_header_timeout",
        "max_header_bytes",
    }
)
ENDPOINT_KEYS = frozenset(
    {
        "endpoint",
        "method",
        "backend",
        "concurrent_calls",
        "timeout",
        "cache_ttl",
        "output_encoding",
        "input_query_strings",
        "input_headers",
        "extra_config",
    }
)
BACKEND_KEYS = frozenset(
    {
        "host",
        "url_pattern",
        "method",
        "encoding",
        "is_collection",
        "target",
        "allow",
        "deny",
        "mapping",
        "group",
        "input_headers",
        "input_query_strings",
        "disable_host_sanitize",
        "extra_config",
    }
)


def _unsupported(*keys: str) -> Mapping[str, str]:
    return MappingProxyType({key: _NOT_SUPPORTED for key in keys})


# KrakenD CE keys that busgw recognises but does not implement; the value
# is the warning message.
_UNSUPPORTED_SERVICE_KEYS = _unsupported(
    "echo_endpoint",
    "write_timeout",
    "disable_keep_alives",
    "disable_compression",
    "max_idle_connections",
    "max_idle_connections_per_host",
    "idle_connection_timeout",
    "response_header_timeout",
    "expect_continue_timeout",
    "dialer_timeout",
    "dialer_fallback_delay",
    "dialer_keep_alive",
    "disable_rest",
    "tls",
    "use_h2c",
    "sequential_start",
    "dns_cache_ttl",
    "max_shutdown_wait_time",
    "plugin",
    "async_agent",
)
UNSUPPORTED_SERVICE_KEYS: Mapping[str, str] = MappingProxyType(
    {
        **_UNSUPPORTED_SERVICE_KEYS,
        # KrakenD then serves HTTPS only; busgw would serve plain HTTP.
        "tls": _NOT_SUPPORTED + "; busgw serves plain HTTP unless started"
        " with --listen ssl:PORT:privateKey=KEY.pem:certKey=CERT.pem",
    }
)
UNSUPPORTED_ENDPOINT_KEYS: Mapping[str, str] = MappingProxyType({})
_PER_BACKEND = (
    "not configurable per backend in KrakenD CE (ignored; the endpoint's"
    " value applies)"
)
UNSUPPORTED_BACKEND_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "sd": _NOT_SUPPORTED,
        "sd_scheme": _NOT_SUPPORTED,
        "timeout": _PER_BACKEND,
        "concurrent_calls": _PER_BACKEND,
    }
)

# Unsupported options whose KrakenD default value busgw matches anyway;
# given with exactly this value they draw no warning.
UNSUPPORTED_DEFAULTS: Mapping[str, object] = MappingProxyType(
    {
        "sd": "static",
        "sd_scheme": "http",
        "echo_endpoint": False,
        "disable_rest": False,
        "use_h2c": False,
        "sequential_start": False,
        "hide_version_header": False,
        "auto_options": False,
        "disable_access_log": False,
        "shadow": False,
    }
)

# KrakenD v2 names accepted with a warning: old name -> v3 name.
V2_RENAMES: Mapping[str, str] = MappingProxyType(
    {
        "headers_to_pass": "input_headers",
        "querystring_params": "input_query_strings",
        "whitelist": "allow",
        "blacklist": "deny",
    }
)

# Old long namespace names -> short names (krakend-ce cmd/krakend-ce/main.go).
NAMESPACE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "github_com/devopsfaith/krakend/transport/http/server/handler": (
            "plugin/http-server"
        ),
        "github.com/devopsfaith/krakend/transport/http/client/executor": (
            "plugin/http-client"
        ),
        "github.com/devopsfaith/krakend/proxy/plugin": (
            "plugin/req-resp-modifier"
        ),
        "github.com/devopsfaith/krakend/proxy": "proxy",
        "github_com/luraproject/lura/router/gin": "router",
        "github.com/devopsfaith/krakend-ratelimit/juju/router": (
            "qos/ratelimit/router"
        ),
        "github.com/devopsfaith/krakend-ratelimit/juju/proxy": (
            "qos/ratelimit/proxy"
        ),
        "github.com/devopsfaith/krakend-httpcache": "qos/http-cache",
        "github.com/devopsfaith/krakend-circuitbreaker/gobreaker": (
            "qos/circuit-breaker"
        ),
        "github.com/devopsfaith/krakend-oauth2-clientcredentials": (
            "auth/client-credentials"
        ),
        "github.com/devopsfaith/krakend-jose/validator": "auth/validator",
        "github.com/devopsfaith/krakend-jose/signer": "auth/signer",
        "github_com/devopsfaith/bloomfilter": "auth/revoker",
        "github_com/devopsfaith/krakend-botdetector": "security/bot-detector",
        "github_com/devopsfaith/krakend-httpsecure": "security/http",
        "github_com/devopsfaith/krakend-cors": "security/cors",
        "github.com/devopsfaith/krakend-cel": "validation/cel",
        "github.com/devopsfaith/krakend-jsonschema": "validation/json-schema",
        "github.com/devopsfaith/krakend-amqp/agent": "async/amqp",
        "github.com/devopsfaith/krakend-amqp/consume": "backend/amqp/consumer",
        "github.com/devopsfaith/krakend-amqp/produce": "backend/amqp/producer",
        "github.com/devopsfaith/krakend-lambda": "backend/lambda",
        "github.com/devopsfaith/krakend-pubsub/publisher": (
            "backend/pubsub/publisher"
        ),
        "github.com/devopsfaith/krakend-pubsub/subscriber": (
            "backend/pubsub/subscriber"
        ),
        "github.com/devopsfaith/krakend/transport/http/client/graphql": (
            "backend/graphql"
        ),
        "github.com/devopsfaith/krakend/http": "backend/http",
        "github_com/devopsfaith/krakend-gelf": "telemetry/gelf",
        "github_com/devopsfaith/krakend-gologging": "telemetry/logging",
        "github_com/devopsfaith/krakend-logstash": "telemetry/logstash",
        "github_com/devopsfaith/krakend-metrics": "telemetry/metrics",
        "github_com/letgoapp/krakend-influx": "telemetry/influx",
        "github_com/devopsfaith/krakend-influx": "telemetry/influx",
        "github_com/Jozefiel/krakend-influx2": "telemetry/influx2",
        "github_com/devopsfaith/krakend-opencensus": "telemetry/opencensus",
        "github.com/devopsfaith/krakend-lua/router": "modifier/lua-endpoint",
        "github.com/devopsfaith/krakend-lua/proxy": "modifier/lua-proxy",
        "github.com/devopsfaith/krakend-lua/proxy/backend": (
            "modifier/lua-backend"
        ),
        "github.com/devopsfaith/krakend-martian": "modifier/martian",
    }
)

BUSGW_NAMESPACE_PREFIX = "busgw/"

# Namespaces busgw reads, by the level they belong to.
SUPPORTED_NAMESPACES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "service": frozenset(
            {"router", "busgw/backend", "busgw/telemetry", "busgw/auth"}
            | {"security/cors", "busgw/limits"}
            | {"busgw/health", "busgw/inbound"}
            | {"busgw/bus", "busgw/central"}
        ),
        "endpoint": frozenset({"proxy", "auth/validator", "busgw/auth"})
        | {"qos/ratelimit/router"},
        "backend": frozenset({"proxy", "backend/http", "busgw/backend"})
        | {"qos/http-cache"}
        | {"busgw/fleet"},
    }
)
#: Namespaces that may also be a boolean: ``true`` reads as ``{}`` (every
#: default), ``false`` as absent.
SWITCH_NAMESPACES = frozenset({"busgw/fleet"})

# Other KrakenD namespaces (CE and EE): recognised, ignored with a warning.
KRAKEND_NAMESPACES = frozenset(
    set(NAMESPACE_ALIASES.values())
    | {
        "auth/api-keys",
        "auth/gcp",
        "auth/ntlm",
        "backend/http/client",
        "backend/grpc",
        "backend/soap",
        "documentation/openapi",
        "governance/quota",
        "grpc",
        "modifier/jmespath",
        "modifier/request-body-generator",
        "modifier/response-body-generator",
        "modifier/response-headers",
        "plugin/middleware",
        "qos/ratelimit/service",
        "qos/ratelimit/tiered",
        "security/policies",
        "server/static-filesystem",
        "server/virtualhost",
        "telemetry/moesif",
        "telemetry/newrelic",
        "telemetry/opentelemetry",
        "telemetry/opentelemetry-security",
        "validation/response-json-schema",
        "websocket",
    }
)
# Any other name under these families is taken as a KrakenD namespace too,
# so a newer KrakenD option reads as "not supported", not as a typo.
KRAKEND_NAMESPACE_PREFIXES = (
    "async/",
    "auth/",
    "backend/",
    "documentation/",
    "governance/",
    "modifier/",
    "plugin/",
    "qos/",
    "security/",
    "server/",
    "telemetry/",
    "validation/",
)

ROUTER_KEYS = frozenset(
    {"return_error_msg", "disable_health", "health_path", "error_body"}
)
UNSUPPORTED_ROUTER_KEYS: Mapping[str, str] = _unsupported(
    "logger_skip_paths",
    "disable_access_log",
    "hide_version_header",
    "auto_options",
    "disable_redirect_trailing_slash",
    "disable_redirect_fixed_path",
    "disable_handle_method_not_allowed",
    "remove_extra_slash",
    "disable_path_decoding",
    "forwarded_by_client_ip",
    "remote_ip_headers",
    "trusted_proxies",
    "max_multipart_memory",
    "app_engine",
    "use_h2c",
)

PROXY_ENDPOINT_KEYS = frozenset({"sequential", "static", "flatmap_filter"})
PROXY_BACKEND_KEYS = frozenset({"flatmap_filter"})
UNSUPPORTED_PROXY_KEYS: Mapping[str, str] = _unsupported(
    "sequential_propagated_params",
    "combiner",
    "shadow",
    "shadow_timeout",
    "strategy",
    "force_sandboxed_request",
)

BACKEND_HTTP_KEYS = frozenset({"return_error_details", "return_error_code"})
BUSGW_BACKEND_KEYS = frozenset({"max_body_bytes"})

# Service-level "client_tls" (busd.config._tls). Go's cipher and curve
# numbers have no OpenSSL equivalent here; OpenSSL's defaults apply.
CLIENT_TLS_KEYS = frozenset(
    {
        "allow_insecure_connections",
        "ca_certs",
        "disable_system_ca_pool",
        "client_certs",
        "min_version",
        "max_version",
    }
)
UNSUPPORTED_CLIENT_TLS_KEYS: Mapping[str, str] = _unsupported(
    "cipher_suites", "curve_preferences"
)

# KrakenD encodings busgw does not implement (an error, since the output
# would differ), as opposed to names KrakenD does not know either.
UNSUPPORTED_OUTPUT_ENCODINGS = frozenset({"xml", "yaml", "negotiate"})
UNSUPPORTED_BACKEND_ENCODINGS = frozenset({"xml", "rss"})

# Keys at the root that belong to editors, not to KrakenD.
IGNORED_ROOT_KEYS = frozenset({"$schema"})
