"""Tests for busd.config.durations: Go's time.ParseDuration in Python."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from busd.config.durations import parse_duration

VALID = [
    ("0", 0.0),
    ("+0", 0.0),
    ("-0", 0.0),
    ("0s", 0.0),
    ("2s", 2.0),
    ("500ms", 0.5),
    ("1m30s", 90.0),
    ("1.5s", 1.5),
    ("150us", 0.000150),
    ("150\u00b5s", 0.000150),
    ("150\u03bcs", 0.000150),
    ("10ns", 1e-08),
    ("2h", 7200.0),
    ("1h2m3s4ms5us6ns", 3723.004005006),
    ("-1.5h", -5400.0),
    ("+5m", 300.0),
    (".5s", 0.5),
    ("1.s", 1.0),
    ("1.0000000001s", 1.0),
    ("2562047h", 2562047 * 3600.0),
]

INVALID = [
    ("", "invalid duration"),
    ("10", "missing unit"),
    ("1.5", "missing unit"),
    ("-", "invalid duration"),
    ("s", "invalid duration"),
    (".s", "invalid duration"),
    ("1sec", 'unknown unit "sec"'),
    ("1S", 'unknown unit "S"'),
    ("2 s", 'unknown unit " s"'),
    (" 2s", "invalid duration"),
    ("1d", 'unknown unit "d"'),
    ("1s1", "missing unit"),
    ("1e3s", 'unknown unit "e"'),
    ("3000000h", "out of range"),
]


class ParseDurationTests(SynchronousTestCase):
    def test_valid_forms(self) -> None:
        """Every Go duration form parses to the right number of seconds."""
        for text, seconds in VALID:
            self.assertAlmostEqual(
                parse_duration(text), seconds, places=12, msg=text
            )

    def test_invalid_forms(self) -> None:
        """Strings Go refuses raise ValueError naming the problem."""
        for text, fragment in INVALID:
            with self.assertRaises(ValueError, msg=text) as caught:
                parse_duration(text)
            self.assertIn(fragment, str(caught.exception), text)

    def test_error_quotes_input(self) -> None:
        """The error message quotes the whole input, as Go's does."""
        with self.assertRaises(ValueError) as caught:
            parse_duration("10")
        self.assertEqual(str(caught.exception), 'missing unit in duration "10"')

    def test_not_a_string(self) -> None:
        """A number instead of a string is refused, not read as seconds."""
        with self.assertRaises(ValueError):
            parse_duration(2)  # type: ignore[arg-type]
