"""Builders of small raw configs and a problem-listing helper for tests."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

from twisted.trial.unittest import SynchronousTestCase

from busd.config import ConfigError, LoadResult, parse_config

HOST = "http://backend:8000"
Problem = Tuple[str, str, str]


def backend(url: str = "/x", **keys: Any) -> Dict[str, Any]:
    """A backend object."""
    return {"url_pattern": url, **keys}


def endpoint(path: str = "/a", *backends: Any, **keys: Any) -> Dict[str, Any]:
    """An endpoint object with one default backend unless given some."""
    return {"endpoint": path, "backend": list(backends) or [backend()], **keys}


def service(*endpoints: Any, **keys: Any) -> Dict[str, Any]:
    """A v3 config with a service-level host and the given endpoints."""
    raw: Dict[str, Any] = {"version": 3, "host": [HOST]}
    raw["endpoints"] = list(endpoints)
    raw.update(keys)
    return raw


def problems(raw: Any, *, strict: bool = False) -> List[Problem]:
    """(severity, path, message) of every problem ``raw`` has, whether the
    load fails or only warns."""
    try:
        result = parse_config(raw, strict=strict)
    except ConfigError as err:
        found = err.problems
    else:
        found = result.warnings
    return [(p.severity, p.path, p.message) for p in found]


def load(case: SynchronousTestCase, raw: Any) -> LoadResult:
    """Load ``raw``, failing the test on any problem at all."""
    try:
        result = parse_config(raw)
    except ConfigError as err:
        case.fail(str(err))
    case.assertEqual(result.warnings, (), "unexpected warnings")
    return result


def table_tests(
    cases: List[Tuple[str, str, Any, str, str, str]],
) -> Dict[str, Callable[[SynchronousTestCase], None]]:
    """Test methods from rows (name, docstring, raw config, severity, path,
    message fragment): each checks that exactly one problem is reported,
    with that severity, at that path, saying that."""

    def make(
        doc: str, raw: Any, severity: str, path: str, fragment: str
    ) -> Callable[[SynchronousTestCase], None]:
        def test(self: SynchronousTestCase) -> None:
            found = problems(raw)
            self.assertEqual(len(found), 1, found)
            self.assertEqual(found[0][:2], (severity, path), found)
            self.assertIn(fragment, found[0][2])

        test.__doc__ = doc
        return test

    return {
        f"test_{name}": make(doc, raw, severity, path, fragment)
        for name, doc, raw, severity, path, fragment in cases
    }
