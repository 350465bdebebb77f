"""Config loading: KrakenD v3 JSON to frozen busgw objects.

``load_config(path)`` is the one entry point for ``busgw check``, the
twistd plugin and hot reload; ``parse_config(raw)`` validates JSON that is
already decoded.
"""

from busd.config.durations import parse_duration
from busd.config.load import LoadResult, load_config, parse_config
from busd.config.model import (
    BACKEND_ENCODINGS,
    DEFAULT_MAX_BODY_BYTES,
    EMPTY_MAPPING,
    METHODS,
    OUTPUT_ENCODINGS,
    STATIC_STRATEGIES,
    BackendConfig,
    EndpointConfig,
    FlatmapOp,
    GatewayConfig,
    RouterOptions,
    StaticResponse,
)
from busd.errors import ConfigError, ConfigProblem

__all__ = [
    "load_config",
    "parse_config",
    "parse_duration",
    "LoadResult",
    "ConfigError",
    "ConfigProblem",
    "GatewayConfig",
    "EndpointConfig",
    "BackendConfig",
    "RouterOptions",
    "StaticResponse",
    "FlatmapOp",
    "EMPTY_MAPPING",
    "DEFAULT_MAX_BODY_BYTES",
    "OUTPUT_ENCODINGS",
    "BACKEND_ENCODINGS",
    "STATIC_STRATEGIES",
    "METHODS",
]
