"""Fan-out and merge: parallel, sequential and concurrent calls.

Parts are merged in **config order** (lura merges in arrival order, which
makes the answer depend on timing when two backends share a key). A failed
or timed-out backend makes the response partial; only when nothing at all
arrived does the endpoint fail (KRAKEND.md 3.5, 3.6, 3.9).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Sequence, Tuple

import attrs
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    TimeoutError,
    maybeDeferred,
)
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from busd.errors import BackendError, BackendTimeout
from busd.pipeline._fanout import gather_timed
from busd.pipeline.reshape import MISSING, get_path
from busd.pipeline.types import Proxy, ProxyRequest, ProxyResponse

__all__ = [
    "MergeError",
    "combine",
    "with_timeout",
    "parallel",
    "sequential",
    "concurrent",
    "describe",
]

_log = Logger()
_RESP_PARAM = re.compile(r"^resp(\d+)(?:_(.+))?$")


class MergeError(BackendError):
    """Every backend of an endpoint failed; ``errors`` holds each cause."""

    def __init__(self, errors: Sequence[BaseException]):
        self.errors = tuple(errors)
        super().__init__("\n".join(describe(e) for e in self.errors))


def describe(error: object) -> str:
    """A one-line text for an error (or a Failure), for logs and error bodies."""
    if isinstance(error, Failure):
        error = error.value
    return str(error) or type(error).__name__


def combine(parts: Sequence[ProxyResponse]) -> Dict[str, Any]:
    """Shallow merge of the parts' data; a later part (in config order)
    overwrites an earlier one's key."""
    if len(parts) == 1:
        return parts[0].data
    merged: Dict[str, Any] = {}
    for part in parts:
        merged.update(part.data)
    return merged


def with_timeout(
    proxy: Proxy, seconds: float, clock: IReactorTime, what: str = "backend"
) -> Proxy:
    """Bound ``proxy`` by ``seconds`` on ``clock``; on expiry the call is
    cancelled (down to the socket) and fails with :class:`BackendTimeout`."""
    if seconds <= 0:
        return proxy

    def timed(req: ProxyRequest) -> "Deferred[ProxyResponse]":
        d: Deferred[ProxyResponse] = maybeDeferred(proxy, req)
        if d.called and not d.paused:
            # Answered at once (a cache hit): no timer to set and cancel.
            # (A paused Deferred waits on another one: still in flight.)
            return d
        d.addTimeout(seconds, clock)
        d.addErrback(_timeout_to_backend, seconds, what)
        return d

    return timed


def _timeout_to_backend(failure: Failure, seconds: float, what: str) -> Failure:
    if failure.check(TimeoutError):
        return Failure(BackendTimeout(f"{what} timed out after {seconds:g}s"))
    return failure


def _log_failure(endpoint: str, index: int, failure: Failure) -> None:
    _log.warn(
        "endpoint {endpoint} backend {backend_index} failed: {error}",
        endpoint=endpoint,
        backend_index=index,
        error=describe(failure.value),
    )


def parallel(
    proxies: Sequence[Proxy], seconds: float, clock: IReactorTime, endpoint: str
) -> Proxy:
    """Call every backend at once, each bounded by ``seconds``; merge what
    answered in config order. Cancelling the result cancels every call.
    One timer bounds them all (busd.pipeline._fanout)."""

    def timeout() -> BaseException:
        return BackendTimeout(f"backend timed out after {seconds:g}s")

    def fan_out(req: ProxyRequest) -> "Deferred[ProxyResponse]":
        calls = [maybeDeferred(p, req) for p in proxies]
        gathered = gather_timed(calls, seconds, clock, timeout)
        return gathered.addCallback(_merge_results, endpoint)

    return fan_out


def _merge_results(
    results: List[Tuple[bool, Any]], endpoint: str
) -> ProxyResponse:
    parts: List[ProxyResponse] = []
    failures: List[BaseException] = []
    texts: List[str] = []
    for index, (ok, value) in enumerate(results):
        if ok:
            parts.append(value)
            texts.extend(value.errors)
        elif value.check(CancelledError):
            # The client went away: nothing to merge or log.
            raise CancelledError()
        else:
            _log_failure(endpoint, index, value)
            failures.append(value.value)
            texts.append(describe(value.value))
    if not parts:
        raise MergeError(failures)
    return ProxyResponse(
        data=combine(parts),
        is_complete=not failures and all(p.is_complete for p in parts),
        errors=tuple(texts),
    )


def _resp_params(
    index: int, data: Dict[str, Any], wanted: Sequence[Tuple[int, str, str]]
) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for n, path, name in wanted:
        if n == index:
            value = data if not path else get_path(data, path)
            if value is not MISSING:
                out[name] = value
    return out


def sequential(
    proxies: Sequence[Proxy],
    placeholders: Sequence[str],
    seconds: float,
    clock: IReactorTime,
    endpoint: str,
) -> Proxy:
    """Call backends one after another within one shared budget of
    ``seconds``; ``{resp<N>_<field>}`` in later URLs is filled from backend
    N's shaped data. Backend 0 failing fails the endpoint; a later failure
    or incomplete part stops the chain with what was collected."""
    wanted: List[Tuple[int, str, str]] = []
    for name in placeholders:
        m = _RESP_PARAM.match(name)
        if m:
            wanted.append((int(m.group(1)), m.group(2) or "", name))

    async def chain(req: ProxyRequest) -> ProxyResponse:
        deadline = clock.seconds() + seconds
        parts: List[ProxyResponse] = []
        errors: List[str] = []
        params = dict(req.params)
        current = req
        for index, proxy in enumerate(proxies):
            step = with_timeout(proxy, max(deadline - clock.seconds(), 1e-6), clock)
            try:
                part = await step(current)
            except CancelledError:
                raise
            except Exception as exc:
                if index == 0:
                    raise
                _log_failure(endpoint, index, Failure())
                errors.append(describe(exc))
                break
            parts.append(part)
            errors.extend(part.errors)
            if not part.is_complete:
                break
            if wanted:
                params.update(_resp_params(index, part.data, wanted))
                current = attrs.evolve(req, params=params)
        complete = not errors and len(parts) == len(proxies) and all(
            p.is_complete for p in parts
        )
        return ProxyResponse(
            data=combine(parts), is_complete=complete, errors=tuple(errors)
        )

    def run(req: ProxyRequest) -> "Deferred[ProxyResponse]":
        return Deferred.fromCoroutine(chain(req))

    return run


def concurrent(
    proxy: Proxy, count: int, seconds: float, clock: IReactorTime
) -> Proxy:
    """Send ``count`` identical calls; the first complete answer wins and the
    others are cancelled. Errors count only when every call fails."""
    timed = with_timeout(proxy, seconds, clock)

    def race(req: ProxyRequest) -> "Deferred[ProxyResponse]":
        calls = [maybeDeferred(timed, req) for _ in range(count)]
        state: Dict[str, Any] = {"left": count, "fallback": None, "error": None}

        def cancel_all() -> None:
            for c in calls:
                c.cancel()

        result: Deferred[ProxyResponse] = Deferred(lambda _: cancel_all())

        def settle(value: Any) -> None:
            if result.called:
                return
            if isinstance(value, Failure):
                result.errback(value)
            else:
                result.callback(value)
            cancel_all()

        def on_done(value: Any) -> None:
            state["left"] -= 1
            if isinstance(value, Failure):
                if not value.check(CancelledError) or state["error"] is None:
                    state["error"] = value
            elif value.is_complete:
                settle(value)
                return
            elif state["fallback"] is None:
                state["fallback"] = value
            if state["left"] == 0:
                settle(state["fallback"] or state["error"])

        for c in calls:
            c.addBoth(on_done)
        return result

    return race
