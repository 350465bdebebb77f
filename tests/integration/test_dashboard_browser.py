"""The dashboard end to end in headless Chromium (Debian's ``chromium``,
installed by .ci/run): a central polling fake buses over loopback, the
page shows every bus live, then shows the one whose gateway stopped as
offline, with an alert, without reloading."""

from __future__ import annotations

import json
import os
import re
from typing import Any, List

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SkipTest, TestCase

from tests.integration._central_fleet import FakeBus, start_central
from tests.integration._chromium import find_chromium, launch

ROWS = (
    "[...document.querySelectorAll('tr[data-bus-id]')]"
    ".map(r => [r.dataset.busId, r.dataset.state, r.dataset.level])"
)


class DashboardBrowserTests(TestCase):
    timeout = 90

    def setUp(self) -> None:
        self.binary = find_chromium()
        if self.binary is None:
            raise SkipTest(
                "no chromium binary on PATH (chromium or chromium-browser):"
                " apt-get install chromium, as .ci/run does"
            )

    @inlineCallbacks
    def start_browser(self, url: str) -> Any:
        profile = os.path.abspath(self.mktemp())
        os.makedirs(profile)
        assert self.binary is not None
        browser = launch(reactor, self.binary, profile)
        self.addCleanup(browser.close)
        session = yield browser.open(url)
        return browser, session

    @inlineCallbacks
    def test_fleet_live_then_offline(self) -> None:
        """The page lists every bus online, then one stopped bus offline with an alert."""
        buses: List[FakeBus] = [
            FakeBus("bus-1", 61), FakeBus("bus-2", 48),
            FakeBus("bus-3", 72, level="degraded"), FakeBus("bus-10", 55),
        ]  # fmt: skip
        for bus in buses:
            yield bus.start(self)
        url, role = yield start_central(self, buses)
        browser, page = yield self.start_browser(url + "/dashboard/")

        rows = yield browser.wait_for(
            page, ROWS, "v.length === 4 && v.every(r => r[1] === 'online')"
        )
        # Sorted naturally: bus-10 after bus-3.
        self.assertEqual(
            rows,
            [["bus-1", "online", "ok"], ["bus-2", "online", "ok"],
             ["bus-3", "online", "degraded"], ["bus-10", "online", "ok"]],
        )  # fmt: skip
        html = yield browser.evaluate(page, "document.documentElement.outerHTML")
        self.assertEqual(
            re.findall(r'<tr [^>]*data-bus-id="([^"]+)"', html),
            ["bus-1", "bus-2", "bus-3", "bus-10"],
        )
        conn = yield browser.evaluate(page, "document.getElementById('conn').textContent")
        self.assertEqual(conn, "live")
        cells = yield browser.evaluate(
            page,
            "[...document.querySelector('tr[data-bus-id=\"bus-3\"]').cells]"
            ".map(c => c.textContent)",
        )
        self.assertEqual(cells[1], "31")  # labels.line
        self.assertIn("engine: degraded", cells[4])
        self.assertIn("fuel72", cells[5].replace(" ", ""))

        yield buses[1].stop()
        rows = yield browser.wait_for(
            page, ROWS, "v.some(r => r[0] === 'bus-2' && r[1] === 'offline')"
        )
        states = {r[0]: r[1] for r in rows}
        self.assertEqual(states["bus-1"], "online")
        alerts = yield browser.wait_for(
            page,
            "[...document.querySelectorAll('#alerts li')].map(li => li.textContent)",
            "v.some(t => t.startsWith('bus-2 offline'))",
        )
        self.assertEqual(len(alerts), 1)
        chip = yield browser.evaluate(
            page, "document.querySelector('#state-counts .st-offline').dataset.count"
        )
        self.assertEqual(chip, "1")

        # A live critical event lands in the feed and the alerts.
        event = {"id": "ev-1", "bus": "bus-1", "seq": 1, "kind": "door_fault",
                 "severity": "critical", "occurred_at": "2030-01-01T00:00:00Z",
                 "received_at": "2030-01-01T00:00:00Z", "data": {"door": 2}}  # fmt: skip
        role.hub.publish("event", event)
        feed = yield browser.wait_for(
            page,
            "[...document.querySelectorAll('#events li')].map(li => li.dataset.eventId)",
            "v.includes('ev-1')",
        )
        self.assertEqual(feed[0], "ev-1")
        self.assertEqual(browser.problems(), [], json.dumps(browser.events)[:2000])
