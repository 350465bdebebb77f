"""Helpers for the event outbox tests: configs, keys, serial runners."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred, maybeDeferred

from busd.auth.sign import generate_key, private_pem, public_jwks
from busd.bus.event import NewEvent, new_id
from busd.config.load import parse_config

NOW = 1_750_000_000.0
EVENT = {
    "kind": "tyre_pressure",
    "severity": "warning",
    "occurred_at": "2025-06-01T08:30:00Z",
    "data": {"wheel": "rear-left", "kpa": 580},
}


def sync_run(fn: Callable[..., Any], *args: Any) -> "Deferred[Any]":
    """A runner doing the work at once (the outbox's worker, in tests)."""
    return maybeDeferred(fn, *args)


class QueueRunner:
    """A serial runner whose work waits until :meth:`step` or
    :meth:`drain`, as the real worker thread's does until it runs."""

    def __init__(self) -> None:
        self.queue: List[
            Tuple[Callable[..., Any], Tuple[Any, ...], Deferred[Any]]
        ] = []
        self.calls: List[str] = []

    def __call__(self, fn: Callable[..., Any], *args: Any) -> "Deferred[Any]":
        d: Deferred[Any] = Deferred()
        self.queue.append((fn, args, d))
        return d

    def step(self) -> None:
        fn, args, d = self.queue.pop(0)
        self.calls.append(getattr(fn, "__name__", "?"))
        try:
            result = fn(*args)
        except BaseException as exc:
            d.errback(exc)
        else:
            d.callback(result)

    def drain(self) -> None:
        while self.queue:
            self.step()


def write_key(directory: str, name: str = "bus") -> Tuple[str, Any]:
    """A new ES256 key as ``directory/name.key.pem``; (path, key)."""
    os.makedirs(directory, exist_ok=True)
    key = generate_key("ES256")
    path = os.path.join(directory, f"{name}.key.pem")
    with open(path, "wb") as handle:
        handle.write(private_pem(key))
    return path, key


def write_jwks(directory: str, key: Any, kid: str) -> str:
    """The public JWKS of ``key`` as a file, for a validator block."""
    path = os.path.join(directory, f"{kid}.jwks.json")
    with open(path, "w") as handle:
        json.dump(public_jwks(key, kid), handle)
    return path


def bus_block(state_dir: str, key_path: str, **over: Any) -> Dict[str, Any]:
    """A ``busgw/bus`` block; ``over`` replaces top-level keys."""
    block: Dict[str, Any] = {
        "id": "FW-0042",
        "state_dir": state_dir,
        "central": {
            "url": "http://central.test",
            "allow_http": True,
            "key": key_path,
        },
    }
    block.update(over)
    return block


def gateway_config(
    block: Dict[str, Any], endpoints: Optional[list] = None, **service: Any
) -> Any:
    """A parsed GatewayConfig with ``block`` as its busgw/bus."""
    extra = dict(service.pop("extra_config", {}))
    extra["busgw/bus"] = block
    raw = {
        "version": 3,
        "endpoints": endpoints or [],
        "extra_config": extra,
        **service,
    }
    return parse_config(raw, environ={}).config


def event(**over: Any) -> NewEvent:
    """A valid NewEvent; ``over`` replaces fields."""
    fields: Dict[str, Any] = {
        "id": new_id(),
        "kind": "door_fault",
        "severity": "warning",
        "occurred_at": "2025-06-01T08:30:00Z",
        "data": "{}",
    }
    fields.update(over)
    return NewEvent(**fields)
