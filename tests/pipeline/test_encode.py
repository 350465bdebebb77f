"""Tests for busd.pipeline.encode: Go-compatible JSON and output encodings."""

from __future__ import annotations

from typing import Any, List, Tuple

from twisted.trial.unittest import SynchronousTestCase

from busd.pipeline.encode import (
    JSON_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    dumps_go,
    encode,
)


class DumpsGoTests(SynchronousTestCase):
    """dumps_go writes what Go's json.Marshal writes."""

    def test_values(self) -> None:
        """Values are compact, with object keys sorted at every level."""
        cases: List[Tuple[Any, bytes]] = [
            ({}, b"{}"),
            ([], b"[]"),
            (None, b"null"),
            (True, b"true"),
            (0, b"0"),
            (12345678901234567890123, b"12345678901234567890123"),
            (1.5, b"1.5"),
            ("", b'""'),
            (
                {"b": 1, "a": [3, 1, {"d": None, "c": True}], "B": {}},
                b'{"B":{},"a":[3,1,{"c":true,"d":null}],"b":1}',
            ),
        ]
        for value, expected in cases:
            self.assertEqual(dumps_go(value), expected, msg=repr(value))

    def test_no_trailing_newline(self) -> None:
        """The output ends with the value, not with a newline."""
        self.assertFalse(dumps_go({"a": 1}).endswith(b"\n"))

    def test_html_characters(self) -> None:
        """``<``, ``>`` and ``&`` are escaped, in values and keys alike."""
        self.assertEqual(
            dumps_go({"<k&>": "<script>a && b</script>"}),
            b'{"\\u003ck\\u0026\\u003e":'
            b'"\\u003cscript\\u003ea \\u0026\\u0026 b\\u003c/script\\u003e"}',
        )

    def test_line_separators(self) -> None:
        """U+2028 and U+2029 are escaped; they break JavaScript parsers."""
        self.assertEqual(
            dumps_go(["a\u2028b\u2029c"]), b'["a\\u2028b\\u2029c"]'
        )

    def test_unicode_is_raw_utf8(self) -> None:
        """Non-ASCII text is written as UTF-8, not as ``\\u`` escapes."""
        text = "caf\u00e9 \u65e5\u672c \U0001f600"
        self.assertEqual(
            dumps_go({"t": text}), ('{"t":"' + text + '"}').encode("utf-8")
        )

    def test_escapes(self) -> None:
        """Quotes, backslashes and control characters escape as in Go."""
        self.assertEqual(
            dumps_go('"\\/\b\f\n\r\t\x00\x01\x1f\x7f'),
            b'"\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u0001\\u001f\x7f"',
        )

    def test_lone_surrogate(self) -> None:
        """A lone surrogate becomes U+FFFD, as Go's decoder makes it."""
        self.assertEqual(
            dumps_go({"s": "a\ud800b"}),
            '{"s":"a\ufffdb"}'.encode("utf-8"),
        )

    def test_non_finite_floats(self) -> None:
        """NaN and infinities are refused with ValueError."""
        for value in (float("nan"), float("inf"), float("-inf")):
            self.assertRaises(ValueError, dumps_go, {"x": [value]})

    def test_not_json(self) -> None:
        """Values with no JSON form raise TypeError."""
        self.assertRaises(TypeError, dumps_go, {"x": {1, 2}})


class EncodeTests(SynchronousTestCase):
    """encode picks body and Content-Type per output_encoding."""

    def test_json(self) -> None:
        """json renders the whole object as application/json."""
        data = {"b": "<", "a": [1]}
        self.assertEqual(
            encode(data, "json"),
            (b'{"a":[1],"b":"\\u003c"}', JSON_CONTENT_TYPE),
        )
        self.assertEqual(JSON_CONTENT_TYPE, "application/json; charset=utf-8")

    def test_unknown_is_json(self) -> None:
        """Unknown names (and a stray no-op) fall back to json."""
        for name in ("", "negotiate-me", "no-op"):
            self.assertEqual(
                encode({"a": 1}, name), (b'{"a":1}', JSON_CONTENT_TYPE)
            )

    def test_json_collection(self) -> None:
        """json-collection renders ``collection`` as a top-level array."""
        cases: List[Tuple[Any, bytes]] = [
            ({"collection": [{"b": 1, "a": 2}, 3]}, b'[{"a":2,"b":1},3]'),
            ({"collection": []}, b"[]"),
            ({}, b"[]"),
            ({"other": [1]}, b"[]"),
            ({"collection": None}, b"[]"),
            ({"collection": {"a": 1}}, b"[]"),
        ]
        for data, body in cases:
            self.assertEqual(
                encode(data, "json-collection"),
                (body, JSON_CONTENT_TYPE),
                msg=repr(data),
            )

    def test_string(self) -> None:
        """string renders ``content`` as text/plain."""
        cases: List[Tuple[Any, bytes]] = [
            ({"content": "Hello World!"}, b"Hello World!"),
            ({"content": "<caf\u00e9>"}, "<caf\u00e9>".encode("utf-8")),
            ({"content": ""}, b""),
            ({}, b""),
            ({"other": "x"}, b""),
            ({"content": 42}, b"42"),
            ({"content": None}, b"null"),
            ({"content": {"b": [1], "a": "<"}}, b'{"a":"\\u003c","b":[1]}'),
            ({"content": "a\udfffb"}, "a\ufffdb".encode("utf-8")),
        ]
        for data, body in cases:
            self.assertEqual(
                encode(data, "string"),
                (body, TEXT_CONTENT_TYPE),
                msg=repr(data),
            )
        self.assertEqual(TEXT_CONTENT_TYPE, "text/plain; charset=utf-8")
