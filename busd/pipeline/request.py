"""Building the backend request: URL, query and header allow-lists.

Everything here is prepared once per backend at config load
(:func:`make_request_builder`) so that the per-request work is a few dict
look-ups and string joins (KRAKEND.md 3.2).
"""

from __future__ import annotations

import random
import re
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote, urlencode

import attrs

from busd import __version__
from busd.config.model import BackendConfig, EndpointConfig
from busd.pipeline.types import ProxyRequest

__all__ = [
    "USER_AGENT",
    "BackendRequest",
    "canonical_header",
    "format_param",
    "make_request_builder",
    "RoundRobin",
]

USER_AGENT = f"busgw Version {__version__}"
_USER_AGENT = USER_AGENT.encode("ascii")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
# Never copied from the client even with input_headers "*": they describe
# the client's own connection, not the request (RFC 9110 7.6.1), or are
# set by the gateway below.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-request-id",
    }
)


@attrs.frozen
class BackendRequest:
    """One outbound call, ready for the HTTP client.

    ``uri`` is ``url`` already encoded as the client sends it (bytes),
    when the backend's host and pattern allow building it without treq's
    URL parsing; ``host_header`` is then the ``Host`` value the Agent
    would have computed. Both are None otherwise.
    """

    method: str
    url: str
    headers: Mapping[bytes, List[bytes]]
    body: Optional[bytes]
    uri: Optional[bytes] = None
    host_header: Optional[bytes] = None


def canonical_header(name: str) -> str:
    """Go's ``CanonicalMIMEHeaderKey``: ``x-foo-bar`` -> ``X-Foo-Bar``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def format_param(value: Any) -> str:
    """Render a value for a URL placeholder as KrakenD does: strings raw,
    arrays joined by ``,``, numbers as received, objects as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, (list, tuple)):
        return ",".join(format_param(v) for v in value)
    if value is None:
        return ""
    import json

    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class RoundRobin:
    """Round-robin over a backend's hosts from a random start.

    KrakenD picks at random on several CPUs and round-robins on one; a
    rotation spreads load as evenly and is easy to reason about.
    """

    def __init__(self, hosts: Sequence[str], rng: Optional[random.Random] = None):
        self._hosts = tuple(hosts)
        self._next = (rng or random.Random()).randrange(len(self._hosts))

    def __call__(self) -> str:
        host = self._hosts[self._next]
        self._next = (self._next + 1) % len(self._hosts)
        return host


def _compile_pattern(
    pattern: str,
) -> Tuple[Tuple[str, ...], Tuple[Tuple[str, bool], ...], bool]:
    """Split ``/a/{id}/b?x={y}`` into literal parts and placeholders.

    Each placeholder comes with whether it sits in the query (its value
    must then also escape ``&`` and ``=``); the flag says whether the
    pattern has a query of its own, so a forwarded one is joined with ``&``.
    """
    qmark = pattern.find("?")
    literals: List[str] = []
    names: List[Tuple[str, bool]] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(pattern):
        literals.append(pattern[pos : m.start()])
        names.append((m.group(1), qmark != -1 and m.start() > qmark))
        pos = m.end()
    literals.append(pattern[pos:])
    return tuple(literals), tuple(names), qmark != -1


def _allow(
    endpoint_list: Sequence[str], backend_list: Optional[Sequence[str]]
) -> Tuple[bool, frozenset[str], bool, frozenset[str]]:
    ep_all = "*" in endpoint_list
    be_all = backend_list is None or "*" in backend_list
    return ep_all, frozenset(endpoint_list), be_all, frozenset(backend_list or ())


def _make_query_filter(
    endpoint: EndpointConfig, backend: BackendConfig
) -> Callable[[Tuple[Tuple[str, str], ...]], str]:
    """Query names are case-sensitive; the result is encoded with sorted keys
    as Go's ``url.Values.Encode`` does, repeated values kept in order."""
    ep_all, ep_set, be_all, be_set = _allow(
        endpoint.input_query_strings, backend.input_query_strings
    )
    if not endpoint.input_query_strings:
        return lambda query: ""

    def select(query: Tuple[Tuple[str, str], ...]) -> str:
        kept = [
            (k, v)
            for k, v in query
            if (ep_all or k in ep_set) and (be_all or k in be_set)
        ]
        if not kept:
            return ""
        kept.sort(key=lambda kv: kv[0])  # stable: values keep their order
        return urlencode(kept)

    return select


def _make_header_filter(
    endpoint: EndpointConfig, backend: BackendConfig
) -> Callable[[ProxyRequest], dict[bytes, List[bytes]]]:
    ep_list = [h.lower() for h in endpoint.input_headers] or ["content-type"]
    be_list = (
        None
        if backend.input_headers is None
        else [h.lower() for h in backend.input_headers]
    )
    ep_all, ep_set, be_all, be_set = _allow(ep_list, be_list)
    forwards_ua = (ep_all or "user-agent" in ep_set) and (
        be_all or "user-agent" in be_set
    )

    def select(req: ProxyRequest) -> dict[bytes, List[bytes]]:
        out: dict[bytes, List[bytes]] = {}
        for name, value in req.headers:
            low = name.lower()
            if low in _HOP_BY_HOP:
                continue
            if (ep_all or low in ep_set) and (be_all or low in be_set):
                out.setdefault(canonical_header(name).encode("latin-1"), []).append(
                    value.encode("latin-1", "replace")
                )
        if req.client_ip:
            out[b"X-Forwarded-For"] = [req.client_ip.encode("ascii", "replace")]
        if req.host:
            out[b"X-Forwarded-Host"] = [req.host.encode("latin-1", "replace")]
        if req.request_id:
            out[b"X-Request-Id"] = [req.request_id.encode("ascii", "replace")]
        if forwards_ua and b"User-Agent" in out:
            out[b"X-Forwarded-Via"] = [_USER_AGENT]
        else:
            out[b"User-Agent"] = [_USER_AGENT]
        return out

    return select


def _prebuilt_host(host: str, literals: Sequence[str]) -> Optional[bytes]:
    """The ``Host`` header for ``host`` when URLs on it can skip treq's
    parsing: the host and the pattern's literal parts must be exactly what
    treq's ``EncodedURL.to_uri()`` would send (ASCII, nothing it would
    re-encode). Values filled in per request are percent-encoded ASCII,
    which it leaves alone. None means: let treq encode the URL."""
    from hyperlink import EncodedURL
    from twisted.web.client import URI

    sample = host + "".join(literals)
    try:
        if EncodedURL.from_text(sample).to_uri().to_text() != sample:
            return None
        uri = URI.fromBytes(sample.encode("ascii") or b"/")
    except Exception:  # whatever treq would fail on, it shall report
        return None
    name = uri.host
    if b":" in name:
        name = b"[" + name + b"]"
    if (uri.scheme, uri.port) in ((b"http", 80), (b"https", 443)):
        return name
    return b"%b:%d" % (name, uri.port)


def make_request_builder(
    endpoint: EndpointConfig,
    backend: BackendConfig,
    rng: Optional[random.Random] = None,
) -> Callable[[ProxyRequest], BackendRequest]:
    """Prepare, once, the function that turns a client request into this
    backend's request (method, URL with placeholders and forwarded query,
    filtered headers, body)."""
    literals, names, has_query = _compile_pattern(backend.url_pattern)
    pick_host = RoundRobin(backend.hosts, rng)
    select_query = _make_query_filter(endpoint, backend)
    select_headers = _make_header_filter(endpoint, backend)
    method = backend.method
    path_safe = "!$&'()*+,;=:@-._~"
    query_safe = "!$'()*+,;:@-._~/?"
    # Host header per host, or None when treq must encode its URLs.
    prebuilt = {h: _prebuilt_host(h, literals) for h in backend.hosts}

    def build(req: ProxyRequest) -> BackendRequest:
        if names:
            params = req.params
            parts = [literals[0]]
            for (name, in_query), literal in zip(names, literals[1:]):
                value = format_param(params.get(name, ""))
                if not in_query and value in (".", ".."):
                    # A dot segment (from a backend's data in a sequential
                    # chain) must not walk the backend's path up.
                    parts.append(value.replace(".", "%2E"))
                else:
                    parts.append(
                        quote(value, safe=query_safe if in_query else path_safe)
                    )
                parts.append(literal)
            path = "".join(parts)
        else:
            path = literals[0]
        query = select_query(req.query) if req.query else ""
        if query:
            path = f"{path}{'&' if has_query else '?'}{query}"
        host = pick_host()
        url = host + path
        host_header = prebuilt.get(host)
        return BackendRequest(
            method=method,
            url=url,
            headers=select_headers(req),
            body=req.body if req.body else None,
            uri=None if host_header is None else url.encode("ascii"),
            host_header=host_header,
        )

    return build
