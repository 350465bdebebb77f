"""The router edge: a per-instance Klein app serving a config's endpoints.

Handlers stay thin: turn the twisted.web request into a
:class:`ProxyRequest`, call the endpoint's pipeline, render. Only here do
errors become HTTP answers, always with a JSON body (KrakenD answers its own
errors with text or nothing; busgw's callers are programs).
"""

from __future__ import annotations

import random
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import parse_qsl, unquote

from klein import Klein
from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect

from busd import __version__
from busd.config.model import EndpointConfig, GatewayConfig
from busd.errors import BackendStatusError, GatewayError
from busd.metrics import GatewayMetrics
from busd.telemetry import request_id, set_endpoint_label
from busd.guards import Guard, GuardContext, endpoint_guards, run_guards
from busd.pipeline.build import BackendFactory, build_endpoint
from busd.pipeline.cache import CacheSet
from busd.pipeline.encode import dumps_go, encode
from busd.pipeline.merge import describe
from busd.pipeline.types import HTTPClient, Proxy, ProxyRequest, ProxyResponse

__all__ = ["GatewayApp", "to_werkzeug_path", "VERSION_HEADER"]

_log = Logger()
VERSION_HEADER = f"Version busgw-{__version__}".encode("ascii")
_JSON = b"application/json; charset=utf-8"
_COMPLETED = b"X-Krakend-Completed"


def to_werkzeug_path(path: str, params: Tuple[str, ...]) -> str:
    """Translate a KrakenD path (``/bus/{id}``) to a werkzeug rule.

    Parameters become ``<p0>``, ``<p1>``...: KrakenD names may hold ``-`` or
    start with a digit, which werkzeug variable names cannot.
    """
    out = path
    for i, name in enumerate(params):
        out = out.replace("{" + name + "}", f"<p{i}>")
    return out


def _go_time(seconds: float) -> str:
    """Go's ``time.Time.String()`` form for UTC, as KrakenD's /__health."""
    t = datetime.fromtimestamp(seconds, timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f") + " +0000 UTC"


class GatewayApp:
    """Routes for every endpoint of ``config``, each with its own pipeline
    built once here; ``resource()`` is what a ``Site`` serves."""

    def __init__(
        self,
        config: GatewayConfig,
        client: HTTPClient,
        clock: IReactorTime,
        *,
        debug: bool = False,
        rng: Optional[random.Random] = None,
        reactor: Any = None,
        metrics: Optional[GatewayMetrics] = None,
        guard_client: Optional[HTTPClient] = None,
        backend_factory: Optional[BackendFactory] = None,
    ):
        self.config = config
        self.clock = clock
        self.app = Klein()
        # werkzeug would answer "/a//b" with a RequestRedirect to "/a/b";
        # KrakenD's router treats it as another path (404).
        self.app.url_map.merge_slashes = False
        router = config.router
        # Guards fetch JWK sets: with their own verifying client when the
        # backends' client_tls allows insecure connections (see gateway.py).
        context = GuardContext(
            client=guard_client or client, clock=clock, reactor=reactor
        )
        #: Shared with roles' built-in routes (busd.guards.route_guard), so
        #: they reuse this generation's client and JWK caches.
        self.guard_context = context
        #: Each endpoint's pipeline by (method, path), for built-in features
        #: that read the gateway's own endpoints (bus health checks).
        self.pipelines: Dict[Tuple[str, str], Proxy] = {}
        # Parameterless endpoints, for busd.routes' precompiled table.
        self._static: List[Tuple[str, str, str, Callable[..., Any]]] = []
        caches = CacheSet(clock)  # qos/http-cache: one set per config
        for endpoint in config.endpoints:
            pipeline = build_endpoint(
                endpoint, client, clock, rng, metrics, caches, backend_factory
            )
            guards = endpoint_guards(config, endpoint, context)
            self.pipelines[(endpoint.method, endpoint.endpoint)] = pipeline
            self._add_endpoint(endpoint, pipeline, guards)
        if not router.disable_health:
            self.app.route(
                router.health_path,
                methods=["GET"],
                endpoint="busgw:health",
                strict_slashes=False,
            )(self._health)
        if debug or config.debug_endpoint:
            self.app.route(
                "/__debug/", endpoint="busgw:debug", branch=True
            )(self._debug)
        self.app.handle_errors(RequestRedirect)(self._redirect)
        self.app.handle_errors(NotFound)(self._not_found)
        self.app.handle_errors(MethodNotAllowed)(self._not_allowed)
        self.app.handle_errors(Exception)(self._unexpected)

    def resource(self) -> IResource:
        """What a Site serves: Klein's resource behind the precompiled
        table of parameterless endpoints (busd.routes). Call it once every
        route is added (roles add theirs first)."""
        from busd.routes import PrecompiledRoutes, precompile

        table = precompile(self.app, self._static)
        return PrecompiledRoutes(self.app.resource(), table, self._unexpected)

    def add_route(
        self,
        path: str,
        methods: Sequence[str],
        name: str,
        handler: Callable[..., Any],
        *,
        branch: bool = False,
    ) -> None:
        """Add a built-in route (a role's own path such as ``/health``):
        ``handler(request, **path_params)`` as for any Klein route, with
        ``name`` as its metrics label. Errors it raises as GatewayError
        get busgw's JSON body, like every other answer."""

        def labelled(request: IRequest, **kwargs: Any) -> Any:
            set_endpoint_label(request, name)
            return handler(request, **kwargs)

        self.app.route(
            path,
            methods=list(methods),
            endpoint=f"busgw:{name}",
            strict_slashes=False,
            branch=branch,
        )(labelled)

    def error(self, request: IRequest, status: int, message: str) -> bytes:
        """busgw's JSON error answer (``{"error": ..., "status": ...}``)."""
        return self._error(request, status, message)

    # -- endpoints -----------------------------------------------------

    def _add_endpoint(
        self, endpoint: EndpointConfig, pipeline: Proxy, guards: List[Guard]
    ) -> None:
        params = endpoint.params
        aliases = [f"p{i}" for i in range(len(params))]
        error_code = any(b.return_error_code for b in endpoint.backends)
        label = f"{endpoint.method} {endpoint.endpoint}"

        def handle(request: IRequest, **kwargs: str) -> Any:
            set_endpoint_label(request, label)
            if params:
                # KrakenD refuses values that are still URL-encoded after
                # the router decoded the path once (double encoding), or
                # that hold '?' or '#'. busgw also refuses "." and "..":
                # placed in a url_pattern they are dot segments, and
                # "/users/{JWT.sub}/{x}" with x=".." would leave the
                # caller's own scope at the backend.
                for alias in aliases:
                    value = kwargs[alias]
                    if (
                        "?" in value
                        or "#" in value
                        or value in (".", "..")
                        or unquote(value) != value
                    ):
                        return self._error(request, 400, "encoded url params")
                values = {n: kwargs[a] for n, a in zip(params, aliases)}
            else:
                values = {}
            preq = _proxy_request(request, values)
            if guards:
                d = run_guards(guards, request, preq).addCallback(pipeline)
            else:
                d = pipeline(preq)
            d.addCallbacks(
                self._render,
                self._render_failure,
                callbackArgs=(request, endpoint),
                errbackArgs=(request, error_code),
            )
            return d

        method = endpoint.method
        self.app.route(
            to_werkzeug_path(endpoint.endpoint, params),
            methods=[method],
            endpoint=f"{method} {endpoint.endpoint}",
            strict_slashes=False,
        )(handle)
        if not params:
            name = f"{method} {endpoint.endpoint}"
            self._static.append((method, endpoint.endpoint, name, handle))

    def _render(
        self, response: ProxyResponse, request: IRequest, endpoint: EndpointConfig
    ) -> bytes:
        request.setHeader(b"X-Krakend", VERSION_HEADER)
        if response.raw_body is not None:
            request.setResponseCode(response.status)
            headers = request.responseHeaders
            for name, value in response.headers:
                headers.addRawHeader(name.encode("latin-1"), value.encode("latin-1"))
            request.setHeader(_COMPLETED, b"false")
            return _sized(request, response.raw_body)
        complete = response.is_complete and bool(response.data)
        request.setHeader(_COMPLETED, b"true" if complete else b"false")
        if complete and endpoint.cache_ttl > 0:
            request.setHeader(
                b"Cache-Control", b"public, max-age=%d" % int(endpoint.cache_ttl)
            )
        body, content_type = encode(response.data, endpoint.output_encoding)
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        return _sized(request, body)

    def _render_failure(
        self, failure: Failure, request: IRequest, error_code: bool
    ) -> Any:
        if failure.check(CancelledError):
            return None  # the client went away; Klein finishes nothing
        request.setHeader(b"X-Krakend", VERSION_HEADER)
        request.setHeader(_COMPLETED, b"false")
        err = failure.value
        show = self.config.router.return_error_msg
        if isinstance(err, BackendStatusError) and err.expose_status and error_code:
            if show:
                request.setResponseCode(err.backend_status)
                if err.content_type:
                    request.setHeader(b"Content-Type", err.content_type.encode())
                return _sized(request, err.body)
            return self._error(request, err.backend_status, err.code)
        if isinstance(err, GatewayError):
            return self._gateway_error(request, err, show)
        _log.failure("unexpected error in an endpoint pipeline", failure)
        return self._error(request, 500, "internal_error")

    # -- built-ins ------------------------------------------------------

    def _health(self, request: IRequest) -> bytes:
        set_endpoint_label(request, self.config.router.health_path)
        request.setHeader(b"Content-Type", _JSON)
        body = {"agents": {}, "now": _go_time(self.clock.seconds()), "status": "ok"}
        return _sized(request, dumps_go(body))

    def _debug(self, request: IRequest) -> bytes:
        _log.debug(
            "debug endpoint: {method} {uri} headers={headers} body={body!r}",
            method=request.method.decode("ascii", "replace"),
            uri=request.uri.decode("latin-1"),
            headers=dict(request.requestHeaders.getAllRawHeaders()),
            body=request.content.read() if request.content else b"",
        )
        request.setHeader(b"Content-Type", _JSON)
        return _sized(request, b"{\"message\":\"pong\"}")

    def _error(self, request: IRequest, status: int, message: str) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", _JSON)
        custom = self.config.router.error_body.get(str(status))
        if custom is not None:
            return _sized(request, dumps_go(custom))
        return _sized(request, dumps_go({"error": message, "status": status}))

    def _redirect(self, request: IRequest, failure: Failure) -> bytes:
        """werkzeug's own redirects (a route declared with a trailing slash
        asked for without it): answered as a redirect, as KrakenD does."""
        err: Any = failure.value
        request.setHeader(b"Location", err.new_url.encode("latin-1"))
        return self._error(request, err.code, "moved")

    def _not_found(self, request: IRequest, failure: Failure) -> bytes:
        request.setHeader(_COMPLETED, b"false")
        return self._error(request, 404, "not found")

    def _not_allowed(self, request: IRequest, failure: Failure) -> bytes:
        valid = getattr(failure.value, "valid_methods", None) or []
        if valid:
            request.setHeader(b"Allow", ", ".join(valid).encode("ascii"))
        request.setHeader(_COMPLETED, b"false")
        return self._error(request, 405, "method not allowed")

    def _gateway_error(
        self, request: IRequest, err: GatewayError, show: bool
    ) -> bytes:
        """The answer for a GatewayError: its headers, its status, and as
        ``error`` its reason for a refusal (4xx, no backend detail in it),
        else its stable code (its message with ``return_error_msg``)."""
        for name, value in err.headers.items():
            request.setHeader(name.encode("latin-1"), value.encode("latin-1"))
        if err.status < 500:
            return self._error(request, err.status, err.message)
        return self._error(request, err.status, describe(err) if show else err.code)

    def _unexpected(self, request: IRequest, failure: Failure) -> bytes:
        err = failure.value
        if isinstance(err, GatewayError):  # raised by a built-in route
            return self._gateway_error(request, err, show=False)
        _log.failure("unexpected error while routing", failure)
        return self._error(request, 500, "internal_error")


def _sized(request: IRequest, body: bytes) -> bytes:
    """Announce the length so twisted.web sends no chunked framing."""
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return body


def _proxy_request(request: IRequest, params: Dict[str, str]) -> ProxyRequest:
    uri = request.uri
    _, _, raw_query = uri.partition(b"?")
    query: Tuple[Tuple[str, str], ...] = ()
    if raw_query:
        query = tuple(
            parse_qsl(raw_query.decode("utf-8", "replace"), keep_blank_values=True)
        )
    headers = tuple(
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, values in request.requestHeaders.getAllRawHeaders()
        for value in values
    )
    body = request.content.read() if request.content is not None else b""
    addr = request.getClientAddress()
    host = request.getHeader(b"host")
    return ProxyRequest(
        method=request.method.decode("ascii"),
        path=request.path.decode("utf-8", "replace"),
        params=params,
        query=query,
        headers=headers,
        body=body,
        client_ip=getattr(addr, "host", "") or "",
        host=host.decode("latin-1") if host else "",
        request_id=request_id(request),
    )
