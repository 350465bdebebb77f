"""Data pushed by the central (traffic, weather, orders for the driver).

Each configured topic serves, on every config generation:

- ``PUT``/``POST path``: a JSON body (400 if it is not JSON, 413 over the
  topic's ``max_bytes``) becomes the topic's latest value and joins its
  history (the newest ``history`` values); with ``forward`` it is also
  sent, same method and body, to a device service;
- ``GET path``: the latest value, 404 before the first push;
- ``GET path/history``: the kept values, newest first.

Values live in memory only (:class:`TopicStore`): a restart or power loss
forgets them, and the central pushes again. Every route runs the
service's JWT default unless the topic is ``public``. The ``Date`` header
of an authenticated push is the central's clock (:class:`CentralClock`).
"""

from __future__ import annotations

import collections
import json
from typing import Any, Deque, Dict, List, Optional, Sequence

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest

from busd._tls_model import ClientTLSConfig
from busd.bus.answer import json_answer
from busd.config._inbound import InboundConfig, TopicConfig
from busd.errors import GatewayError
from busd.guards import route_guard
from busd.health.clockref import CentralClock
from busd.health.fetch import describe_failure
from busd.health.results import iso_utc
from busd.pipeline.call import read_capped
from busd.pipeline.types import HTTPClient

__all__ = ["Entry", "TopicStore", "InboundService"]

_log = Logger()
_FORWARD_ANSWER_BYTES = 64 * 1024


@attrs.frozen
class Entry:
    """One pushed value and when (epoch seconds) and how it arrived."""

    data: Any
    received_at: float
    method: str

    def to_json(self) -> Dict[str, Any]:
        return {
            "received_at": iso_utc(self.received_at),
            "method": self.method,
            "data": self.data,
        }


class TopicStore:
    """The latest values of each topic, newest last, at most ``history``
    per topic; in memory, so bounded by topics x history x max_bytes."""

    def __init__(self, topics: Sequence[TopicConfig], clock: IReactorTime):
        self._clock = clock
        self._values: Dict[str, Deque[Entry]] = {
            t.name: collections.deque(maxlen=t.history) for t in topics
        }

    def put(self, name: str, data: Any, method: str) -> Entry:
        """Keep ``data`` as ``name``'s latest value, received now."""
        entry = Entry(data, self._clock.seconds(), method)
        self._values[name].append(entry)
        return entry

    def latest(self, name: str) -> Optional[Entry]:
        kept = self._values[name]
        return kept[-1] if kept else None

    def history(self, name: str) -> List[Entry]:
        """The kept values, newest first."""
        return list(reversed(self._values[name]))


class InboundService(Service):
    """The ``inbound`` role (an ``IService`` with :meth:`install`). Its
    store outlives config reloads; its HTTP client (for ``forward``) is
    built with ``client_tls`` on start and its pool closed on stop,
    unless ``client`` is given (tests)."""

    name = "inbound"

    def __init__(
        self,
        config: InboundConfig,
        *,
        reactor: Any,
        clock: IReactorTime,
        client_tls: ClientTLSConfig = ClientTLSConfig(),
        central_clock: Optional[CentralClock] = None,
        client: Optional[HTTPClient] = None,
    ):
        self.config = config
        self.store = TopicStore(config.topics, clock)
        self.central_clock = central_clock or CentralClock(clock)
        self._reactor = reactor
        self._clock = clock
        self._tls = client_tls
        self._client = client
        self._pool: Optional[HTTPConnectionPool] = None

    def startService(self) -> None:
        super().startService()
        if self._client is None and any(t.forward for t in self.config.topics):
            from busd.backends import make_client, make_pool
            from busd.tls import make_tls_policy

            self._pool = make_pool(self._reactor)
            self._client = make_client(
                self._reactor, self._pool, tls_policy=make_tls_policy(self._tls)
            )

    def stopService(self) -> "Deferred[Any]":
        super().stopService()
        pool, self._pool = self._pool, None
        if pool is None:
            return succeed(None)
        self._client = None
        return pool.closeCachedConnections()

    def install(self, app: Any) -> None:
        """Serve every topic's routes on ``app`` (a new generation)."""
        if app.config.inbound != self.config:
            _log.warn("busgw/inbound changes take effect after a restart")
        for topic in self.config.topics:
            self._install_topic(app, topic)

    def _install_topic(self, app: Any, topic: TopicConfig) -> None:
        validator = None if topic.public else app.config.default_auth
        guard = route_guard(validator, app.guard_context, topic.path)
        name = f"inbound:{topic.name}"
        history = topic.path.rstrip("/") + "/history"

        def guarded(answer: Any) -> Any:
            def handle(request: IRequest) -> Any:
                if guard is None:
                    return answer(request, topic)
                d = guard(request)
                return d.addCallback(lambda _: answer(request, topic, True))

            return handle

        app.add_route(topic.path, topic.methods, name, guarded(self._push))
        app.add_route(
            topic.path, ["GET"], name + ":latest", guarded(_latest(self.store))
        )
        app.add_route(
            history, ["GET"], name + ":history", guarded(_history(self.store))
        )

    def _push(
        self, request: IRequest, topic: TopicConfig, trusted: bool = False
    ) -> Any:
        body = _read_body(request, topic.max_bytes)
        try:
            data = json.loads(body, parse_constant=_reject)
        except (ValueError, UnicodeDecodeError):
            raise GatewayError(
                "the body must be a JSON document",
                status=400,
                code="bad_request",
            ) from None
        date = request.getHeader(b"date")
        if trusted and date:
            # A token from the central: its clock counts (a public topic's
            # callers could be anyone).
            self.central_clock.observe(date.decode("latin-1"))
        method = request.method.decode("ascii")
        entry = self.store.put(topic.name, data, method)
        answer: Dict[str, Any] = {
            "topic": topic.name,
            "stored": True,
            "received_at": iso_utc(entry.received_at),
        }
        if topic.forward is None:
            return json_answer(request, 200, answer)
        d = self._forward(topic, method, body)

        def forwarded(outcome: Dict[str, Any]) -> bytes:
            answer["forward"] = outcome
            ok = "status" in outcome and 200 <= outcome["status"] < 300
            # The value is stored either way; as for a failed backend,
            # the header says the answer is not complete.
            request.setHeader(
                b"X-Krakend-Completed", b"true" if ok else b"false"
            )
            return json_answer(request, 200, answer)

        return d.addCallback(forwarded)

    def _forward(
        self, topic: TopicConfig, method: str, body: bytes
    ) -> "Deferred[Dict[str, Any]]":
        """Send ``body`` on to the topic's device service; fires with
        ``{"status": n}`` or ``{"error": why}``, never fails."""
        forward = topic.forward
        assert forward is not None and self._client is not None
        headers = Headers({b"Content-Type": [b"application/json"]})
        d = self._client.request(
            method, forward.url, headers=headers, data=body, unbuffered=True
        )

        def answered(response: Any) -> "Deferred[Dict[str, Any]]":
            drained = read_capped(response, _FORWARD_ANSWER_BYTES)
            return drained.addBoth(lambda _: {"status": response.code})

        d.addCallback(answered)
        d.addTimeout(forward.timeout, self._clock)

        def failed(failure: Failure) -> Dict[str, Any]:
            why = describe_failure(failure, forward.timeout)
            _log.warn(
                "inbound {topic}: forward to {url} failed: {why}",
                topic=topic.name,
                url=forward.url,
                why=why,
            )
            return {"error": why}

        return d.addErrback(failed)


def _latest(store: TopicStore) -> Any:
    def answer(request: IRequest, topic: TopicConfig, *_: Any) -> bytes:
        entry = store.latest(topic.name)
        if entry is None:
            raise GatewayError(
                f"no data yet on topic {topic.name}",
                status=404,
                code="not_found",
            )
        return json_answer(request, 200, {"topic": topic.name, **entry.to_json()})

    return answer


def _history(store: TopicStore) -> Any:
    def answer(request: IRequest, topic: TopicConfig, *_: Any) -> bytes:
        items = [e.to_json() for e in store.history(topic.name)]
        return json_answer(request, 200, {"topic": topic.name, "items": items})

    return answer


def _read_body(request: IRequest, limit: int) -> bytes:
    """The request body, or 413 past ``limit`` bytes (announced or read)."""
    length = request.getHeader(b"content-length")
    too_big = GatewayError(
        f"the body exceeds {limit} bytes", status=413, code="too_large"
    )
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_big
    body = request.content.read(limit + 1) if request.content else b""
    if len(body) > limit:
        raise too_big
    return body


def _reject(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")

