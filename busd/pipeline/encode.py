"""Render the pipeline's data object as the endpoint's ``output_encoding``.

:func:`dumps_go` writes JSON the way Go's ``json.Marshal`` does (what
KrakenD's gin renderer sends): object keys sorted, no whitespace, UTF-8
text rather than ``\\u`` escapes, except that ``<``, ``>``, ``&``, U+2028
and U+2029 are escaped (``\\u003c``, ``\\u003e``, ``\\u0026``,
``\\u2028``, ``\\u2029``), ``\\b``/``\\f``/``\\n``/``\\r``/``\\t`` use short
escapes and other control characters ``\\u00XX``; no trailing newline.

:func:`encode` picks the body and Content-Type for ``json``,
``json-collection`` and ``string`` (KRAKEND.md 3.10).

Known differences from KrakenD, kept on purpose:

* Numbers are re-emitted from Python values, not from the backend's
  literal (Go keeps ``json.Number`` text): integers are exact, floats are
  written by ``repr`` (``1.50`` -> ``1.5``, ``1e5`` -> ``100000.0``),
  and a literal beyond float range (``1e400``) decodes to infinity, which
  fails here with ``ValueError``.
* ``json-collection`` writes ``[]`` when ``collection`` is not a list;
  KrakenD writes whatever value is there (``null``, an object...).
* ``string`` writes a non-string ``content`` as JSON; KrakenD writes an
  empty body.
* A lone UTF-16 surrogate in a string becomes U+FFFD, as Go's decoder would
  have made it.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Tuple

from busd.pipeline._fastjson import encode_sorted
from busd.pipeline.decode import COLLECTION_KEY, CONTENT_KEY

__all__ = [
    "dumps_go",
    "encode",
    "JSON_CONTENT_TYPE",
    "TEXT_CONTENT_TYPE",
]

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"

# Built once; json.dumps(**kwargs) would build an encoder per call. The C
# accelerator escapes exactly Go's set of control characters.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False,
    separators=(",", ":"),
    sort_keys=True,
    allow_nan=False,
)

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _utf8(text: str) -> bytes:
    """UTF-8 bytes of ``text``; lone surrogates become U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Only a string decoded from JSON "\\ud800"-style escapes can hold
        # a lone surrogate; Go would have decoded it as U+FFFD.
        return _LONE_SURROGATE.sub("\ufffd", text).encode("utf-8")


def dumps_go(value: Any) -> bytes:
    """Serialise ``value`` exactly as Go's ``json.Marshal`` would.

    Raises ``ValueError`` for NaN or infinite floats (as Go does) and
    ``TypeError`` for values that are not JSON (sets, bytes, objects).
    Encoded once, by orjson when installed and sure to agree with the
    stdlib encoder (busd.pipeline._fastjson), else by the stdlib.
    """
    fast = encode_sorted(value)
    if fast is not None:
        # The same Go escapes, on bytes (U+2028/9 are E2 80 A8/A9).
        if b"<" in fast or b">" in fast or b"&" in fast:
            fast = (
                fast.replace(b"<", b"\\u003c")
                .replace(b">", b"\\u003e")
                .replace(b"&", b"\\u0026")
            )
        if b"\xe2\x80\xa8" in fast or b"\xe2\x80\xa9" in fast:
            fast = fast.replace(b"\xe2\x80\xa8", b"\\u2028").replace(
                b"\xe2\x80\xa9", b"\\u2029"
            )
        return fast
    text = _ENCODER.encode(value)
    # These characters can only occur inside JSON strings (keys included),
    # so a plain replace on the whole text is exact. Checking first keeps
    # the usual case to a few fast scans.
    if "<" in text or ">" in text or "&" in text:
        text = (
            text.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
        )
    if "\u2028" in text or "\u2029" in text:
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return _utf8(text)


def encode(data: Dict[str, Any], output_encoding: str) -> Tuple[bytes, str]:
    """Return ``(body, content_type)`` for ``data`` in ``output_encoding``.

    ``json`` (and, as in KrakenD, any unknown name): the whole object.
    ``json-collection``: the ``collection`` value as a top-level array,
    ``[]`` when it is missing or not a list. ``string``: the ``content``
    value as text (a string as is, another value as JSON, nothing when
    missing). ``no-op`` responses normally carry the raw backend body and
    never get here; if one does, it is rendered as ``json`` rather than
    failing the request.
    """
    if output_encoding == "json-collection":
        collection = data.get(COLLECTION_KEY)
        if isinstance(collection, list):
            return dumps_go(collection), JSON_CONTENT_TYPE
        return b"[]", JSON_CONTENT_TYPE
    if output_encoding == "string":
        content = data.get(CONTENT_KEY)
        if isinstance(content, str):
            return _utf8(content), TEXT_CONTENT_TYPE
        if content is None and CONTENT_KEY not in data:
            return b"", TEXT_CONTENT_TYPE
        return dumps_go(content), TEXT_CONTENT_TYPE
    return dumps_go(data), JSON_CONTENT_TYPE
