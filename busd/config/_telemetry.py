"""``extra_config."busgw/telemetry"``: access log, request ids, metrics.

Read here (not in ``busd.telemetry``) so the config package never imports
twisted.web or prometheus_client; the behaviour is in ``busd.telemetry``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import attrs

from busd.config._walk import Node

__all__ = [
    "TelemetryConfig",
    "AdminConfig",
    "read_telemetry",
    "TELEMETRY_KEYS",
    "DEFAULT_ADMIN_LISTEN",
]

TELEMETRY_KEYS = frozenset({"access_log", "skip_paths", "trust_request_id", "admin"})
_ADMIN_KEYS = frozenset({"listen", "metrics_path", "reload_path"})
DEFAULT_ADMIN_LISTEN = "tcp:9091:interface=127.0.0.1"


@attrs.frozen(kw_only=True)
class AdminConfig:
    """The admin listener: its own ``listen`` endpoint string (default
    loopback only, never the public listener), Prometheus metrics at
    ``metrics_path`` and ``POST reload_path`` to reload the config."""

    listen: str = DEFAULT_ADMIN_LISTEN
    metrics_path: str = "/metrics"
    reload_path: str = "/reload"


@attrs.frozen(kw_only=True)
class TelemetryConfig:
    """Access log on/off and the paths it skips, whether a caller's
    ``X-Request-Id`` is kept, and the admin listener (off when None)."""

    access_log: bool = True
    skip_paths: Tuple[str, ...] = ("/__health",)
    trust_request_id: bool = True
    admin: Optional[AdminConfig] = None


def read_telemetry(node: Optional[Node]) -> TelemetryConfig:
    """``extra_config."busgw/telemetry"`` at the service level."""
    if node is None:
        return TelemetryConfig()
    skip = node.strings("skip_paths")
    admin: Optional[AdminConfig] = None
    a = node.child("admin")
    if a is not None:
        admin = AdminConfig(
            listen=a.string("listen", DEFAULT_ADMIN_LISTEN),
            metrics_path=_path(a, "metrics_path", "/metrics"),
            reload_path=_path(a, "reload_path", "/reload"),
        )
        a.finish(_ADMIN_KEYS)
    config = TelemetryConfig(
        access_log=node.boolean("access_log", True),
        skip_paths=skip if skip is not None else ("/__health",),
        trust_request_id=node.boolean("trust_request_id", True),
        admin=admin,
    )
    node.finish(TELEMETRY_KEYS)
    return config




def _path(node: Node, key: str, default: str) -> str:
    path = node.string(key, default)
    if not path.startswith("/"):
        node.report.error(node.at(key), f'must start with "/", got "{path}"')
        return default
    return path
