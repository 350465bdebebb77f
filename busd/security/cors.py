"""``security/cors``: the config and the header decisions, pure.

KrakenD CE answers CORS with rs/cors (through krakend-cors); the decisions
here follow it: a preflight is an ``OPTIONS`` request carrying
``Access-Control-Request-Method``, answered 204 before routing, with the
``Access-Control-Allow-*`` headers only when the origin, the method and
every requested header are allowed; an actual request gets
``Access-Control-Allow-Origin`` (``*`` or the request's origin), the
exposed headers and the credentials flag when its origin and method are
allowed. ``Vary: Origin`` is always sent. The resource that applies them
is :mod:`busd.security.cors_resource`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

import attrs

if TYPE_CHECKING:
    # busd.config imports this module (model.py) while it loads.
    from busd.config._walk import Node

__all__ = [
    "NAMESPACE",
    "CORS_KEYS",
    "CorsConfig",
    "CorsPolicy",
    "read_cors",
    "DEFAULT_METHODS",
    "DEFAULT_HEADERS",
    "PREFLIGHT_VARY",
]

NAMESPACE = "security/cors"
CORS_KEYS = frozenset(
    {
        "allow_origins",
        "allow_methods",
        "allow_headers",
        "expose_headers",
        "max_age",
        "allow_credentials",
        "options_passthrough",
        "debug",
    }
)
# rs/cors defaults, which KrakenD gets by passing empty lists.
DEFAULT_METHODS = ("GET", "POST", "HEAD")
DEFAULT_HEADERS = ("Origin", "Accept", "Content-Type", "X-Requested-With")
PREFLIGHT_VARY = (
    "Origin",
    "Access-Control-Request-Method",
    "Access-Control-Request-Headers",
)
Headers = List[Tuple[str, str]]


@attrs.frozen(kw_only=True)
class CorsConfig:
    """A parsed ``security/cors``. Origins are lower-cased; ``("*",)``
    allows any. ``allow_headers`` are canonical (``X-Api-Key``) and always
    include ``Origin``; ``("*",)`` allows any. ``max_age`` is in seconds
    (0: no ``Access-Control-Max-Age``)."""

    allow_origins: Tuple[str, ...] = ("*",)
    allow_methods: Tuple[str, ...] = DEFAULT_METHODS
    allow_headers: Tuple[str, ...] = DEFAULT_HEADERS
    expose_headers: Tuple[str, ...] = ()
    max_age: float = 0.0
    allow_credentials: bool = False
    options_passthrough: bool = False
    debug: bool = False


def read_cors(node: Optional[Node]) -> Optional[CorsConfig]:
    """The service's ``security/cors``, or None when CORS is off."""
    if node is None:
        return None
    origins = _origins(node)
    methods = tuple(m.upper() for m in node.strings("allow_methods") or ())
    headers = _header_names(node, "allow_headers")
    if headers and "*" in headers:
        headers = ("*",)
    elif headers:
        headers = _unique(headers + ("Origin",))
    credentials = node.boolean("allow_credentials")
    if credentials and origins == ("*",):
        node.report.error(
            node.at("allow_credentials"),
            'cannot be true with any origin ("*" or an empty allow_origins):'
            " browsers refuse credentials with a wildcard origin; list the"
            " origins",
        )
    config = CorsConfig(
        allow_origins=origins,
        allow_methods=methods or DEFAULT_METHODS,
        allow_headers=headers or DEFAULT_HEADERS,
        expose_headers=_header_names(node, "expose_headers"),
        max_age=node.duration("max_age", 0.0),
        allow_credentials=credentials,
        options_passthrough=node.boolean("options_passthrough"),
        debug=node.boolean("debug"),
    )
    node.finish(CORS_KEYS)
    return config


def _origins(node: Node) -> Tuple[str, ...]:
    from busd.config._syntax import q

    given = node.strings("allow_origins") or ()
    if not given or "*" in given:
        return ("*",)
    loc = node.at("allow_origins")
    single = isinstance(node.raw.get("allow_origins"), str)
    for index, origin in enumerate(given):
        where = loc if single else loc.item(index)
        if origin.count("*") > 1:
            node.report.error(
                where, f"at most one * wildcard per origin, got {q(origin)}"
            )
        elif "://" not in origin:
            node.report.warn(
                where,
                f"{q(origin)} has no scheme; browsers send origins such as"
                ' "https://app.example.com", so it never matches',
            )
        elif origin.endswith("/") or "/" in origin.split("://", 1)[1]:
            node.report.warn(
                where,
                f"{q(origin)} has a path; browsers send origins without one"
                " (no trailing slash), so it never matches",
            )
    return _unique(tuple(o.lower() for o in given))


def _header_names(node: Node, key: str) -> Tuple[str, ...]:
    from busd.config._syntax import canonical_header

    names: list[str] = []
    loc = node.at(key)
    single = isinstance(node.raw.get(key), str)
    for index, name in enumerate(node.strings(key) or ()):
        try:
            names.append(canonical_header(name))
        except ValueError as exc:
            node.report.error(loc if single else loc.item(index), str(exc))
    return _unique(tuple(names))


def _unique(items: Tuple[str, ...]) -> Tuple[str, ...]:
    return tuple(dict.fromkeys(items))


class CorsPolicy:
    """The CORS answer headers for a request, from a :class:`CorsConfig`.

    Methods return the ``Access-Control-*`` headers to send (possibly
    none); the caller always adds the ``Vary`` tokens (``PREFLIGHT_VARY``
    or ``Origin``).
    """

    def __init__(self, config: CorsConfig):
        self.config = config
        self._any_origin = config.allow_origins == ("*",)
        self._exact = frozenset(o for o in config.allow_origins if "*" not in o)
        self._wild = tuple(
            tuple(o.split("*", 1)) for o in config.allow_origins if "*" in o
        )
        self._any_header = config.allow_headers == ("*",)
        self._headers = frozenset(h.lower() for h in config.allow_headers)
        self._methods = frozenset(config.allow_methods)

    def origin_allowed(self, origin: str) -> bool:
        """Whether ``origin`` (case-insensitive) may use the API."""
        if self._any_origin:
            return True
        origin = origin.lower()
        if origin in self._exact:
            return True
        return any(
            len(origin) >= len(pre) + len(post)
            and origin.startswith(pre)
            and origin.endswith(post)
            for pre, post in self._wild
        )

    def method_allowed(self, method: str) -> bool:
        """Whether ``method`` may be used cross-origin (OPTIONS always)."""
        method = method.upper()
        return method == "OPTIONS" or method in self._methods

    def headers_allowed(self, requested: Sequence[str]) -> bool:
        """Whether every requested header name is allowed."""
        if self._any_header:
            return True
        return all(name.lower() in self._headers for name in requested)

    def preflight(
        self, origin: Optional[str], method: str, request_headers: str
    ) -> Headers:
        """Headers answering a preflight for ``method`` with the
        comma-separated ``Access-Control-Request-Headers``."""
        requested = [h.strip() for h in request_headers.split(",") if h.strip()]
        if (
            not origin
            or not self.origin_allowed(origin)
            or not self.method_allowed(method)
            or not self.headers_allowed(requested)
        ):
            return []
        out = [
            ("Access-Control-Allow-Origin", self._allow_origin(origin)),
            # The spec allows echoing the one requested method and headers.
            ("Access-Control-Allow-Methods", method.upper()),
        ]
        if requested:
            out.append(("Access-Control-Allow-Headers", ", ".join(requested)))
        if self.config.allow_credentials:
            out.append(("Access-Control-Allow-Credentials", "true"))
        if self.config.max_age > 0:
            out.append(
                ("Access-Control-Max-Age", str(int(self.config.max_age)))
            )
        return out

    def actual(self, origin: Optional[str], method: str) -> Headers:
        """Headers for the answer to an actual (non-preflight) request."""
        if (
            not origin
            or not self.origin_allowed(origin)
            or not self.method_allowed(method)
        ):
            return []
        out = [("Access-Control-Allow-Origin", self._allow_origin(origin))]
        if self.config.expose_headers:
            out.append(
                (
                    "Access-Control-Expose-Headers",
                    ", ".join(self.config.expose_headers),
                )
            )
        if self.config.allow_credentials:
            out.append(("Access-Control-Allow-Credentials", "true"))
        return out

    def _allow_origin(self, origin: str) -> str:
        return "*" if self._any_origin else origin
