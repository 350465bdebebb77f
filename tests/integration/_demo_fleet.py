"""Helpers for the tests that run the real demo fleet in-process
(:func:`busd.demo.fleet.start_fleet`): a central config with a test-fast
poll, the fleet's options on free loopback ports, and a watch on the
states the central's poller publishes."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Tuple

from twisted.internet import reactor
from twisted.internet.defer import Deferred

from busd.demo.fleet import FleetOptions
from busd.demo.fleet_config import FleetPorts

__all__ = ["ETC", "WAIT_S", "fast_central", "fleet_options", "Watch"]

ETC = os.path.join(os.path.dirname(__file__), "..", "..", "etc")
#: Bound on each wait: a broken fleet fails the test instead of hanging it.
WAIT_S = 30.0


def fast_central(path: str, **poll: Any) -> str:
    """etc/central.json with a poll fast enough for a test (``poll``
    overrides its keys), written to ``path``; returns ``path``."""
    with open(os.path.join(ETC, "central.json")) as handle:
        raw = json.load(handle)
    raw["extra_config"]["busgw/central"]["poll"].update(
        dict(
            interval="100ms",
            timeout="1s",
            jitter=0,
            backoff_max="200ms",
            stale_after="1s",
            offline_after="2s",
        ),
        **poll,
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(raw, handle)
    return path


def fleet_options(state: str, buses: int, **poll: Any) -> FleetOptions:
    """``buses`` demo buses from etc/busgw.json and a central from
    :func:`fast_central` (``poll`` overrides), files under ``state``,
    every port picked free."""
    return FleetOptions(
        buses=buses,
        bus_config=os.path.join(ETC, "busgw.json"),
        central_config=fast_central(os.path.join(state, "central.json"), **poll),
        state_dir=state,
        ports=FleetPorts(central=0, control=0, bus=0, devices=0),
    )


class Watch:
    """The state of every bus as the central's poller publishes it (its
    ``"bus"`` messages on the role's hub); :meth:`until` fires once a
    condition on those states holds, or fails after :data:`WAIT_S`."""

    def __init__(self, role: Any):
        self.states: Dict[str, str] = {
            s["id"]: s["state"] for s in role.state.summaries()
        }
        self._waiting: List[Tuple[Callable[[Dict[str, str]], bool], Deferred]] = []
        hub = role.hub
        publish = hub.publish

        def watched(kind: str, data: Any) -> None:
            if kind == "bus":
                self.states[data["id"]] = data["state"]
                for waiter in list(self._waiting):
                    if waiter[0](self.states):
                        self._waiting.remove(waiter)
                        waiter[1].callback(dict(self.states))
            publish(kind, data)

        hub.publish = watched

    def until(self, condition: Callable[[Dict[str, str]], bool]) -> Deferred:
        if condition(self.states):
            d: Deferred = Deferred()
            d.callback(dict(self.states))
            return d
        d = Deferred()
        self._waiting.append((condition, d))
        return d.addTimeout(WAIT_S, reactor)
