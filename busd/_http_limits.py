"""Request limits enforced while twisted.web reads a request.

:class:`LimitedChannel` is mixed into whatever ``HTTPChannel`` class a
``Site`` builds (``busd.limits.apply_limits`` does it, so a test's own
Site subclass keeps its channel class): it refuses a head over
``max_header_bytes`` or with more than ``max_headers`` fields (431), a
``Content-Length`` over ``max_body_bytes`` as soon as the head is in, and
a chunked body the moment it passes the cap (413, nothing more is
buffered), and it bounds the time to receive a request: the head within
``read_header_timeout`` and the whole request within ``read_timeout``,
counted from the connection (first request) or from the first byte of the
next one. A trickling client (slowloris) resets Twisted's idle timeout
with every byte, but not these deadlines. A refusal is a JSON answer
written straight to the transport, then the connection is closed.

:class:`LimitedRequest` counts the body bytes the channel decodes.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional, Type, TypeVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http

from busd.limits import RequestLimits

__all__ = [
    "LimitedChannel",
    "LimitedRequest",
    "limited_channel_class",
    "limited_request_class",
    "configure_channel",
]

_IDLE, _HEAD, _BODY, _HANDLING = "idle", "head", "body", "handling"
_REASONS = {
    408: b"Request Timeout",
    413: b"Request Entity Too Large",
    431: b"Request Header Fields Too Large",
}


class LimitedChannel(http.HTTPChannel):
    """An ``HTTPChannel`` mixin enforcing :class:`RequestLimits`."""

    busgw_limits: RequestLimits = RequestLimits()
    busgw_clock: Optional[IReactorTime] = None

    _lim_state = _IDLE
    _lim_got_bytes = False
    _lim_refused = False
    _lim_head_bytes = 0
    _lim_head_count = 0
    _lim_body_bytes = 0
    _lim_head_call: Optional[IDelayedCall] = None
    _lim_read_call: Optional[IDelayedCall] = None

    # -- lifecycle ---------------------------------------------------

    def connectionMade(self) -> None:
        super().connectionMade()
        # As Go's server: the first head's deadline runs from the accept,
        # so connecting and saying nothing is bounded too.
        self._lim_start()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lim_cancel()
        super().connectionLost(reason)

    def requestDone(self, request: Any) -> None:
        if self.persistent:
            # Set before super(): it replays pipelined bytes at once.
            self._lim_state = _IDLE
        super().requestDone(request)

    # -- reading -------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._lim_refused:
            return
        if self._lim_state == _IDLE:
            self._lim_start()
        if self._lim_state == _HEAD:
            self._lim_got_bytes = True
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._lim_refused:
            return
        if self._lim_state == _IDLE:
            self._lim_start()  # a pipelined request replayed from the buffer
        if self._lim_state == _HEAD:
            self._lim_got_bytes = True
            self._lim_head_bytes += len(line)
            if self._lim_head_bytes > self.busgw_limits.max_header_bytes:
                self._lim_refuse(431, "request header too large")
                return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._lim_refuse(431, "request header too large")

    def headerReceived(self, line: bytes) -> bool:
        ok: bool = super().headerReceived(line)
        if ok and not self._lim_refused:
            self._lim_head_count += 1
            if self._lim_head_count > self.busgw_limits.max_headers:
                self._lim_refuse(431, "too many request headers")
                return False
        return ok

    def allHeadersReceived(self) -> None:
        self._lim_cancel_call("_lim_head_call")
        if self._lim_refused:
            return
        length = self.length  # None when chunked
        if length is not None and length > self.busgw_limits.max_body_bytes:
            # Before super(): no "100 Continue", nothing of the body read.
            self._lim_refuse(413, "request body too large")
            return
        self._lim_state = _BODY
        self._lim_body_bytes = 0
        super().allHeadersReceived()

    def rawDataReceived(self, data: bytes) -> None:
        if not self._lim_refused:
            super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        if self._lim_refused:
            return  # the end of a chunked body already refused
        self._lim_cancel()
        self._lim_state = _HANDLING
        super().allContentReceived()

    def busgw_body_chunk(self, size: int) -> bool:
        """Count ``size`` decoded body bytes; False (and the request is
        refused) once they pass ``max_body_bytes``."""
        if self._lim_refused:
            return False
        self._lim_body_bytes += size
        if self._lim_body_bytes > self.busgw_limits.max_body_bytes:
            self._lim_refuse(413, "request body too large")
            return False
        return True

    # -- deadlines and refusals ------------------------------------------

    def _lim_start(self) -> None:
        self._lim_cancel()
        self._lim_state = _HEAD
        self._lim_got_bytes = False
        self._lim_head_bytes = self._lim_head_count = 0
        limits, clock = self.busgw_limits, self.busgw_clock
        if clock is None:
            return
        self._lim_head_call = clock.callLater(
            limits.read_header_timeout, self._lim_expired, "_lim_head_call"
        )
        self._lim_read_call = clock.callLater(
            limits.read_timeout, self._lim_expired, "_lim_read_call"
        )

    def _lim_expired(self, name: str) -> None:
        setattr(self, name, None)
        if self._lim_got_bytes or self._lim_state == _BODY:
            self._lim_refuse(408, "request not received in time")
        else:
            # Nothing of a request arrived: close quietly, as Go does.
            self._lim_refused = True
            self._lim_cancel()
            if self.transport is not None:
                self.transport.loseConnection()

    def _lim_cancel_call(self, name: str) -> None:
        call = getattr(self, name)
        if call is not None:
            setattr(self, name, None)
            if call.active():
                call.cancel()

    def _lim_cancel(self) -> None:
        self._lim_cancel_call("_lim_head_call")
        self._lim_cancel_call("_lim_read_call")

    def _lim_refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with busgw's JSON error body and close."""
        if self._lim_refused:
            return
        self._lim_refused = True
        self._lim_cancel()
        if self.transport is None:
            return
        body = json.dumps({"error": message, "status": status}).encode()
        head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
        head += b"Content-Type: application/json; charset=utf-8\r\n"
        head += b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        self.transport.write(head + body)
        self.transport.loseConnection()


class LimitedRequest(http.Request):
    """A ``Request`` mixin that reports each decoded body chunk to its
    :class:`LimitedChannel` before keeping it."""

    def handleContentChunk(self, data: bytes) -> None:
        count = getattr(self.channel, "busgw_body_chunk", None)
        if count is not None and not count(len(data)):
            return
        super().handleContentChunk(data)


_R = TypeVar("_R", bound=http.Request)
# Classes made once per base class (a handful per process).
_CHANNELS: Dict[type, Type[LimitedChannel]] = {}
_REQUESTS: Dict[type, type] = {}


def limited_channel_class(base: Type[http.HTTPChannel]) -> Type[LimitedChannel]:
    """``base`` with :class:`LimitedChannel` mixed in (made once per base)."""
    if issubclass(base, LimitedChannel):
        return base
    if base not in _CHANNELS:
        _CHANNELS[base] = type(
            f"Limited{base.__name__}", (LimitedChannel, base), {}
        )
    return _CHANNELS[base]


def limited_request_class(base: Type[_R]) -> Type[_R]:
    """``base`` with :class:`LimitedRequest` mixed in (made once per base)."""
    if issubclass(base, LimitedRequest):
        return base
    if base not in _REQUESTS:
        _REQUESTS[base] = type(
            f"Limited{base.__name__}", (LimitedRequest, base), {}
        )
    made: Type[_R] = _REQUESTS[base]
    return made


def configure_channel(
    channel: http.HTTPChannel, limits: RequestLimits, clock: IReactorTime
) -> LimitedChannel:
    """Turn a freshly built (not yet connected) ``channel`` into a
    :class:`LimitedChannel` enforcing ``limits`` on ``clock``."""
    channel.__class__ = limited_channel_class(type(channel))
    assert isinstance(channel, LimitedChannel)
    channel.busgw_limits = limits
    channel.busgw_clock = clock
    # Twisted's own checks answer a bare 400; set just past ours so that
    # ours (431, JSON) always speak first.
    channel.maxHeaders = limits.max_headers + 1
    channel.totalHeadersSize = limits.max_header_bytes + 1
    channel.MAX_LENGTH = limits.max_header_bytes
    return channel
