"""JSON answers of the central's event routes."""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional

from twisted.web.iweb import IRequest

__all__ = ["answer", "problem", "raw_answer"]

_JSON = b"application/json; charset=utf-8"


def answer(
    request: IRequest,
    status: int,
    body: Any,
    headers: Optional[Mapping[str, str]] = None,
) -> bytes:
    """Set ``status`` and ``headers``; ``body`` as compact JSON."""
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return raw_answer(request, status, data, headers)


def raw_answer(
    request: IRequest,
    status: int,
    data: bytes,
    headers: Optional[Mapping[str, str]] = None,
) -> bytes:
    """:func:`answer` for a body already encoded as JSON."""
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", _JSON)
    request.setHeader(b"Cache-Control", b"no-store")
    for name, value in (headers or {}).items():
        request.setHeader(name.encode("latin-1"), value.encode("latin-1"))
    request.setHeader(b"Content-Length", b"%d" % len(data))
    return data


def problem(
    request: IRequest,
    status: int,
    message: str,
    headers: Optional[Mapping[str, str]] = None,
    **extra: Any,
) -> bytes:
    """busgw's error body ``{"error", "status"}`` plus ``extra`` members
    (``path`` for a bad event field, ``parameter`` for a bad query)."""
    return answer(
        request, status, {"error": message, "status": status, **extra}, headers
    )
