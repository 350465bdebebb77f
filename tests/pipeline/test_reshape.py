"""Tests for busd.pipeline.reshape: target, allow/deny, mapping, group."""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Sequence, Tuple

from twisted.trial.unittest import SynchronousTestCase

from busd.config.model import BackendConfig, FlatmapOp
from busd.pipeline.decode import decode_body
from busd.pipeline.reshape import (
    MISSING,
    apply_allow,
    apply_deny,
    apply_group,
    apply_mapping,
    apply_target,
    format_backend,
    get_path,
    make_formatter,
)

Data = Dict[str, Any]

# jsonplaceholder.typicode.com/posts/1, used by KrakenD's data-manipulation
# docs for allow and deny.
POST: Data = {
    "userId": 1,
    "id": 1,
    "title": "sunt aut facere repellat provident occaecati",
    "body": "quia et suscipit\nsuscipit recusandae",
}
POST_FILTERED: Data = {"id": 1, "title": POST["title"]}

# jsonplaceholder.typicode.com/users/1 (trimmed), for group and mapping.
USER: Data = {
    "id": 1,
    "name": "Leanne Graham",
    "email": "Sincere@april.biz",
    "address": {"city": "Gwenborough", "geo": {"lat": "-37.3159"}},
}

NESTED: Data = {
    "a": {"a1": 1, "a2": {"x": 1, "y": 2}, "a3": [{"x": 1}]},
    "b": 2,
    "c": [1, 2],
    "d": None,
}


def backend(**kwargs: Any) -> BackendConfig:
    return BackendConfig(
        hosts=("http://h",), url_pattern="/", method="GET", **kwargs
    )


class ReadOnlyMixin(SynchronousTestCase):
    """Checks that a function leaves its input untouched."""

    def check(
        self, fn: Callable[[Data], Data], data: Data, expected: Data
    ) -> None:
        before = copy.deepcopy(data)
        self.assertEqual(fn(data), expected, msg=repr(data))
        self.assertEqual(data, before, msg="input was mutated")


class GetPathTests(SynchronousTestCase):
    """get_path walks dot paths through nested objects."""

    def test_table(self) -> None:
        """Objects are entered, anything else ends the walk with MISSING."""
        cases: List[Tuple[str, Any]] = [
            ("b", 2),
            ("a.a1", 1),
            ("a.a2.y", 2),
            ("a.a2", {"x": 1, "y": 2}),
            ("d", None),
            ("x", MISSING),
            ("a.x", MISSING),
            ("b.x", MISSING),
            ("a.a3.0", MISSING),
            ("c.0", MISSING),
            ("", NESTED),
        ]
        for path, expected in cases:
            self.assertEqual(get_path(NESTED, path), expected, msg=path)
        self.assertIs(get_path(NESTED, "a.nope"), MISSING)
        self.assertFalse(MISSING)
        self.assertEqual(repr(MISSING), "MISSING")


class TargetTests(ReadOnlyMixin):
    """apply_target replaces the data with a nested object."""

    def test_docs_example(self) -> None:
        """KrakenD's docs example: ``target: data`` lifts the data level."""
        inner = {
            "updated": "2010-01-07T19:58:42.949Z",
            "totalItems": 800,
            "startIndex": 1,
            "itemsPerPage": 1,
            "items": [],
        }
        self.check(
            lambda d: apply_target(d, "data"),
            {"apiVersion": "2.0", "data": inner},
            inner,
        )

    def test_table(self) -> None:
        """Missing paths and non-object values give an empty object."""
        cases: List[Tuple[str, Data]] = [
            ("a.a2", {"x": 1, "y": 2}),
            ("a", NESTED["a"]),
            ("b", {}),
            ("c", {}),
            ("d", {}),
            ("x", {}),
            ("a.a3", {}),
            ("a.a2.x", {}),
            ("", NESTED),
        ]
        for path, expected in cases:
            self.check(lambda d: apply_target(d, path), NESTED, expected)


class AllowTests(ReadOnlyMixin):
    """apply_allow keeps only the listed paths."""

    def test_docs_example(self) -> None:
        """KrakenD's docs example: ``allow: [id, title]``."""
        self.check(
            lambda d: apply_allow(d, ["id", "title"]), POST, POST_FILTERED
        )

    def test_table(self) -> None:
        """Nested paths go through objects only; empty branches drop."""
        cases: List[Tuple[Sequence[str], Data]] = [
            (["b"], {"b": 2}),
            (["a.a1"], {"a": {"a1": 1}}),
            (["a.a2.y", "b"], {"a": {"a2": {"y": 2}}, "b": 2}),
            (["a.a1", "a.a2.x"], {"a": {"a1": 1, "a2": {"x": 1}}}),
            (["d"], {"d": None}),
            (["c"], {"c": [1, 2]}),
            (["a.a3.x"], {}),  # arrays are not entered
            (["c.0"], {}),
            (["b.x"], {}),  # not an object
            (["a.nope"], {}),  # nothing left of a: dropped
            (["nope"], {}),
            # A shorter path wins whatever the order.
            (["a", "a.a1"], {"a": NESTED["a"]}),
            (["a.a1", "a"], {"a": NESTED["a"]}),
        ]
        for paths, expected in cases:
            self.check(lambda d: apply_allow(d, paths), NESTED, expected)

    def test_empty_branch(self) -> None:
        """An object with nothing listed left is removed, a listed {} kept."""
        data: Data = {"a": {}, "b": {}}
        self.check(lambda d: apply_allow(d, ["a.x", "b"]), data, {"b": {}})


class DenyTests(ReadOnlyMixin):
    """apply_deny removes the listed paths."""

    def test_docs_example(self) -> None:
        """KrakenD's docs example: ``deny: [body, userId]``."""
        self.check(
            lambda d: apply_deny(d, ["body", "userId"]), POST, POST_FILTERED
        )

    def test_table(self) -> None:
        """Nested paths go through objects only; emptied parents stay {}."""
        a = NESTED["a"]
        cases: List[Tuple[Sequence[str], Data]] = [
            (["b", "d"], {"a": a, "c": [1, 2]}),
            (["a.a1"], {**NESTED, "a": {"a2": a["a2"], "a3": a["a3"]}}),
            (
                ["a.a2.x", "a.a1"],
                {**NESTED, "a": {"a2": {"y": 2}, "a3": a["a3"]}},
            ),
            (["a.a2.x", "a.a2.y"], {**NESTED, "a": {**a, "a2": {}}}),
            (["a.a3.x"], NESTED),  # arrays are not entered
            (["c.0", "b.x", "nope", "a.nope.deeper"], NESTED),
            # A shorter path wins whatever the order.
            (["a.a1", "a"], {"b": 2, "c": [1, 2], "d": None}),
            (["a", "a.a1"], {"b": 2, "c": [1, 2], "d": None}),
        ]
        for paths, expected in cases:
            self.check(lambda d: apply_deny(d, paths), NESTED, expected)

    def test_unchanged_is_same_object(self) -> None:
        """When nothing matches, the input itself comes back, uncopied."""
        self.assertIs(apply_deny(NESTED, ["x", "a.x"]), NESTED)


class MappingTests(ReadOnlyMixin):
    """apply_mapping renames top-level keys."""

    def test_docs_example(self) -> None:
        """KrakenD's docs example: ``email`` becomes ``personal_email``."""
        expected = dict(USER)
        expected["personal_email"] = expected.pop("email")
        self.check(
            lambda d: apply_mapping(d, {"email": "personal_email"}),
            USER,
            expected,
        )

    def test_table(self) -> None:
        """Renames are simultaneous, top-level only, cut at the first dot."""
        data = {"a": 1, "b": 2, "c": {"x": 3}}
        cases: List[Tuple[Dict[str, str], Data]] = [
            ({"a": "z"}, {"z": 1, "b": 2, "c": {"x": 3}}),
            ({"a": "z.y"}, {"z": 1, "b": 2, "c": {"x": 3}}),
            ({"a": "b"}, {"b": 1, "c": {"x": 3}}),  # overwrites b
            ({"a": "b", "b": "a"}, {"a": 2, "b": 1, "c": {"x": 3}}),
            ({"a": "b", "b": "c"}, {"b": 1, "c": 2}),
            ({"a": "a"}, data),  # kept (lura would delete it)
            ({"c.x": "y", "nope": "z"}, data),
            ({"a": "k", "b": "k"}, {"k": 2, "c": {"x": 3}}),
        ]
        for mapping, expected in cases:
            self.check(lambda d: apply_mapping(d, mapping), data, expected)


class GroupTests(ReadOnlyMixin):
    """apply_group wraps the data under a key."""

    def test_table(self) -> None:
        """Data, even empty, is wrapped; an empty group changes nothing."""
        self.check(
            lambda d: apply_group(d, "last_post"), POST, {"last_post": POST}
        )
        self.check(lambda d: apply_group(d, "g"), {}, {"g": {}})
        self.assertIs(apply_group(POST, ""), POST)


class FormatBackendTests(ReadOnlyMixin):
    """format_backend and make_formatter follow lura's order."""

    def test_nothing_configured(self) -> None:
        """With no manipulation the formatter hands back its input."""
        formatter = make_formatter(backend())
        self.assertIs(formatter(NESTED), NESTED)
        self.assertIs(format_backend(NESTED, backend()), NESTED)

    def test_order(self) -> None:
        """target, then allow, then mapping, then group, in that order."""
        config = backend(
            target="data",
            allow=("id", "email"),
            mapping={"email": "personal_email", "data": "x"},
            group="user",
        )
        self.check(
            lambda d: format_backend(d, config),
            {"data": USER, "id": 99},
            {"user": {"id": 1, "personal_email": USER["email"]}},
        )

    def test_deny_then_mapping(self) -> None:
        """Without allow, deny runs and mapping sees its result."""
        config = backend(
            deny=("body", "userId"), mapping={"title": "t", "body": "b"}
        )
        self.check(
            lambda d: format_backend(d, config),
            POST,
            {"id": 1, "t": POST["title"]},
        )

    def test_allow_beats_deny(self) -> None:
        """When both are set, allow wins and deny is ignored."""
        config = backend(allow=("id", "title"), deny=("title",))
        self.check(lambda d: format_backend(d, config), POST, POST_FILTERED)

    def test_group_wraps_empty(self) -> None:
        """A missing target still yields the group around an empty object."""
        config = backend(target="nope", allow=("a",), group="g")
        self.check(lambda d: format_backend(d, config), POST, {"g": {}})

    def test_group_docs_example(self) -> None:
        """KrakenD's docs example: the posts backend under ``last_post``."""
        config = backend(group="last_post")
        self.check(
            lambda d: format_backend(d, config), POST, {"last_post": POST}
        )

    def test_flatmap_replaces_filters(self) -> None:
        """A flatmap_filter runs instead of allow, deny and mapping."""
        config = backend(
            target="data",
            allow=("nope",),
            mapping={"a": "renamed"},
            flatmap_filter=(
                FlatmapOp(type="del", args=("a.*.secret",)),
                FlatmapOp(type="move", args=("a", "items")),
            ),
            group="g",
        )
        data = {"data": {"a": [{"id": 1, "secret": "x"}, {"id": 2}], "k": 1}}
        self.check(
            lambda d: format_backend(d, config),
            data,
            {"g": {"items": [{"id": 1}, {"id": 2}], "k": 1}},
        )

    def test_collection_docs_example(self) -> None:
        """KrakenD's docs example: is_collection plus mapping to ``myposts``."""
        config = backend(is_collection=True, mapping={"collection": "myposts"})
        data = decode_body(b'[{"id": 1}, {"id": 2}]', "json", True)
        self.assertEqual(
            make_formatter(config)(data), {"myposts": [{"id": 1}, {"id": 2}]}
        )

    def test_filters_skip_empty_data(self) -> None:
        """Allow and mapping see nothing to do on empty data; group still wraps."""
        config = backend(allow=("a",), mapping={"a": "b"}, group="g")
        self.check(lambda d: format_backend(d, config), {}, {"g": {}})

    def test_shared_input(self) -> None:
        """A cached object formatted twice gives the same, untouched result."""
        config = backend(
            target="a", deny=("a2.x",), mapping={"a1": "one"}, group="g"
        )
        formatter = make_formatter(config)
        before = copy.deepcopy(NESTED)
        first = formatter(NESTED)
        second = formatter(NESTED)
        self.assertEqual(first, second)
        self.assertEqual(
            first, {"g": {"one": 1, "a2": {"y": 2}, "a3": [{"x": 1}]}}
        )
        self.assertEqual(NESTED, before)
