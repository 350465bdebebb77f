"""Pure checks of single config strings: hosts, placeholders, header names.

Each function either returns the cleaned value or raises ValueError with a
message meant for the user; the loader attaches the JSON path.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Optional, Sequence, Tuple

__all__ = [
    "sanitize_host",
    "endpoint_params",
    "url_placeholders",
    "check_url_placeholder",
    "route_key",
    "canonical_header",
    "check_dot_path",
    "q",
]

# lura's hostPattern, anchored, plus bracketed IPv6 literals and an optional
# path (which sanitising drops).
_HOST = re.compile(
    r"(?P<scheme>https?://)?"
    r"(?P<name>\[[0-9A-Za-z:.%]+\]|[a-zA-Z0-9._-]+)"
    r"(?P<port>:[0-9]{2,6})?"
    r"(?P<path>/.*)?",
    re.DOTALL,
)
_PARAM_NAME = re.compile(r"[a-zA-Z0-9_-]+")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# lura: url_pattern placeholders may hold dots, colons and slashes
# (JWT claims such as {JWT.https://example.com/tenant}).
_URL_PARAM_NAME = re.compile(r"[a-zA-Z0-9_.:/-]+")
_SEQUENTIAL = re.compile(r"resp([0-9]+)(?:_(.+))?")
# RFC 7230 token characters: Go leaves other names uncanonicalised.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def q(text: str) -> str:
    """``text`` double-quoted, as JSON writes it, for messages."""
    return json.dumps(text, ensure_ascii=False)


def sanitize_host(host: str) -> str:
    """``host`` as ``scheme://name[:port]``, as KrakenD's host sanitiser
    makes it: ``http://`` when no scheme is given, any path dropped."""
    match = _HOST.fullmatch(host)
    if match is None:
        raise ValueError(
            f"invalid host {q(host)}: expected [http(s)://]name[:port],"
            ' such as "http://10.0.0.5:8080"'
        )
    name = match["name"]
    if name.startswith("["):
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            message = f"invalid IPv6 address in host {q(host)}"
            raise ValueError(message) from None
    port = match["port"] or ""
    if port and not 0 < int(port[1:]) <= 65535:
        raise ValueError(f"invalid port in host {q(host)}")
    return f"{match['scheme'] or 'http://'}{name}{port}"


def endpoint_params(path: str) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """The ``{placeholder}`` names of an endpoint path in order, and the
    problems found: each must fill a whole segment (``/x/{id}``)."""
    params: list[str] = []
    problems: list[str] = []
    for segment in path.split("/"):
        if "{" not in segment and "}" not in segment:
            continue
        found = _PLACEHOLDER.findall(segment)
        rest = _PLACEHOLDER.sub("", segment)
        if "{" in rest or "}" in rest:
            problems.append(f"unbalanced brace in path segment {q(segment)}")
            continue
        if len(found) != 1 or segment != "{" + found[0] + "}":
            problems.append(
                f"placeholder in segment {q(segment)} must fill the whole"
                " path segment, as in /x/{id}"
            )
            continue
        name = found[0]
        if not _PARAM_NAME.fullmatch(name):
            problems.append(
                f"invalid placeholder name {{{name}}}: use letters, digits,"
                " '-' and '_'"
            )
        elif name in params:
            problems.append(f"placeholder {{{name}}} is used twice")
        else:
            params.append(name)
    return tuple(params), tuple(problems)


def url_placeholders(
    url_pattern: str,
) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """The ``{placeholder}`` names of a url_pattern, and syntax problems."""
    names: list[str] = []
    problems: list[str] = []
    for name in _PLACEHOLDER.findall(url_pattern):
        if _URL_PARAM_NAME.fullmatch(name):
            names.append(name)
        else:
            problems.append(f"invalid placeholder {{{name}}}")
    rest = _PLACEHOLDER.sub("", url_pattern)
    if "{" in rest or "}" in rest:
        problems.append("unbalanced brace")
    return tuple(names), tuple(problems)


def check_url_placeholder(
    name: str,
    *,
    params: Sequence[str],
    sequential: bool,
    index: int,
) -> Optional[str]:
    """Why placeholder ``name`` of backend ``index`` cannot be filled, or
    None: it must be an endpoint param, ``JWT.<claim>``, or (sequential
    endpoints) ``resp<N>[_<field>]`` of an earlier backend."""
    if name in params:
        return None
    if name.startswith("JWT.") and len(name) > 4:
        return None
    match = _SEQUENTIAL.fullmatch(name)
    if match is not None:
        if not sequential:
            return (
                f"placeholder {{{name}}} reads an earlier backend's response,"
                " which needs extra_config.proxy.sequential: true on the"
                " endpoint"
            )
        if int(match[1]) >= index:
            return (
                f"placeholder {{{name}}} reads backend {match[1]}, but only"
                f" backends before this one (index {index}) have answered"
            )
        return None
    known = ", ".join("{" + p + "}" for p in params) or "none"
    return (
        f"placeholder {{{name}}} is not a parameter of the endpoint"
        f" (its parameters: {known})"
    )


def route_key(method: str, path: str) -> Tuple[str, str]:
    """What makes two routes the same: ``/a/{x}`` and ``/a/{y}`` match the
    same requests."""
    return method, _PLACEHOLDER.sub("{}", path)


def canonical_header(name: str) -> str:
    """``name`` as Go's CanonicalMIMEHeaderKey writes it (``x-api-key`` ->
    ``X-Api-Key``); raises ValueError for a name that is not a token."""
    if name == "*":
        return name
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid header name {q(name)}")
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


def check_dot_path(path: str) -> Optional[str]:
    """Why ``path`` is not a usable dot path (``a.b``, ``items.*.id``), or
    None."""
    if not path:
        return "empty path"
    if any(not part for part in path.split(".")):
        return f"empty segment in dot path {q(path)}"
    return None
