"""The event schema: what POST /events accepts and the reasons it refuses."""

import json

from twisted.trial.unittest import SynchronousTestCase

from busd.bus.event import EventInvalid, new_event, parse_event, rfc3339
from tests.bus._events_support import EVENT, NOW


def body(**over):
    raw = dict(EVENT)
    for key, value in over.items():
        if value is ...:
            raw.pop(key, None)
        else:
            raw[key] = value
    return json.dumps(raw).encode()


class ValidTests(SynchronousTestCase):
    def test_minimal(self):
        """kind, severity and occurred_at suffice; data defaults to {} and
        a random id is chosen."""
        event = parse_event(body(data=...), 65536)
        self.assertEqual(
            (event.kind, event.severity, event.data),
            ("tyre_pressure", "warning", "{}"),
        )
        self.assertEqual(len(event.id), 32)
        self.assertFalse(event.client_id)

    def test_client_id_and_data(self):
        """A client id is kept as the idempotency key; data is compact JSON."""
        event = parse_event(body(id="door-3:2025-06-01"), 65536)
        self.assertEqual(event.id, "door-3:2025-06-01")
        self.assertTrue(event.client_id)
        self.assertEqual(json.loads(event.data), EVENT["data"])

    def test_times(self):
        """RFC 3339 with an offset, fractions up to nanoseconds, lower-case t/z."""
        for text in (
            "2025-06-01T08:30:00+02:00",
            "2025-06-01T08:30:00.123456789Z",
            "2025-06-01t08:30:00z",
        ):
            self.assertEqual(
                parse_event(body(occurred_at=text), 65536).occurred_at, text
            )

    def test_new_event(self):
        """An event raised inside the gateway is stamped with the clock."""
        event = new_event("crash", "critical", {"g": 4}, NOW)
        self.assertEqual(event.occurred_at, rfc3339(NOW))
        self.assertEqual(rfc3339(NOW), "2025-06-15T15:06:40.000Z")
        self.assertRaises(EventInvalid, new_event, "crash", "fatal", {}, NOW)


class InvalidTests(SynchronousTestCase):
    def refused(self, raw, size=65536):
        exc = self.assertRaises(EventInvalid, parse_event, raw, size)
        return exc.path, exc.reason

    def test_not_json(self):
        """Broken JSON names line and column; NaN is not JSON."""
        path, reason = self.refused(b'{"kind": ')
        self.assertEqual(path, "")
        self.assertIn("invalid JSON at line 1", reason)
        self.assertIn("NaN", self.refused(b'{"kind": NaN}')[1])
        self.assertIn("UTF-8", self.refused(b'{"kind": "\xff"}')[1])

    def test_not_an_object(self):
        """An array body is refused as such."""
        self.assertEqual(
            self.refused(b"[1]"), ("", "expected a JSON object, got an array")
        )

    def test_oversized(self):
        """A body beyond max_event_bytes is refused before parsing."""
        raw = body(data={"blob": "x" * 2000})
        path, reason = self.refused(raw, 1000)
        self.assertEqual(path, "")
        self.assertEqual(
            reason, f"event too large: {len(raw)} bytes (max 1000)"
        )

    def test_missing_and_unknown(self):
        """Missing required fields and unknown fields name the field."""
        self.assertEqual(
            self.refused(body(kind=...)), ("kind", "missing required field")
        )
        self.assertEqual(self.refused(body(occurred_at=None))[0], "occurred_at")
        path, reason = self.refused(body(sevrity="info"))
        self.assertEqual(path, "sevrity")
        self.assertIn("unknown field", reason)

    def test_wrong_types(self):
        """Each wrongly typed field is named with what was expected."""
        cases = {
            "kind": (42, "expected a string, got a number"),
            "severity": (
                "fatal",
                'expected one of info, warning, critical, got "fatal"',
            ),
            "data": ([1, 2], "expected an object, got an array"),
            "id": (True, "expected a string, got a boolean"),
        }
        for field, (value, reason) in cases.items():
            self.assertEqual(
                self.refused(body(**{field: value})), (field, reason)
            )

    def test_bad_values(self):
        """Bad kinds, ids and times are refused with the field's path."""
        self.assertEqual(self.refused(body(kind="tyre pressure"))[0], "kind")
        self.assertEqual(self.refused(body(id="a/b"))[0], "id")
        self.assertEqual(self.refused(body(id="x" * 129))[0], "id")
        for text in (
            "2025-06-01 08:30:00Z",
            "2025-06-01T08:30:00",
            "yesterday",
            "2025-13-01T08:30:00Z",
        ):
            self.assertEqual(
                self.refused(body(occurred_at=text))[0], "occurred_at", text
            )
