"""Precompiled routes: Klein's own matches, looked up once per path.

Klein binds werkzeug's URL map and walks its state machine on every
request (profiles: about a tenth of a proxied request's CPU with Klein's
Deferred plumbing). An endpoint path without parameters always matches
the same rule, so :func:`precompile` asks werkzeug once, when the routes
are complete, which handler answers each such ``(method, path)``, and
:class:`PrecompiledRoutes` calls that handler directly; every other
request (parameters, HEAD, trailing slashes, encoded paths, 404, 405,
built-in routes) goes to Klein unchanged. The handler is called as Klein
calls it: same arguments, cancelled when the client goes away, its
errors rendered by the app's error handler for ``Exception``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Optional, Tuple

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET

__all__ = ["PrecompiledRoutes", "precompile", "Handler"]

Handler = Callable[[IRequest], Any]
ErrorHandler = Callable[[IRequest, Failure], Any]


def precompile(
    app: Klein, candidates: Iterable[Tuple[str, str, str, Handler]]
) -> Dict[Tuple[bytes, bytes], Handler]:
    """The exact ``(method, path)`` -> handler table for ``candidates``
    (method, path, Klein endpoint name, handler): each is kept only when
    werkzeug, asked now, routes that very request to that endpoint with
    no arguments (no other rule shadows it)."""
    from werkzeug.exceptions import HTTPException

    adapter = app.url_map.bind("localhost")
    table: Dict[Tuple[bytes, bytes], Handler] = {}
    for method, path, name, handler in candidates:
        if not path.isascii() or "%" in path or "?" in path:
            continue  # the raw request path would differ from the decoded one
        try:
            rule, args = adapter.match(path, method, return_rule=True)
        except HTTPException:  # a redirect, or no match at all
            continue
        if rule.endpoint == name and not args:
            table[(method.encode("ascii"), path.encode("ascii"))] = handler
    return table


class PrecompiledRoutes(Resource):
    """Serves the precompiled table's requests, hands the rest to Klein."""

    isLeaf = True

    def __init__(
        self,
        klein: IResource,
        table: Dict[Tuple[bytes, bytes], Handler],
        on_error: ErrorHandler,
    ):
        super().__init__()
        self._klein = klein
        self._table = table
        self._on_error = on_error

    def render(self, request: Any) -> Any:
        handler = self._table.get((request.method, request.path))
        if handler is None:
            return self._klein.render(request)
        # As Klein does: the matched segments move to prepath.
        request.prepath.extend(request.postpath)
        request.postpath = []
        try:
            result = handler(request)
        except Exception:
            result = self._on_error(request, Failure())
        if not isinstance(result, Deferred):
            _write(request, result, False)
            return NOT_DONE_YET
        gone = [False]

        def client_gone(_: Any) -> None:
            gone[0] = True
            result.cancel()

        request.notifyFinish().addErrback(client_gone)
        result.addErrback(self._failed, request, gone)
        result.addCallback(lambda body: _write(request, body, gone[0]))
        return NOT_DONE_YET

    def _failed(self, failure: Failure, request: Any, gone: list) -> Any:
        if gone[0]:
            return None  # nobody to answer; Klein drops it too
        return self._on_error(request, failure)


def _write(request: Any, body: Optional[Any], gone: bool) -> None:
    if gone or getattr(request, "finished", False) or getattr(request, "_disconnected", False):
        return
    if isinstance(body, str):
        body = body.encode("utf-8")
    if isinstance(body, bytes):
        request.write(body)
    request.finish()
