"""Tests for busd.pipeline.flatmap: KrakenD's flatmap_filter operations.

Many cases are krakend/flatmap's own ``tree`` tests and examples, with the
trees they print written as the JSON lura would render.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Sequence, Tuple

from twisted.trial.unittest import SynchronousTestCase

from busd.config.model import FlatmapOp
from busd.pipeline.flatmap import apply_flatmap, make_flatmap

Data = Dict[str, Any]


def move(src: str, dst: str) -> FlatmapOp:
    return FlatmapOp(type="move", args=(src, dst))


def delete(*paths: str) -> FlatmapOp:
    return FlatmapOp(type="del", args=paths)


def append(src: str, dst: str) -> FlatmapOp:
    return FlatmapOp(type="append", args=(src, dst))


class FlatmapCase(SynchronousTestCase):
    """Runs table rows and checks the input is never mutated."""

    def run_table(
        self, rows: Sequence[Tuple[str, Data, Sequence[FlatmapOp], Data]]
    ) -> None:
        for name, data, ops, expected in rows:
            before = copy.deepcopy(data)
            self.assertEqual(apply_flatmap(data, ops), expected, msg=name)
            self.assertEqual(data, before, msg=f"{name}: input was mutated")


# The structure of KrakenD's flatmap docs ("Notation by example").
DOCS: Data = {
    "a": [
        {
            "b1": [{"c": 1, "d": "foo"}, {"c": 2, "d": "bar"}],
            "b2": True,
        },
        {"b1": [{"c": 3, "d": "vaz"}]},
    ]
}


class DelTests(FlatmapCase):
    """The ``del`` operation."""

    def test_flatmap_tree_cases(self) -> None:
        """krakend/flatmap's TestTree_Del cases give lura's results."""
        two = {"supu": 42, "tupu": False}
        self.run_table(
            [
                ("unknown", two, [delete("abc")], two),
                ("plain", two, [delete("supu")], {"tupu": False}),
                (
                    "element_in_struct",
                    {"internal": dict(two), "tupu": False},
                    [delete("internal.supu")],
                    {"internal": {"tupu": False}, "tupu": False},
                ),
                (
                    "element_in_struct_with_wildcard",
                    {
                        "a": {"first": dict(two), "last": dict(two)},
                        "tupu": False,
                    },
                    [delete("a.*.supu")],
                    {
                        "a": {
                            "first": {"tupu": False},
                            "last": {"tupu": False},
                        },
                        "tupu": False,
                    },
                ),
                (
                    "struct",
                    {"internal": dict(two), "tupu": False},
                    [delete("internal")],
                    {"tupu": False},
                ),
                (
                    "similar_names",
                    {
                        "a": {"a": {"a": {"a": 1}, "aa": 1}, "aa": 1},
                        "tupu": False,
                    },
                    [delete("a.a.a")],
                    {"a": {"a": {"aa": 1}, "aa": 1}, "tupu": False},
                ),
                (
                    "collection_element_attributes",
                    {
                        "a": [
                            {"a": {"a": {"a": 1}, "aa": 1}, "aa": 1},
                            {"a": 42, "aa": 1},
                        ],
                        "tupu": False,
                    },
                    [delete("a.*.a")],
                    {"a": [{"aa": 1}, {"aa": 1}], "tupu": False},
                ),
                (
                    "nested_collection_element_attributes",
                    {
                        "a": [
                            {
                                "b": [
                                    {"c": {"a": 1}, "aa": 1},
                                    {"c": {"a": 2}, "aa": 1},
                                ],
                                "aa": 1,
                            },
                            {"b": [{"c": {"a": 1}, "aa": 1}], "aa": 1},
                        ],
                        "tupu": False,
                    },
                    [delete("a.*.b.*.c")],
                    {
                        "a": [
                            {"b": [{"aa": 1}, {"aa": 1}], "aa": 1},
                            {"b": [{"aa": 1}], "aa": 1},
                        ],
                        "tupu": False,
                    },
                ),
            ]
        )

    def test_flatmap_example(self) -> None:
        """krakend/flatmap's ExampleNew: emptied objects turn into null."""
        five = [1, 2, 3, 4, 5]
        leaf = {"b": True, "c": 42, "d": "tupu"}
        data = {
            "supu": 42,
            "tupu": False,
            "foo": "bar",
            "aa": 23,
            "a": {
                "aa": 23,
                "ac": 23,
                "abc": 23,
                "a": {"a": dict(leaf), **leaf},
                "ab": dict(leaf),
                **leaf,
                "collection": [
                    {"b": False, "d": "aaaa", "dx": "foobar"},
                    dict(leaf),
                ],
                "collection2": [
                    {
                        "d": [
                            {"a": 1, "d": list(five)},
                            {"d": list(five)},
                            {"d": list(five)},
                        ]
                    },
                    {"d": list(five)},
                    {"d": list(five)},
                ],
            },
        }
        ops = [
            delete("a.b"),
            delete("a.collection.0"),
            delete("a.collection2.*.d.*.d"),
        ]
        expected = {
            "a": {
                "a": {"a": dict(leaf), **leaf},
                "aa": 23,
                "ab": dict(leaf),
                "abc": 23,
                "ac": 23,
                "c": 42,
                "collection": [dict(leaf)],
                "collection2": [
                    {"d": [{"a": 1}, None, None]},
                    {"d": list(five)},
                    {"d": list(five)},
                ],
                "d": "tupu",
            },
            "aa": 23,
            "foo": "bar",
            "supu": 42,
            "tupu": False,
        }
        self.run_table([("ExampleNew", data, ops, expected)])

    def test_edges(self) -> None:
        """Wildcards, indices, emptied containers and several paths per op."""
        self.run_table(
            [
                (
                    "collection key case",
                    {"collection": [{"x": 1, "y": 2}, {"x": 3}]},
                    [delete("collection.*.x")],
                    {"collection": [{"y": 2}, None]},
                ),
                (
                    "several paths",
                    {"paths": [{"i": 1, "j": 2}, {"i": 3, "j": 4}], "k": 1},
                    [delete("paths.*.i", "k")],
                    {"paths": [{"j": 2}, {"j": 4}]},
                ),
                ("index", {"a": [1, 2, 3]}, [delete("a.1")], {"a": [1, 3]}),
                (
                    "indices stay the backend's positions",
                    {"a": [1, 2, 3, 4]},
                    [delete("a.0", "a.1"), delete("a.0"), delete("a.3")],
                    {"a": [3]},
                ),
                (
                    "index after a move out of the array",
                    {"a": [{"id": 1}, {"id": 2}, {"id": 3}]},
                    [move("a.0", "first"), move("a.1", "second")],
                    {"a": [{"id": 3}], "first": {"id": 1}, "second": {"id": 2}},
                ),
                (
                    "non-canonical indices",
                    {"a": [1, 2]},
                    [delete("a.01", "a.-1", "a.5", "a.x")],
                    {"a": [1, 2]},
                ),
                (
                    "last wildcard empties",
                    {"a": {"b": 1}},
                    [delete("a.*")],
                    {"a": None},
                ),
                ("array emptied", {"a": [1]}, [delete("a.0")], {"a": None}),
                (
                    "already empty stays",
                    {"a": [], "b": {}},
                    [delete("a.*", "b.*", "b.x")],
                    {"a": [], "b": {}},
                ),
                ("root emptied", {"a": 1}, [delete("a")], {}),
                ("root wildcard", {"a": 1, "b": [2]}, [delete("*")], {}),
                ("through scalar", {"a": 1}, [delete("a.b")], {"a": 1}),
                (
                    "wildcard over object",
                    {"a": {"x": {"k": 1}, "y": 2}},
                    [delete("a.*.k")],
                    {"a": {"x": None, "y": 2}},
                ),
            ]
        )


class MoveTests(FlatmapCase):
    """The ``move`` operation: rename, promote and embed."""

    def test_flatmap_tree_cases(self) -> None:
        """krakend/flatmap's TestTree_Move cases give lura's results."""
        wild = {
            "c": 42,
            "b": {
                "first": {"c": {"d": 42}},
                "last": {"m": 42, "c": {"d": 42}},
            },
        }
        nested: Data = {
            "a": [
                {
                    "b": [{"c": {"a": 1}, "aa": 1}, {"c": {"a": 2}, "aa": 1}],
                    "aa": 1,
                },
                {"b": [{"c": {"a": 1}, "aa": 1}], "aa": 1},
            ],
            "tupu": False,
        }
        self.run_table(
            [
                ("plain", {"a": 42}, [move("a", "b")], {"b": 42}),
                (
                    "in_struct",
                    {"a": 1, "b": {"a": 42}},
                    [move("b.a", "b.c")],
                    {"a": 1, "b": {"c": 42}},
                ),
                (
                    "in_struct_depth",
                    {"a": 1, "b": {"a": 42}},
                    [move("b.a", "b.b.a.b.a.b.c")],
                    {"a": 1, "b": {"b": {"a": {"b": {"a": {"b": {"c": 42}}}}}}},
                ),
                (
                    "from_struct",
                    {"a": 1, "b": {"a": 42}},
                    [move("b.a", "c")],
                    {"a": 1, "b": None, "c": 42},
                ),
                (
                    "from_struct_with_wildcard",
                    wild,
                    [move("b.*.c", "b.*.x")],
                    {
                        "c": 42,
                        "b": {
                            "first": {"x": {"d": 42}},
                            "last": {"m": 42, "x": {"d": 42}},
                        },
                    },
                ),
                (
                    "from_struct_with_wildcard_deep",
                    wild,
                    [move("b.*.c", "b.*.c.b.x")],
                    {
                        "c": 42,
                        "b": {
                            "first": {"c": {"b": {"x": {"d": 42}}}},
                            "last": {"m": 42, "c": {"b": {"x": {"d": 42}}}},
                        },
                    },
                ),
                (
                    "from_collection",
                    {"a": 42, "b": [{"c": 42}, {"c": {"d": 42}}]},
                    [move("b.*.c", "b.*.x")],
                    {"a": 42, "b": [{"x": 42}, {"x": {"d": 42}}]},
                ),
                (
                    "from_struct_nested",
                    {"a": 42, "b": {"a": 42, "bb": True, "b": {"a": 42}}},
                    [move("b.b", "c")],
                    {"a": 42, "b": {"a": 42, "bb": True}, "c": {"a": 42}},
                ),
                (
                    "collection",
                    nested,
                    [move("a.*.b", "a.*.c")],
                    {
                        "a": [
                            {"c": nested["a"][0]["b"], "aa": 1},
                            {"c": nested["a"][1]["b"], "aa": 1},
                        ],
                        "tupu": False,
                    },
                ),
                (
                    "recursive_collection",
                    nested,
                    [move("a.*.b.*.c", "a.*.b.*.x")],
                    {
                        "a": [
                            {
                                "b": [
                                    {"x": {"a": 1}, "aa": 1},
                                    {"x": {"a": 2}, "aa": 1},
                                ],
                                "aa": 1,
                            },
                            {"b": [{"x": {"a": 1}, "aa": 1}], "aa": 1},
                        ],
                        "tupu": False,
                    },
                ),
            ]
        )

    def test_docs_notation_examples(self) -> None:
        """The valid moves of KrakenD's flatmap docs, on their example data."""
        self.run_table(
            [
                (
                    "rename c to d (the moved value wins over d)",
                    DOCS,
                    [move("a.*.b1.*.c", "a.*.b1.*.d")],
                    {
                        "a": [
                            {"b1": [{"d": 1}, {"d": 2}], "b2": True},
                            {"b1": [{"d": 3}]},
                        ]
                    },
                ),
                (
                    "extract the first c",
                    DOCS,
                    [move("a.0.b1.0.c", "c")],
                    {
                        "a": [
                            {
                                "b1": [{"d": "foo"}, {"c": 2, "d": "bar"}],
                                "b2": True,
                            },
                            {"b1": [{"c": 3, "d": "vaz"}]},
                        ],
                        "c": 1,
                    },
                ),
                (
                    "add additional levels",
                    DOCS,
                    [move("a.*.b1.*.c", "a.*.b1.*.c.d.e.f.g")],
                    {
                        "a": [
                            {
                                "b1": [
                                    {
                                        "c": {"d": {"e": {"f": {"g": 1}}}},
                                        "d": "foo",
                                    },
                                    {
                                        "c": {"d": {"e": {"f": {"g": 2}}}},
                                        "d": "bar",
                                    },
                                ],
                                "b2": True,
                            },
                            {
                                "b1": [
                                    {
                                        "c": {"d": {"e": {"f": {"g": 3}}}},
                                        "d": "vaz",
                                    }
                                ]
                            },
                        ]
                    },
                ),
            ]
        )

    def test_edges(self) -> None:
        """lura's path rules for renames, promotions and embeddings."""
        self.run_table(
            [
                (
                    "missing source",
                    {"a": 1},
                    [move("x", "y"), move("a.b", "c")],
                    {"a": 1},
                ),
                (
                    "rename ignores dst prefix",
                    {"a": {"b": 1}},
                    [move("a.b", "x.y")],
                    {"a": {"y": 1}},
                ),
                (
                    "rename overwrites",
                    {"a": 1, "b": 2},
                    [move("a", "b")],
                    {"b": 1},
                ),
                (
                    "rename array element",
                    {"a": [1, 2]},
                    [move("a.0", "a.x")],
                    {"a": [1, 2]},
                ),
                (
                    "promotion stops at a missing step",
                    {"a": {"b": {"c": 1}}},
                    [move("a.b.c", "x.y")],
                    {"a": {"b": None}, "y": 1},
                ),
                (
                    "promotion with wildcard",
                    {"a": {"p": {"b": {"c": 1}}, "q": {"b": {"c": 2}}}},
                    [move("a.*.b.c", "a.*.c")],
                    {"a": {"p": {"b": None, "c": 1}, "q": {"b": None, "c": 2}}},
                ),
                (
                    "promotion from every element: the last wins",
                    {"collection": [{"x": 1}, {"x": 2, "y": 3}]},
                    [move("collection.*.x", "x")],
                    {"collection": [None, {"y": 3}], "x": 2},
                ),
                (
                    "promotion into an array appends",
                    {"list": [1], "o": {"v": {"w": 2}}},
                    [move("o.v.w", "list.new")],
                    {"list": [1, 2], "o": {"v": None}},
                ),
                (
                    "embedding ignores dst prefix",
                    {"a": {"b": 1}},
                    [move("a.b", "x.y.z")],
                    {"a": {"y": {"z": 1}}},
                ),
                (
                    "embedding at root",
                    {"a": 1},
                    [move("a", "x.y")],
                    {"x": {"y": 1}},
                ),
                (
                    "embedding into a scalar",
                    {"a": 1, "s": "text"},
                    [move("a", "s.v")],
                    {"s": {"v": 1}},
                ),
                (
                    "embedding into an array",
                    {"a": 1, "list": [0]},
                    [move("a", "list.x")],
                    {"list": [0, 1]},
                ),
                (
                    "embedding through an index",
                    {"a": 1, "list": [{"k": 0}]},
                    [move("a", "list.0.v")],
                    {"list": [{"k": 0, "v": 1}]},
                ),
                (
                    "moved out of an array",
                    {"a": [{"id": 1}, {"id": 2}]},
                    [move("a.0", "first")],
                    {"a": [{"id": 2}], "first": {"id": 1}},
                ),
                (
                    "literal star at the end",
                    {"a": {"*": 1, "b": 2}},
                    [move("a.*", "a.s")],
                    {"a": {"s": 1, "b": 2}},
                ),
            ]
        )


class AppendTests(FlatmapCase):
    """The ``append`` operation."""

    def test_table(self) -> None:
        """Arrays are concatenated into the destination; the source goes."""
        self.run_table(
            [
                (
                    "plain",
                    {"a": [3], "b": [1, 2]},
                    [append("a", "b")],
                    {"b": [1, 2, 3]},
                ),
                (
                    "nested",
                    {"x": {"a": [1]}, "y": {"b": []}},
                    [append("x.a", "y.b")],
                    {"x": None, "y": {"b": [1]}},
                ),
                (
                    "both empty",
                    {"a": [], "b": []},
                    [append("a", "b")],
                    {"b": []},
                ),
                ("missing source", {"b": [1]}, [append("a", "b")], {"b": [1]}),
                (
                    "missing destination",
                    {"a": [1]},
                    [append("a", "b")],
                    {"a": [1]},
                ),
                (
                    "destination not an array",
                    {"a": [1], "b": {}},
                    [append("a", "b")],
                    {"a": [1], "b": {}},
                ),
                (
                    "source not an array",
                    {"a": 1, "b": [2]},
                    [append("a", "b")],
                    {"a": 1, "b": [2]},
                ),
                (
                    "wildcard source collects",
                    {"a": [{"id": 1}, {"x": 2}], "ids": []},
                    [append("a.*.id", "ids")],
                    {"a": [None, {"x": 2}], "ids": [1, None]},
                ),
                (
                    "wildcard destination is skipped",
                    {"a": [1], "b": [[2]]},
                    [append("a", "b.*")],
                    {"a": [1], "b": [[2]]},
                ),
                ("onto itself deletes", {"a": [1]}, [append("a", "a")], {}),
                (
                    "emptied array is not an array",
                    {"a": [1], "b": [2]},
                    [delete("b.0"), append("a", "b")],
                    {"a": [1], "b": None},
                ),
                (
                    "into an array element",
                    {"a": [9], "b": [{"l": [1]}]},
                    [append("a", "b.0.l")],
                    {"b": [{"l": [1, 9]}]},
                ),
            ]
        )


class DocsConfigExampleTests(FlatmapCase):
    """The configuration example of KrakenD's flatmap docs."""

    def test_schools(self) -> None:
        """append, move, del and rename run in order over the schools data."""
        schools: List[Data] = [
            {"name": f"s{i}", "students": []} for i in range(43)
        ]
        schools[42]["students"] = [
            {"PK_ID": 1, "name": "Ann", "password": "x"},
            {"PK_ID": 2, "name": "Bob", "password": "y"},
        ]
        data = {"kindergarten": [{"name": "k1"}], "schools": schools}
        ops = [
            append("kindergarten", "schools"),
            move("schools.42.students", "alumni"),
            delete("schools"),
            delete("alumni.*.password"),
            move("alumni.*.PK_ID", "alumni.*.id"),
        ]
        expected = {
            "alumni": [{"id": 1, "name": "Ann"}, {"id": 2, "name": "Bob"}]
        }
        self.run_table([("schools", data, ops, expected)])


class CompileTests(SynchronousTestCase):
    """make_flatmap compiles operations once."""

    def test_identity_without_usable_ops(self) -> None:
        """No ops, unknown types or too few arguments leave data alone."""
        data = {"a": [1], "b": [2]}
        for ops in (
            [],
            [FlatmapOp(type="rename", args=("a", "c"))],
            [FlatmapOp(type="move", args=("a",))],
            [FlatmapOp(type="append", args=("a",))],
            [FlatmapOp(type="del", args=())],
        ):
            self.assertIs(make_flatmap(ops)(data), data)

    def test_reusable(self) -> None:
        """A compiled flatmap gives the same result on every call."""
        flatmap = make_flatmap([delete("a.*.x"), move("a", "b")])
        data = {"a": [{"x": 1, "y": 1}]}
        before = copy.deepcopy(data)
        self.assertEqual(flatmap(data), {"b": [{"y": 1}]})
        self.assertEqual(flatmap(data), {"b": [{"y": 1}]})
        self.assertEqual(data, before)

    def test_extra_arguments_ignored(self) -> None:
        """move and append use their first two arguments only, as lura."""
        data = {"a": 1}
        op = FlatmapOp(type="move", args=("a", "b", "c"))
        self.assertEqual(apply_flatmap(data, [op]), {"b": 1})
