"""orjson stands in for the stdlib JSON steps with identical results
(busd.pipeline._fastjson, encode.dumps_go, decode.decode_body)."""

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from busd.errors import DecodeError
from busd.pipeline import _fastjson, encode
from busd.pipeline.decode import decode_body
from busd.pipeline.encode import dumps_go

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


def _stdlib_dumps(value):
    """dumps_go as it is without orjson."""
    saved = encode.encode_sorted
    encode.encode_sorted = lambda v: None
    try:
        return dumps_go(value)
    finally:
        encode.encode_sorted = saved


class EncodeTests(SynchronousTestCase):
    def setUp(self) -> None:
        if not _fastjson.AVAILABLE:
            raise self.skipTest("orjson is not installed")

    def test_known_differences_are_caught(self) -> None:
        """Values orjson writes differently come out as the stdlib writes them."""
        for value in [
            {"f": 1.5e-05},
            {"f": 2.5e-07},
            {"f": 1e16},
            {"big": 2**80},
            {"n": None, "s": "<a&b>\u2028\u2029"},
            {"x": "\x1f\x7f"},
            [1.0, -0.0, 100000.0],
        ]:
            self.assertEqual(dumps_go(value), _stdlib_dumps(value), value)

    def test_orjson_is_used(self) -> None:
        """A plain object is encoded by orjson (not re-encoded)."""
        value = {"b": [1, 2.5, "t"], "a": {"z": True}}
        self.assertEqual(_fastjson.encode_sorted(value), b'{"a":{"z":true},"b":[1,2.5,"t"]}')
        self.assertEqual(dumps_go(value), b'{"a":{"z":true},"b":[1,2.5,"t"]}')

    def test_nan_still_refused(self) -> None:
        """NaN raises ValueError, as Go's encoder refuses it."""
        self.assertRaises(ValueError, dumps_go, {"x": math.nan})
        self.assertRaises(TypeError, dumps_go, {"x": {1, 2}})

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(_json_values)
    def test_identical_output(self, value) -> None:
        """For any JSON value, dumps_go with orjson equals the stdlib path."""
        self.assertEqual(dumps_go(value), _stdlib_dumps(value))

    def test_without_orjson(self) -> None:
        """With orjson missing the stdlib encoder writes the same bytes."""
        saved = _fastjson._orjson
        _fastjson._orjson = None
        try:
            self.assertIsNone(_fastjson.encode_sorted({"a": 1}))
            self.assertEqual(dumps_go({"b": "<", "a": 1}), b'{"a":1,"b":"\\u003c"}')
        finally:
            _fastjson._orjson = saved


class DecodeTests(SynchronousTestCase):
    def test_big_integers_stay_exact(self) -> None:
        """Integers beyond 64 bits decode exactly, as the stdlib does."""
        body = b'{"n": 123456789012345678901234567890}'
        self.assertEqual(
            decode_body(body, "json", False), {"n": 123456789012345678901234567890}
        )

    def test_stdlib_only_inputs(self) -> None:
        """Inputs orjson refuses but the stdlib accepts decode as before."""
        self.assertEqual(decode_body(b'{"a":"\\ud800"}', "json", False), {"a": "\ud800"})
        # Found by hypothesis: one below -2**63 stays an exact integer.
        self.assertEqual(
            decode_body(b'{"a":-9223372036854775809}', "json", False),
            {"a": -9223372036854775809},
        )
        self.assertEqual(decode_body(b'{"a":1e400}', "json", False), {"a": math.inf})
        self.assertRaises(DecodeError, decode_body, b'{"a":NaN}', "json", False)
        self.assertRaises(DecodeError, decode_body, b"\xef\xbb\xbf{}", "json", False)

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(_json_values.filter(lambda v: isinstance(v, dict)))
    def test_identical_values(self, value) -> None:
        """Any JSON object decodes to what the stdlib decoder gives."""
        body = json.dumps(value).encode()
        got = decode_body(body, "json", False)
        self.assertEqual(got, json.loads(body))
        self.assertEqual(repr(got), repr(json.loads(body)))
