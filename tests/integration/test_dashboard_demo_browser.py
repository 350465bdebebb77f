"""The dashboard of the REAL demo fleet (``busgw demo --buses 3`` in this
test's reactor: real bus gateways with their simulated devices and a
central polling them) in headless Chromium (Debian's ``chromium``,
installed by .ci/run): the page shows every demo bus online with its line
and values, and a bus switched off through the demo control listener
turns stale, then offline, with an alert, while the others stay online."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SkipTest, TestCase

from busd.demo.fleet import start_fleet
from tests.integration._chromium import find_chromium, launch
from tests.integration._demo_fleet import fleet_options
from tests.integration._util import client

#: The demo's buses and their lines (busd.demo.fleet_config.LINES, in turn).
LINES = {"FW-0042": "FW-12", "FW-0043": "FW-7", "FW-0044": "FW-12"}
#: The values the central's poll extracts (etc/central.json "values")
#: that the simulation always reports as numbers.
NUMBERS = ("fuel", "passengers", "speed")
#: Bound (ms) on each in-page wait.
LIMIT_MS = 10000

#: Every bus row as {id, state, level, line, values: {name: text}}.
ROWS = """
[...document.querySelectorAll('tr[data-bus-id]')].map(r => ({
  id: r.dataset.busId, state: r.dataset.state, level: r.dataset.level,
  line: r.cells[1].textContent,
  values: Object.fromEntries([...r.cells[5].querySelectorAll('.kv')].map(
    kv => [kv.querySelector('i').textContent,
           kv.textContent.slice(kv.querySelector('i').textContent.length)])),
}))
"""

#: True once every expected bus is shown online with its line and numbers.
ALL_LIVE = "v.length === %d && v.every(r => r.state === 'online' && r.line === %s[r.id]" \
    " && %s.every(k => /^-?[0-9.]+$/.test(r.values[k] || '')))"

#: From now on, window.__changes lists every [bus, new state] the page
#: shows (an observer on the rows' data-state), so a state shown only
#: briefly is still seen, and any other row that changed is caught.
RECORD_CHANGES = """
(() => {
  window.__changes = [];
  new MutationObserver(ms => { for (const m of ms) {
      // Each render sets data-state again: keep the actual changes.
      if (m.oldValue !== m.target.dataset.state)
        window.__changes.push([m.target.dataset.busId, m.target.dataset.state]);
    } })
    .observe(document.getElementById('buses'), {subtree: true, attributes: true,
             attributeOldValue: true, attributeFilter: ['data-state']});
  return true;
})()
"""


class DemoDashboardBrowserTests(TestCase):
    """Three simulated buses, their central and a headless browser on its dashboard."""

    timeout = 60

    def setUp(self) -> None:
        self.binary = find_chromium()
        if self.binary is None:
            raise SkipTest(
                "no chromium binary on PATH (chromium or chromium-browser):"
                " apt-get install chromium, as .ci/run does"
            )

    @inlineCallbacks
    def test_demo_fleet_live_then_one_bus_offline(self) -> Any:
        """The page shows the three demo buses online with line and values,
        then FW-0043, switched off, stale and then offline (offline count 1,
        an alert naming it) while the other two never leave online."""
        state = os.path.abspath(self.mktemp())
        options = fleet_options(
            state, buses=3, interval="300ms", backoff_max="300ms",
            stale_after="1s", offline_after="2s",
        )
        fleet = yield start_fleet(reactor, options)
        self.addCleanup(fleet.stop)
        profile = os.path.abspath(self.mktemp())
        os.makedirs(profile)
        assert self.binary is not None
        browser = launch(reactor, self.binary, profile)
        # Cleanups run last-in first-out: the browser goes before the fleet.
        self.addCleanup(browser.close)
        page = yield browser.open(fleet.dashboard_url)

        rows = yield browser.wait_for(
            page,
            ROWS,
            ALL_LIVE % (len(LINES), json.dumps(LINES), json.dumps(NUMBERS)),
            LIMIT_MS,
        )
        self.assertEqual([r["id"] for r in rows], sorted(LINES))
        self.assertEqual({r["id"]: r["line"] for r in rows}, LINES)
        for row in rows:
            self.assertIn(row["level"], ("ok", "degraded", "critical"), row)
            self.assertLessEqual(set(NUMBERS), set(row["values"]), row)
        conn = yield browser.evaluate(page, "document.getElementById('conn').textContent")
        self.assertEqual(conn, "live")

        recording = yield browser.evaluate(page, RECORD_CHANGES)
        self.assertTrue(recording)
        response = yield client(self).post(fleet.control_url + "/buses/FW-0043/stop")
        stopped = yield response.json()
        self.assertEqual((response.code, stopped["running"]), (200, False))

        changes: List[List[str]] = yield browser.wait_for(
            page,
            "window.__changes",
            "v.some(c => c[0] === 'FW-0043' && c[1] === 'offline')",
            LIMIT_MS,
        )
        # Stale first, then offline; nothing else changed on the page.
        self.assertEqual(changes, [["FW-0043", "stale"], ["FW-0043", "offline"]])
        rows = yield browser.evaluate(page, ROWS)
        self.assertEqual(
            {r["id"]: r["state"] for r in rows},
            {"FW-0042": "online", "FW-0043": "offline", "FW-0044": "online"},
        )
        alerts = yield browser.wait_for(
            page,
            "[...document.querySelectorAll('#alerts li')]"
            ".map(li => [li.dataset.busId || '', li.textContent])",
            "v.some(a => a[0] === 'FW-0043')",
            LIMIT_MS,
        )
        self.assertEqual(len(alerts), 1, alerts)
        self.assertTrue(alerts[0][1].startswith("FW-0043 offline"), alerts)
        counts: Dict[str, Any] = yield browser.evaluate(
            page,
            "Object.fromEntries([...document.querySelectorAll('#state-counts .chip')]"
            ".map(c => [c.dataset.name, c.dataset.count]))",
        )
        self.assertEqual(
            counts, {"online": "2", "stale": "0", "offline": "1", "unknown": "0"}
        )
        self.assertEqual(browser.problems(), [], json.dumps(browser.events)[:2000])
