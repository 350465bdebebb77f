"""extra_config."busgw/inbound": topics, their defaults and problems."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from busd.config._inbound import ForwardConfig, TopicConfig
from tests.config._support import (
    endpoint as ep,
    load,
    service as svc,
    table_tests,
)

E, W = "error", "warning"
I = "extra_config.busgw/inbound"
T0 = I + ".topics[0]"


def inbound(*topics: Any, **extra: Any) -> dict:
    """A config with endpoint /status and busgw/inbound."""
    namespaces = {"busgw/inbound": {"topics": list(topics)}, **extra}
    return svc(ep("/status"), extra_config=namespaces)


def topic(**keys: Any) -> dict:
    return {"name": "traffic", "path": "/data/traffic", **keys}


# fmt: off
INBOUND_PROBLEMS = [
    ("no_topics", "topics is required.",
     svc(ep(), extra_config={"busgw/inbound": {}}), E, I + ".topics",
     "missing required key"),
    ("no_name", "A topic needs a name.",
     inbound({"path": "/d"}), E, T0 + ".name", "missing required key"),
    ("bad_name", "A name is a plain word.",
     inbound(topic(name="a/b")), E, T0 + ".name", "invalid name"),
    ("duplicate_name", "Names are unique.",
     inbound(topic(), topic(path="/d2")), E, I + ".topics[1].name",
     "duplicate topic name"),
    ("collides_endpoint", "A topic path may not be an endpoint's.",
     inbound(topic(path="/status")), E, T0 + ".path",
     "collides with endpoints[0]"),
    ("history_collides", "Nor may its /history be one.",
     svc(ep("/d/history"), extra_config={"busgw/inbound": {"topics": [
         topic(path="/d")]}}), E, T0 + ".path", "collides with endpoints[0]"),
    ("collides_health", "A topic path may not be /health's.",
     inbound(topic(path="/health"), **{"busgw/health": {}}), E, T0 + ".path",
     "already served by busgw (/health)"),
    ("collides_topic", "Two topics may not share a path.",
     inbound(topic(), topic(name="t2")), E, I + ".topics[1].path",
     "already served by busgw"),
    ("reserved", "A topic may not go under a built-in path.",
     inbound(topic(path="/__debug/x")), E, T0 + ".path", "reserved"),
    ("placeholder", "Topic paths are plain.",
     inbound(topic(path="/d/{x}")), E, T0 + ".path", "plain path"),
    ("methods", "Only PUT and POST store.",
     inbound(topic(methods=["PUT", "GET"])), E, T0 + ".methods[1]",
     'want PUT or POST, got "GET"'),
    ("history_zero", "history keeps at least one value.",
     inbound(topic(history=0)), E, T0 + ".history", "between 1 and 10000"),
    ("max_bytes", "max_bytes is an integer.",
     inbound(topic(max_bytes="big")), E, T0 + ".max_bytes",
     "expected an integer"),
    ("forward_no_host", "A forward needs a host.",
     inbound(topic(forward={"url_pattern": "/t"})), E,
     T0 + ".forward.host", "missing required key"),
    ("forward_two_hosts", "A forward goes to one host.",
     inbound(topic(forward={"host": ["a:80", "b:80"], "url_pattern": "/t"})),
     E, T0 + ".forward.host", "exactly one host"),
    ("forward_pattern", "url_pattern starts with /.",
     inbound(topic(forward={"host": "a:80", "url_pattern": "t"})), E,
     T0 + ".forward.url_pattern", 'must start with "/"'),
    ("unknown_key", "An unknown topic key is a warning.",
     inbound(topic(histroy=3)), W, T0 + ".histroy", 'did you mean "history"'),
]
# fmt: on


class InboundConfigTests(SynchronousTestCase):
    """busgw/inbound as the loader reads it."""

    locals().update(table_tests(INBOUND_PROBLEMS))

    def test_defaults(self) -> None:
        """PUT and POST, 10 values, 64 KiB, protected, no forward."""
        config = load(self, inbound(topic())).config.inbound
        assert config is not None
        self.assertEqual(
            config.topics, (TopicConfig(name="traffic", path="/data/traffic"),)
        )
        self.assertEqual(
            (config.topics[0].methods, config.topics[0].history),
            (("PUT", "POST"), 10),
        )
        self.assertEqual(config.topics[0].max_bytes, 65536)

    def test_everything(self) -> None:
        """Every key read, the forward host sanitised."""
        raw = inbound(
            topic(
                methods="post",
                history=3,
                max_bytes=1000,
                public=True,
                forward={
                    "host": "127.0.0.1:9104",
                    "url_pattern": "/traffic",
                    "timeout": "1s",
                },
            )
        )
        config = load(self, raw).config.inbound
        assert config is not None
        (got,) = config.topics
        self.assertEqual(
            got,
            TopicConfig(
                name="traffic",
                path="/data/traffic",
                methods=("POST",),
                history=3,
                max_bytes=1000,
                public=True,
                forward=ForwardConfig(
                    host="http://127.0.0.1:9104",
                    url_pattern="/traffic",
                    timeout=1.0,
                ),
            ),
        )
        assert got.forward is not None
        self.assertEqual(got.forward.url, "http://127.0.0.1:9104/traffic")
