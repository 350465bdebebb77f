"""``extra_config."busgw/inbound"``: topics the central pushes data to.

Read here (the behaviour is in :mod:`busd.bus.inbound`). Each topic serves
``PUT``/``POST path`` (store), ``GET path`` (latest) and
``GET path/history``; every bad value is an error naming its JSON path,
unknown keys are warnings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional, Sequence, Tuple

import attrs

from busd.config._busfields import (
    own_path_problem,
    read_name,
    unique_named,
)
from busd.config._syntax import q, sanitize_host
from busd.config._walk import Node

if TYPE_CHECKING:  # model.py imports this module
    from busd.config.model import EndpointConfig

__all__ = [
    "NAMESPACE",
    "DEFAULT_MAX_BYTES",
    "ForwardConfig",
    "TopicConfig",
    "InboundConfig",
    "read_inbound",
]

NAMESPACE = "busgw/inbound"
DEFAULT_MAX_BYTES = 64 * 1024
_METHODS = ("PUT", "POST")
_TOPIC_KEYS = (
    "name",
    "path",
    "methods",
    "history",
    "max_bytes",
    "forward",
    "public",
)


@attrs.frozen(kw_only=True)
class ForwardConfig:
    """A device service that also receives each pushed value: the same
    method and JSON body to ``host + url_pattern``, within ``timeout``."""

    host: str
    url_pattern: str
    timeout: float = 2.0

    @property
    def url(self) -> str:
        return self.host + self.url_pattern


@attrs.frozen(kw_only=True)
class TopicConfig:
    """One topic: where it is served, how much is kept and accepted."""

    name: str
    path: str
    methods: Tuple[str, ...] = _METHODS
    history: int = 10
    max_bytes: int = DEFAULT_MAX_BYTES
    forward: Optional[ForwardConfig] = None
    public: bool = False


@attrs.frozen(kw_only=True)
class InboundConfig:
    """Every topic, in config order."""

    topics: Tuple[TopicConfig, ...] = ()


def read_inbound(
    node: Optional[Node],
    endpoints: Sequence[EndpointConfig],
    reserved: Iterable[str],
    taken: Iterable[str] = (),
) -> Optional[InboundConfig]:
    """The service-level namespace, or None when absent. Topic paths (and
    their ``/history``) must not collide with ``endpoints``, go under a
    ``reserved`` prefix, repeat one of ``taken`` or each other."""
    if node is None:
        return None
    reserved = tuple(reserved)
    served = list(taken)
    topics: list[TopicConfig] = []
    for topic in unique_named(
        node,
        "topics",
        lambda child: _read_topic(child, endpoints, reserved, served),
        "topic",
        required="a list of topics",
    ):
        served += [topic.path, topic.path.rstrip("/") + "/history"]
        topics.append(topic)
    node.finish(("topics",))
    return InboundConfig(topics=tuple(topics))


def _read_topic(
    node: Node,
    endpoints: Sequence[EndpointConfig],
    reserved: Tuple[str, ...],
    served: Sequence[str],
) -> Optional[TopicConfig]:
    """One ``topics[i]``; None when its name or path is unusable."""
    name = read_name(node, "traffic")
    path = node.string("path", required='a path such as "/data/traffic"')
    if path:
        history_path = path.rstrip("/") + "/history"
        problem = own_path_problem(
            path, endpoints, reserved, served
        ) or own_path_problem(history_path, endpoints, reserved, served)
        if problem:
            node.report.error(node.at("path"), problem)
            path = ""
    methods = _read_methods(node)
    topic = TopicConfig(
        name=name,
        path=path,
        methods=methods,
        history=node.integer("history", 10, minimum=1, maximum=10_000),
        max_bytes=node.integer(
            "max_bytes", DEFAULT_MAX_BYTES, minimum=2, maximum=16 * 1024**2
        ),
        forward=_read_forward(node.child("forward")),
        public=node.boolean("public"),
    )
    node.finish(_TOPIC_KEYS)
    return topic if name and path else None


def _read_methods(node: Node) -> Tuple[str, ...]:
    """``methods``: a non-empty subset of PUT and POST."""
    given = node.strings("methods")
    if given is None:
        return _METHODS
    loc = node.at("methods")
    single = isinstance(node.raw.get("methods"), str)
    methods: list[str] = []
    for index, method in enumerate(given):
        upper = method.upper()
        if upper not in _METHODS:
            node.report.error(
                loc if single else loc.item(index),
                f"want PUT or POST, got {q(method)}",
            )
        elif upper not in methods:
            methods.append(upper)
    if not given:
        node.report.error(loc, "list PUT, POST or both")
    return tuple(methods) or _METHODS


def _read_forward(node: Optional[Node]) -> Optional[ForwardConfig]:
    """``forward``: ``{"host": ..., "url_pattern": ..., "timeout"?}``."""
    if node is None:
        return None
    hosts = node.strings("host")
    host = ""
    if hosts is None:
        node.take("host", required='a device service such as "127.0.0.1:9104"')
    elif len(hosts) != 1:
        node.report.error(node.at("host"), "give exactly one host")
    else:
        try:
            host = sanitize_host(hosts[0])
        except ValueError as exc:
            node.report.error(node.at("host"), str(exc))
    pattern = node.string("url_pattern", required='a path such as "/traffic"')
    if pattern and not pattern.startswith("/"):
        node.report.error(
            node.at("url_pattern"), f'must start with "/", got {q(pattern)}'
        )
        pattern = ""
    elif "{" in pattern:
        node.report.error(
            node.at("url_pattern"), "placeholders are not supported here"
        )
        pattern = ""
    timeout = node.duration("timeout", 2.0)
    node.finish(("host", "url_pattern", "timeout"))
    if not (host and pattern):
        return None
    return ForwardConfig(host=host, url_pattern=pattern, timeout=timeout)
