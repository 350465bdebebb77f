"""The CORS wrapper around the site's root resource.

:class:`CorsResource` decides before anything else runs: a preflight is
answered 204 at once (so an endpoint never answers it 405 or 404, the
KrakenD issue behind KRAKEND.md section 4 item 14), and an actual request
goes on with its answer's headers guarded: the gateway owns every
``Access-Control-*`` header, so those a ``no-op`` backend passes through
are dropped and each CORS header is sent exactly once, and ``Vary`` keeps
a single, merged line.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Sequence, Union

from twisted.logger import Logger
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource, getChildForRequest

from busd.security.cors import PREFLIGHT_VARY, CorsConfig, CorsPolicy

__all__ = ["CorsResource", "GuardedHeaders"]

_log = Logger()
_PREFIX = b"access-control-"
_VARY = b"vary"
AnyStr = Union[str, bytes]


def _lower(name: AnyStr) -> bytes:
    return (name.encode("latin-1") if isinstance(name, str) else name).lower()


def _tokens(values: Iterable[AnyStr]) -> List[bytes]:
    out: List[bytes] = []
    for value in values:
        raw = value.encode("latin-1") if isinstance(value, str) else value
        out.extend(t.strip() for t in raw.split(b",") if t.strip())
    return out


class GuardedHeaders(Headers):
    """Response headers in which the gateway alone sets CORS headers.

    ``Access-Control-*`` writes by anyone else are dropped; ``Vary`` values
    are merged into one line, without repeats, and always keep the tokens
    the gateway requires. :meth:`own` sets the gateway's own headers.
    """

    __slots__ = ("_vary",)

    def __init__(self, existing: Headers, vary: Sequence[str]):
        self._vary: List[bytes] = [v.encode("ascii") for v in vary]
        super().__init__()
        for name, values in existing.getAllRawHeaders():
            self.setRawHeaders(name, list(values))
        self._set_vary([])

    def own(self, name: str, value: str) -> None:
        """Set a header of the gateway's own, bypassing the guard."""
        # Bytes names only: Twisted caches canonical names in one dict, and
        # mixing str and bytes keys there draws BytesWarnings.
        Headers.setRawHeaders(
            self, name.encode("latin-1"), [value.encode("latin-1")]
        )

    def setRawHeaders(self, name: AnyStr, values: Sequence[AnyStr]) -> None:
        key = _lower(name)
        if key.startswith(_PREFIX):
            return
        if key == _VARY:
            self._set_vary(values)
            return
        super().setRawHeaders(name, values)

    def addRawHeader(self, name: AnyStr, value: AnyStr) -> None:
        key = _lower(name)
        if key.startswith(_PREFIX):
            return
        if key == _VARY:
            self._set_vary(list(self.getRawHeaders(b"vary", [])) + [value])
            return
        super().addRawHeader(name, value)

    def copy(self) -> Headers:
        # A plain copy: the guard belongs to this one answer.
        return Headers(dict(self.getAllRawHeaders()))

    def _set_vary(self, values: Sequence[AnyStr]) -> None:
        seen: dict[bytes, bytes] = {}
        for token in self._vary + _tokens(values):
            seen.setdefault(token.lower(), token)
        if seen:
            Headers.setRawHeaders(self, b"Vary", [b", ".join(seen.values())])


class CorsResource(Resource):
    """Applies ``config`` in front of ``wrapped`` (the site's root)."""

    isLeaf = True

    def __init__(self, wrapped: IResource, config: CorsConfig):
        super().__init__()
        self._wrapped = wrapped
        self._policy = CorsPolicy(config)
        self._config = config

    def render(self, request: IRequest) -> Any:
        origin = _header(request, b"origin")
        wanted = _header(request, b"access-control-request-method")
        if request.method == b"OPTIONS" and wanted is not None:
            requested = _header(request, b"access-control-request-headers")
            answer = self._policy.preflight(origin, wanted, requested or "")
            self._debug("preflight", request, origin, answer)
            self._guard(request, PREFLIGHT_VARY, answer)
            if not self._config.options_passthrough:
                request.setResponseCode(204)
                return b""
        else:
            method = request.method.decode("latin-1")
            answer = self._policy.actual(origin, method)
            self._debug("request", request, origin, answer)
            self._guard(request, ("Origin",), answer)
        return getChildForRequest(self._wrapped, request).render(request)

    def _guard(
        self, request: IRequest, vary: Sequence[str], answer: List[Any]
    ) -> GuardedHeaders:
        headers = GuardedHeaders(request.responseHeaders, vary)
        for name, value in answer:
            headers.own(name, value)
        # IRequest declares responseHeaders an attribute: replacing it is
        # how every later writer (Klein, no-op pass-through, errors) goes
        # through the guard.
        request.responseHeaders = headers
        return headers

    def _debug(
        self, kind: str, request: IRequest, origin: Any, answer: List[Any]
    ) -> None:
        if self._config.debug:
            _log.debug(
                "cors {kind} {method} {uri} origin={origin}: {decision}",
                kind=kind,
                method=request.method.decode("latin-1"),
                uri=request.uri.decode("latin-1"),
                origin=origin,
                decision="allowed" if answer else "no CORS headers",
            )


def _header(request: IRequest, name: bytes) -> Any:
    value = request.getHeader(name)
    return value.decode("latin-1") if value is not None else None
