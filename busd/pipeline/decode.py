"""Decode a backend's response body into the pipeline's data object.

One function, :func:`decode_body`, implements the backend ``encoding``
choices of KrakenD (lura ``encoding/encoding.go``, KRAKEND.md 3.3):

``json``
    The body must be one JSON object. A top-level array is an error (as in
    KrakenD: ``cannot unmarshal array into Go value of type
    map[string]interface {}``) unless ``is_collection`` is set, which
    wraps it as ``{"collection": [...]}``; with ``is_collection`` an object
    is the error instead. A body of ``null`` decodes to ``{}`` (Go leaves the
    map nil without an error), or to ``{"collection": None}`` with
    ``is_collection``.
``safejson``
    Any JSON value: an object as is, an array under ``collection``, any
    other value (``null`` included) under ``content``.
``string``
    ``{"content": <body as UTF-8 text>}``; invalid bytes become U+FFFD.
``no-op``
    ``{}``: a pass-through never decodes, so there is no data.

Any other name (including ``""``) decodes as ``json``, KrakenD's fallback.

Stricter than Go, on purpose: the body must be valid UTF-8 with nothing but
whitespace after the JSON value, and ``NaN``/``Infinity`` are refused. Go
replaces invalid UTF-8 with U+FFFD and ignores trailing bytes; a backend
that sends either is broken, and refusing it keeps the data well defined.
"""

from __future__ import annotations

import json
from typing import Any, Dict, NoReturn

from busd.errors import DecodeError
from busd.pipeline._fastjson import decode as fast_decode

__all__ = ["decode_body", "COLLECTION_KEY", "CONTENT_KEY"]

COLLECTION_KEY = "collection"
CONTENT_KEY = "content"

# The Go type names KrakenD's messages mention, by Python type.
_GO_KIND = {
    list: "array",
    dict: "object",
    str: "string",
    bool: "bool",
    int: "number",
    float: "number",
}


def _refuse_constant(name: str) -> NoReturn:
    # json.loads accepts NaN/Infinity/-Infinity by default; JSON (and Go)
    # do not. This hook only runs when one appears, so it costs nothing on
    # valid bodies.
    raise ValueError(f"invalid JSON literal {name}")


# One decoder, built once: json.loads(..., parse_constant=...) would build a
# new JSONDecoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _strict_decode(body: bytes) -> Any:
    return _DECODER.decode(body.decode("utf-8"))


def _loads(body: bytes) -> Any:
    """Parse ``body`` as exactly one JSON value, or raise DecodeError."""
    # isspace() stops at the first non-blank byte; strip() would copy.
    if not body or body.isspace():
        # Go's json.Decoder reports io.EOF for an empty or blank body.
        raise DecodeError("EOF: empty backend body")
    try:
        # Decode the bytes ourselves: json.loads(bytes) would also accept
        # UTF-16/32 and a UTF-8 BOM, which Go refuses. A str with a BOM
        # makes json.loads fail, as it should.
        # orjson where it agrees with this decoder (busd.pipeline._fastjson).
        return fast_decode(body, _strict_decode)
    except UnicodeDecodeError as exc:
        raise DecodeError(f"invalid UTF-8 in JSON body: {exc}") from exc
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise DecodeError(f"invalid JSON body: {exc}") from exc


def _unmarshal_error(value: Any, go_type: str) -> DecodeError:
    kind = _GO_KIND.get(type(value), "value")
    return DecodeError(
        f"json: cannot unmarshal {kind} into Go value of type {go_type}"
    )


def decode_body(
    body: bytes, encoding: str, is_collection: bool
) -> Dict[str, Any]:
    """Decode ``body`` per the backend ``encoding`` into a fresh dict.

    Raises :class:`~busd.errors.DecodeError` for an empty or invalid JSON
    body, invalid UTF-8 in a JSON body, or a JSON value of the wrong shape
    (see the module docstring). The result is owned by the caller.
    """
    if encoding == "string":
        return {CONTENT_KEY: body.decode("utf-8", "replace")}
    if encoding == "no-op":
        return {}
    value = _loads(body)
    if encoding == "safejson":
        if isinstance(value, dict):
            return value
        if isinstance(value, list):
            return {COLLECTION_KEY: value}
        return {CONTENT_KEY: value}
    # "json" and, as in KrakenD, any unknown encoding name.
    if is_collection:
        if value is None or isinstance(value, list):
            return {COLLECTION_KEY: value}
        raise _unmarshal_error(value, "[]interface {}")
    if isinstance(value, dict):
        return value
    if value is None:
        return {}
    raise _unmarshal_error(value, "map[string]interface {}")
