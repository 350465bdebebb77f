"""The JSON answer the bus's own routes (events, inbound, health) send."""

from __future__ import annotations

import json
from typing import Any

from twisted.web.iweb import IRequest

__all__ = ["json_answer"]

_JSON = b"application/json; charset=utf-8"


def json_answer(request: IRequest, status: int, body: Any) -> bytes:
    """Set ``status``, the JSON content type and the length on
    ``request``; the compact JSON of ``body`` to return."""
    data = json.dumps(body, separators=(",", ":")).encode("utf-8")
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", _JSON)
    request.setHeader(b"Content-Length", b"%d" % len(data))
    return data
