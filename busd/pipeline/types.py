"""Plain data that flows through the proxy pipeline.

A request enters as a :class:`ProxyRequest`, every stage is a
``Proxy`` (``ProxyRequest -> Deferred[ProxyResponse]``) and a
``Middleware`` wraps one proxy into another, as in lura.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Protocol, Tuple, Union

import attrs
from twisted.internet.defer import Deferred

__all__ = [
    "ProxyRequest",
    "ProxyResponse",
    "Proxy",
    "Middleware",
    "HTTPClient",
]

Pairs = Tuple[Tuple[str, str], ...]


@attrs.frozen(kw_only=True)
class ProxyRequest:
    """What the gateway received, reduced to what backends may see.

    ``headers`` hold canonicalised names (``Content-Type``); ``query`` keeps
    the client's order and repeated keys. ``params`` are the endpoint's path
    parameters by their config names, already URL-decoded.
    """

    method: str
    path: str = "/"
    params: Mapping[str, str] = attrs.field(factory=dict)
    query: Pairs = ()
    headers: Pairs = ()
    body: bytes = b""
    client_ip: str = ""
    host: str = ""
    #: Forwarded to every backend as ``X-Request-Id`` (busd.telemetry).
    request_id: str = ""

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name`` (case-insensitive), or None."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None


@attrs.frozen(kw_only=True)
class ProxyResponse:
    """A (possibly partial) answer.

    ``data`` is the merged JSON object. For a ``no-op`` pass-through,
    ``raw_body`` holds the backend's bytes and ``status``/``headers`` its own.
    ``errors`` lists what went wrong, for logs and ``return_error_msg``.
    ``error_status`` is a status a backend error asked the endpoint to answer
    with (``return_error_code``), with ``raw_body``/``headers`` its body.
    """

    data: Dict[str, Any] = attrs.field(factory=dict)
    is_complete: bool = True
    status: int = 200
    headers: Pairs = ()
    raw_body: Optional[bytes] = None
    errors: Tuple[str, ...] = ()
    error_status: Optional[int] = None


Proxy = Callable[[ProxyRequest], "Deferred[ProxyResponse]"]
Middleware = Callable[[Proxy], Proxy]


class HTTPClient(Protocol):
    """What the pipeline needs from an HTTP client.

    ``treq.client.HTTPClient`` and ``treq.testing.StubTreq`` both fit.
    """

    def request(
        self,
        method: str,
        url: Union[str, bytes],
        *,
        headers: Any = None,
        data: Any = None,
        unbuffered: bool = False,
    ) -> "Deferred[Any]": ...
