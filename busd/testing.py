"""Test fakes shipped with busgw (as treq ships ``treq.testing``).

:class:`FakeBackends` is one ``Resource`` standing for many backend hosts:
it dispatches on the ``Host`` header, so a single ``StubTreq`` can serve
every backend of a config. :class:`JSONBackend` is a small configurable
backend resource for table tests and loopback integration tests.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET
from twisted.web.iweb import IRequest

__all__ = ["FakeBackends", "JSONBackend", "Reply"]


class FakeBackends(Resource):
    """Dispatch each request to the resource registered for its ``Host``
    header (``"name:port"``, as in the backend's sanitised host)."""

    isLeaf = True

    def __init__(self, hosts: Mapping[str, IResource]):
        super().__init__()
        self.hosts = dict(hosts)

    def render(self, request: IRequest) -> Any:
        host = (request.getHeader(b"host") or b"").decode("latin-1")
        target = self.hosts.get(host)
        if target is None:
            request.setResponseCode(502)
            return b"no fake backend for host " + host.encode()
        return target.render(request)


Reply = Tuple[int, Any]


class JSONBackend(Resource):
    """A backend answering every path from ``routes``.

    ``routes`` maps a path (``/vehicle``) to ``(status, body)``: ``body`` is
    JSON-encoded unless it is ``bytes``; or to a callable taking the request
    and returning such a pair. With ``delay`` and a ``clock`` it answers that
    many seconds later (``NOT_DONE_YET``), for timeout tests. Every request
    seen is kept in ``requests`` as ``(method, uri, headers, body)``.
    """

    isLeaf = True

    def __init__(
        self,
        routes: Mapping[str, Any],
        *,
        clock: Optional[IReactorTime] = None,
        delay: float = 0.0,
        headers: Optional[Mapping[str, str]] = None,
    ):
        super().__init__()
        self.routes = dict(routes)
        self.clock = clock
        self.delay = delay
        self.extra_headers = dict(headers or {})
        self.requests: List[Tuple[str, str, Dict[str, List[str]], bytes]] = []
        self.on_finish: Optional[Callable[[], None]] = None

    def render(self, request: IRequest) -> Any:
        self.requests.append(
            (
                request.method.decode(),
                request.uri.decode(),
                {
                    k.decode().lower(): [v.decode() for v in vs]
                    for k, vs in request.requestHeaders.getAllRawHeaders()
                },
                request.content.read() if request.content else b"",
            )
        )
        path = request.path.decode()
        route = self.routes.get(path)
        if route is None:
            status, body = 404, {"error": "no route " + path}
        elif callable(route):
            status, body = route(request)
        else:
            status, body = route
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        request.setResponseCode(status)
        if not isinstance(body, bytes):
            request.setHeader(b"Content-Type", b"application/json")
        for name, value in self.extra_headers.items():
            request.setHeader(name.encode(), value.encode())
        if self.delay and self.clock is not None:
            self.clock.callLater(self.delay, self._finish, request, payload)
            return NOT_DONE_YET
        return payload

    def _finish(self, request: IRequest, payload: bytes) -> None:
        if getattr(request, "_disconnected", False) or getattr(request, "finished", 0):
            return
        request.write(payload)
        request.finish()
        if self.on_finish is not None:
            self.on_finish()
