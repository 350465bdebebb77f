"""Tests for busd.pipeline.decode: backend encodings into data objects."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from twisted.trial.unittest import SynchronousTestCase

from busd.errors import BackendError, DecodeError
from busd.pipeline.decode import decode_body

MAP_TYPE = "map[string]interface {}"
SLICE_TYPE = "[]interface {}"


class JSONTests(SynchronousTestCase):
    """The ``json`` encoding, with and without ``is_collection``."""

    def test_objects(self) -> None:
        """JSON objects decode as they are, numbers and nesting included."""
        cases: List[Tuple[bytes, Dict[str, Any]]] = [
            (b"{}", {}),
            (b'{"a": true, "b": false}', {"a": True, "b": False}),
            (
                b' {"n": 12345678901234567890123, "f": 1.5, "z": null}\n',
                {"n": 12345678901234567890123, "f": 1.5, "z": None},
            ),
            (
                '{"s": "caf\u00e9 \\u00e9 \\ud83d\\ude00"}'.encode("utf-8"),
                {"s": "caf\u00e9 \u00e9 \U0001f600"},
            ),
            (b'{"a": 1, "a": 2}', {"a": 2}),
        ]
        for body, expected in cases:
            self.assertEqual(
                decode_body(body, "json", False), expected, msg=repr(body)
            )

    def test_wrong_top_level_types(self) -> None:
        """A non-object body fails with KrakenD's unmarshal message."""
        cases = [
            (b'[{"a": true}, {"b": false}]', "array"),
            (b"42", "number"),
            (b"-1.5e3", "number"),
            (b'"hello"', "string"),
            (b"true", "bool"),
        ]
        for body, kind in cases:
            err = self.assertRaises(
                DecodeError, decode_body, body, "json", False
            )
            self.assertEqual(
                err.message,
                f"json: cannot unmarshal {kind} into Go value of type "
                f"{MAP_TYPE}",
            )

    def test_null_is_empty(self) -> None:
        """A ``null`` body gives an empty object, as Go leaves the map nil."""
        self.assertEqual(decode_body(b"null", "json", False), {})

    def test_collection(self) -> None:
        """With is_collection a top-level array is wrapped in ``collection``."""
        # The example of KrakenD's data-manipulation docs.
        body = b'[    {"a": true },    {"b": false} ]'
        self.assertEqual(
            decode_body(body, "json", True),
            {"collection": [{"a": True}, {"b": False}]},
        )
        self.assertEqual(decode_body(b"[]", "json", True), {"collection": []})
        self.assertEqual(
            decode_body(b"null", "json", True), {"collection": None}
        )

    def test_collection_rejects_non_arrays(self) -> None:
        """With is_collection an object or scalar body is a DecodeError."""
        for body, kind in [(b'{"a": 1}', "object"), (b"7", "number")]:
            err = self.assertRaises(
                DecodeError, decode_body, body, "json", True
            )
            self.assertEqual(
                err.message,
                f"json: cannot unmarshal {kind} into Go value of type "
                f"{SLICE_TYPE}",
            )

    def test_invalid_bodies(self) -> None:
        """Empty, malformed, non-UTF-8 and non-standard bodies all fail."""
        bodies = [
            b"",
            b"   \r\n\t",
            b"{",
            b"{'a': 1}",
            b'{"a": 1} trailing',
            b'{"a": 1}{"b": 2}',
            b'{"a": NaN}',
            b"Infinity",
            b'{"a": -Infinity}',
            b'{"a": "\xff"}',
            b'{"a": "\xed\xa0\x80"}',  # an encoded surrogate
            b'\xef\xbb\xbf{"a": 1}',  # UTF-8 byte order mark
            '{"a": 1}'.encode("utf-16"),
        ]
        for body in bodies:
            for is_collection in (False, True):
                self.assertRaises(
                    DecodeError, decode_body, body, "json", is_collection
                )

    def test_empty_body_message(self) -> None:
        """An empty body reports EOF, like Go's decoder."""
        err = self.assertRaises(DecodeError, decode_body, b"", "json", False)
        self.assertIn("EOF", err.message)

    def test_unknown_encodings_are_json(self) -> None:
        """An empty or unknown encoding name decodes as ``json``."""
        for encoding in ("", "JSON", "xml"):
            self.assertEqual(
                decode_body(b'{"a": 1}', encoding, False), {"a": 1}
            )
            self.assertRaises(DecodeError, decode_body, b"[1]", encoding, False)

    def test_error_type(self) -> None:
        """DecodeError is a backend error answered with status 500."""
        err = self.assertRaises(DecodeError, decode_body, b"x", "json", False)
        self.assertIsInstance(err, BackendError)
        self.assertEqual((err.status, err.code), (500, "backend_decode"))


class OtherEncodingTests(SynchronousTestCase):
    """The ``safejson``, ``string`` and ``no-op`` encodings."""

    def test_safejson(self) -> None:
        """safejson keeps objects, wraps arrays and wraps scalars."""
        cases: List[Tuple[bytes, Dict[str, Any]]] = [
            (b'{"a": 1}', {"a": 1}),
            (
                b'[{"item": 1},{"item": 2}]',
                {"collection": [{"item": 1}, {"item": 2}]},
            ),
            (b"[]", {"collection": []}),
            (b"42", {"content": 42}),
            (b"1.25", {"content": 1.25}),
            (b'"Hello World!"', {"content": "Hello World!"}),
            (b"false", {"content": False}),
            (b"null", {"content": None}),
        ]
        for body, expected in cases:
            for is_collection in (False, True):
                self.assertEqual(
                    decode_body(body, "safejson", is_collection),
                    expected,
                    msg=repr(body),
                )

    def test_safejson_invalid(self) -> None:
        """safejson still refuses empty and malformed bodies."""
        for body in (b"", b"{", b"nope", b"[1,]"):
            self.assertRaises(DecodeError, decode_body, body, "safejson", False)

    def test_string(self) -> None:
        """string puts the whole body, as text, under ``content``."""
        cases = [
            (b"Hello World!", "Hello World!"),
            (b"", ""),
            (b'{"a": 1}', '{"a": 1}'),
            ("caf\u00e9".encode("utf-8"), "caf\u00e9"),
            (b"bad \xff byte", "bad \ufffd byte"),
        ]
        for body, text in cases:
            for is_collection in (False, True):
                self.assertEqual(
                    decode_body(body, "string", is_collection),
                    {"content": text},
                )

    def test_noop(self) -> None:
        """no-op yields no data at all, whatever the body."""
        self.assertEqual(decode_body(b"[not json", "no-op", False), {})
