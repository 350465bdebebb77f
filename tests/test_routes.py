"""Tests for busd.routes: the precompiled table answers as Klein would,
and hands everything else to Klein."""

from typing import Any, List

from klein import Klein
from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from busd.routes import PrecompiledRoutes, precompile
from busd.testing import JSONBackend
from tests.helpers import B1, Gateway, config, get, header

VEHICLE = {"speed": 40}


def _gateway() -> Gateway:
    endpoints = [
        {"endpoint": "/x", "backend": [{"host": [B1], "url_pattern": "/v"}]},
        {"endpoint": "/y/{id}", "backend": [{"host": [B1], "url_pattern": "/v"}]},
    ]
    return Gateway(config(endpoints), {B1: JSONBackend({"/v": (200, VEHICLE)})})


class TableTests(SynchronousTestCase):
    def test_only_werkzeugs_own_matches(self) -> None:
        """A candidate is kept only if werkzeug routes its path to it."""
        app = Klein()
        app.route("/a", methods=["GET"], endpoint="first")(lambda r: b"1")
        app.route("/b/<p>", methods=["GET"], endpoint="param")(lambda r, p: b"2")
        handler = lambda r: b""  # noqa: E731
        table = precompile(
            app,
            [
                ("GET", "/a", "first", handler),
                ("GET", "/a", "someone-else", handler),
                ("GET", "/b/x", "param", handler),
                ("GET", "/caf%C3%A9", "first", handler),
                ("POST", "/a", "first", handler),
            ],
        )
        self.assertEqual(list(table), [(b"GET", b"/a")])

    def test_gateway_table(self) -> None:
        """Parameterless endpoints are precompiled; parameterised ones are not."""
        gw = _gateway()
        resource = gw.app.resource()
        self.assertEqual(list(resource._table), [(b"GET", b"/x")])


class AnswerTests(SynchronousTestCase):
    def test_same_answer_as_klein(self) -> None:
        """/x (precompiled) and /x/ (Klein, strict_slashes off) answer alike."""
        gw = _gateway()
        fast, fast_body = get(self, gw, "/x")
        slow, slow_body = get(self, gw, "/x/")
        self.assertEqual(fast_body, slow_body)
        self.assertEqual(fast.code, slow.code)
        for name in ("Content-Type", "Content-Length", "X-Krakend-Completed", "X-Krakend"):
            self.assertEqual(header(fast, name), header(slow, name), name)
        self.assertIsNone(header(fast, "Transfer-Encoding"))

    def test_other_requests_reach_klein(self) -> None:
        """Parameters, HEAD, unknown paths and wrong methods still go through Klein."""
        gw = _gateway()
        self.assertEqual(get(self, gw, "/y/1")[0].code, 200)
        self.assertEqual(get(self, gw, "/x", method="HEAD")[0].code, 200)
        self.assertEqual(get(self, gw, "/nope")[0].code, 404)
        response, _ = get(self, gw, "/x", method="DELETE")
        allowed = sorted(header(response, "Allow").split(", "))
        self.assertEqual((response.code, allowed), (405, ["GET", "HEAD"]))


class _Klein:
    def __init__(self) -> None:
        self.seen: List[Any] = []

    def render(self, request: Any) -> bytes:
        self.seen.append(request)
        return b"klein"


def _request(path: bytes = b"/a") -> DummyRequest:
    request = DummyRequest([b"a"])
    request.path = path
    return request


class RenderTests(SynchronousTestCase):
    def test_deferred_answer_and_prepath(self) -> None:
        """A Deferred answer is written when it fires; segments move to prepath."""
        d: Deferred = Deferred()
        routes = PrecompiledRoutes(_Klein(), {(b"GET", b"/a"): lambda r: d}, None)  # type: ignore[arg-type]
        request = _request()
        self.assertIs(routes.render(request), NOT_DONE_YET)
        self.assertEqual((request.prepath, request.postpath), ([b"a"], []))
        d.callback(b"body")
        self.assertEqual((request.written, request.finished), ([b"body"], 1))

    def test_client_gone_cancels(self) -> None:
        """A lost client cancels the handler's Deferred and nothing is written."""
        cancelled: List[bool] = []
        d: Deferred = Deferred(lambda _: cancelled.append(True))
        d.addErrback(lambda f: f.trap(CancelledError))  # the handler's own errback
        routes = PrecompiledRoutes(_Klein(), {(b"GET", b"/a"): lambda r: d}, None)  # type: ignore[arg-type]
        request = _request()
        routes.render(request)
        request.processingFailed(Failure(ConnectionError("gone")))
        self.assertEqual(cancelled, [True])
        self.assertEqual((request.written, request.finished), ([], 0))

    def test_errors_go_to_the_error_handler(self) -> None:
        """A handler that raises is answered by the app's error handler."""
        seen: List[Failure] = []

        def boom(request: Any) -> bytes:
            raise RuntimeError("bug")

        def on_error(request: Any, failure: Failure) -> bytes:
            seen.append(failure)
            return b"error"

        routes = PrecompiledRoutes(_Klein(), {(b"GET", b"/a"): boom}, on_error)
        request = _request()
        routes.render(request)
        self.assertEqual(request.written, [b"error"])
        self.assertTrue(seen[0].check(RuntimeError))

    def test_unknown_goes_to_klein(self) -> None:
        """A request not in the table is Klein's."""
        klein = _Klein()
        routes = PrecompiledRoutes(klein, {}, None)  # type: ignore[arg-type]
        request = _request(b"/b")
        self.assertEqual(routes.render(request), b"klein")
        self.assertEqual(klein.seen, [request])
