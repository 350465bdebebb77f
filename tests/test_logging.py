"""The JSON-lines log observer."""

import io
import json
import os

from twisted.logger import LogLevel, Logger
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from busd.logging import JSONLinesObserver, json_observer


class JSONLinesTests(SynchronousTestCase):
    def test_one_flat_object_per_line(self):
        """An event becomes one JSON line with time, level, message and fields."""
        out = io.StringIO()
        log = Logger(namespace="busgw.access", observer=JSONLinesObserver(out))
        log.info("{method} {path} {status}", method="GET", path="/v", status=200, obj=object())
        (line,) = out.getvalue().splitlines()
        record = json.loads(line)
        self.assertEqual(record["message"], "GET /v 200")
        self.assertEqual(record["level"], "info")
        self.assertEqual(record["namespace"], "busgw.access")
        self.assertEqual((record["method"], record["status"]), ("GET", 200))
        self.assertNotIn("obj", record)  # not plain data: left out
        self.assertTrue(record["time"].endswith("+00:00"))

    def test_failure_has_traceback(self):
        """A logged failure carries its traceback as a field."""
        out = io.StringIO()
        log = Logger(observer=JSONLinesObserver(out))
        try:
            1 / 0
        except ZeroDivisionError:
            log.failure("boom", Failure())
        record = json.loads(out.getvalue())
        self.assertIn("ZeroDivisionError", record["traceback"])
        self.assertEqual(record["level"], "critical")

    def test_level_from_environment(self):
        """json_observer drops events below BUSGW_LOG_LEVEL."""
        old = os.environ.get("BUSGW_LOG_LEVEL")
        os.environ["BUSGW_LOG_LEVEL"] = "warn"
        self.addCleanup(
            lambda: os.environ.pop("BUSGW_LOG_LEVEL")
            if old is None
            else os.environ.__setitem__("BUSGW_LOG_LEVEL", old)
        )
        out = io.StringIO()
        observer = json_observer(out)
        for level, text in [(LogLevel.info, "quiet"), (LogLevel.error, "loud")]:
            observer(
                {
                    "log_level": level,
                    "log_format": text,
                    "log_time": 0.0,
                    "log_namespace": "t",
                }
            )
        self.assertEqual([json.loads(l)["message"] for l in out.getvalue().splitlines()], ["loud"])
