"""Headless Chromium driven from the reactor over ``--remote-debugging-pipe``
(the DevTools protocol as NUL-terminated JSON: commands into the child's
fd 3, answers and events out of its fd 4), for the dashboard's browser
test. Nothing blocks: the browser is a ``spawnProcess`` child.

``--dump-dom`` cannot be used for a live page: with
``--virtual-time-budget`` the never-ending event stream keeps virtual time
from advancing, and without it the DOM is dumped at the load event, before
the stream's first message. Here the test asks the page itself, with a
promise that resolves once the DOM shows what is expected.

Run as a script it takes a screenshot of a live page (the README's)::

    python -m tests.integration._chromium URL OUT.png [WIDTH HEIGHT]
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

__all__ = ["find_chromium", "Chromium", "launch", "CDPError", "WAIT_JS"]


def find_chromium() -> Optional[str]:
    """Debian's ``chromium`` (or ``chromium-browser``) on PATH, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class CDPError(Exception):
    """A DevTools command failed, or the page threw."""


#: A promise resolving with ``probe()`` once ``ready(probe())`` holds
#: (checked every 100 ms), rejected after ``limit`` ms: %s are replaced by
#: the probe's and the condition's JavaScript and the limit.
WAIT_JS = """
new Promise((resolve, reject) => {
  const probe = () => (%s);
  const ready = (v) => (%s);
  const t0 = Date.now();
  (function check() {
    let value;
    try { value = probe(); } catch (e) { value = String(e); }
    if (ready(value)) resolve(value);
    else if (Date.now() - t0 > %d) reject(new Error("not ready: " + JSON.stringify(value)));
    else setTimeout(check, 100);
  })();
})
"""


class Chromium(ProcessProtocol):
    """One headless browser; :meth:`send` a DevTools command."""

    def __init__(self) -> None:
        self._buffer = b""
        self._next = 0
        self._calls: Dict[int, Deferred[Any]] = {}
        self.ended: Deferred[None] = Deferred()
        #: DevTools events received (method, params), in order.
        self.events: List[Any] = []
        self._stderr = b""

    def send(
        self, method: str, params: Optional[Dict[str, Any]] = None, session: str = ""
    ) -> "Deferred[Any]":
        self._next += 1
        message: Dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        d: Deferred[Any] = Deferred()
        if self.ended.called:
            d.errback(CDPError("the browser has exited"))
            return d
        self._calls[self._next] = d
        assert self.transport is not None
        self.transport.writeToChild(3, json.dumps(message).encode() + b"\0")
        return d

    @inlineCallbacks
    def open(self, url: str) -> Any:
        """A new tab showing ``url``, with console and exceptions reported;
        returns its session id."""
        target = yield self.send("Target.createTarget", {"url": "about:blank"})
        attached = yield self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        session = attached["sessionId"]
        yield self.send("Runtime.enable", session=session)
        yield self.send("Log.enable", session=session)
        yield self.send("Page.navigate", {"url": url}, session=session)
        return session

    @inlineCallbacks
    def evaluate(self, session: str, expression: str) -> Any:
        """The value of ``expression`` in the page (promises awaited)."""
        got = yield self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session=session,
        )
        if "exceptionDetails" in got:
            details = got["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(text)
        return got["result"].get("value")

    def wait_for(self, session: str, probe: str, ready: str, limit_ms: int = 15000) -> "Deferred[Any]":
        """``probe``'s value once ``ready`` (JavaScript using ``v``) holds."""
        return self.evaluate(session, WAIT_JS % (probe, ready, limit_ms))

    def problems(self) -> List[str]:
        """Exceptions thrown in the page and console errors (CSP refusals...)."""
        out = []
        for method, params in self.events:
            if method == "Runtime.exceptionThrown":
                out.append(json.dumps(params.get("exceptionDetails", {}))[:500])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out.append(params["entry"].get("text", ""))
        return out

    @inlineCallbacks
    def close(self) -> Any:
        """Ask the browser to exit; kill it if it does not within 10 s."""
        if self.ended.called:
            return
        self.send("Browser.close").addErrback(lambda _: None)
        from twisted.internet import reactor

        kill = reactor.callLater(10, self._kill)  # type: ignore[attr-defined]
        yield self.ended
        if kill.active():
            kill.cancel()

    def _kill(self) -> None:
        try:
            assert self.transport is not None
            self.transport.signalProcess("KILL")
        except Exception:
            pass

    # -- ProcessProtocol --------------------------------------------------

    def childDataReceived(self, fd: int, data: bytes) -> None:
        if fd == 2:
            self._stderr = (self._stderr + data)[-4000:]
            return
        if fd != 4:
            return
        self._buffer += data
        while b"\0" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\0", 1)
            message = json.loads(raw)
            if "id" in message:
                d = self._calls.pop(message["id"], None)
                if d is None:
                    continue
                if "error" in message:
                    d.errback(CDPError(json.dumps(message["error"])))
                else:
                    d.callback(message.get("result", {}))
            else:
                self.events.append((message.get("method"), message.get("params", {})))

    def processEnded(self, reason: Failure) -> None:
        calls, self._calls = self._calls, {}
        for d in calls.values():
            d.errback(CDPError("the browser exited: " + self._stderr.decode("utf-8", "replace")[-800:]))
        self.ended.callback(None)


def launch(reactor: Any, binary: str, profile: str, width: int = 1280, height: int = 800) -> Chromium:
    """Start ``binary`` headless with its profile in directory ``profile``."""
    browser = Chromium()
    args = [
        binary, "--headless=new", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", "--remote-debugging-pipe",
        f"--user-data-dir={profile}", "--no-first-run",
        "--no-default-browser-check", "--disable-extensions",
        "--disable-background-networking", "--disable-component-update",
        "--hide-scrollbars", f"--window-size={width},{height}", "about:blank",
    ]  # fmt: skip
    env = dict(os.environ, HOME=profile)
    reactor.spawnProcess(
        browser, binary, args, env=env, childFDs={0: "w", 1: "r", 2: "r", 3: "w", 4: "r"}
    )
    return browser


def _screenshot(reactor: Any, url: str, out: str, width: int, height: int) -> Any:
    """Open ``url``, wait until its bus rows are drawn and live, save a PNG."""

    @inlineCallbacks
    def run() -> Any:
        binary = find_chromium()
        if binary is None:
            raise SystemExit("no chromium on PATH")
        with tempfile.TemporaryDirectory() as profile:
            browser = launch(reactor, binary, profile, width, height)
            try:
                session = yield browser.open(url)
                yield browser.wait_for(
                    session,
                    "[document.querySelectorAll('tr[data-bus-id]').length,"
                    " document.getElementById('conn').className,"
                    " document.querySelectorAll('#events li').length]",
                    "v[0] > 0 && v[1].includes('live') && v[2] > 0",
                )
                shot = yield browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
                with open(out, "wb") as f:
                    f.write(base64.b64decode(shot["data"]))
            finally:
                yield browser.close()

    return run()


if __name__ == "__main__":
    import sys

    from twisted.internet.task import react

    argv = sys.argv[1:]
    size = (int(argv[2]), int(argv[3])) if len(argv) > 3 else (1280, 800)
    react(lambda reactor: _screenshot(reactor, argv[0], argv[1], *size))
