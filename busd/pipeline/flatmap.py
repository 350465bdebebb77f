"""KrakenD's ``flatmap_filter``: move, del and append over dot paths.

Paths are dot-separated keys or, in arrays, plain decimal indices (``0``;
not ``01``). ``*`` matches every key or element, except as the last step of
a ``move`` source (compared literally, as lura does). Operations run in
order. The output is what lura's krakend/flatmap ``tree`` gives, computed on
dicts and lists; the input is never mutated (copy on write).

* ``del [p, ...]`` removes each match; a last ``*`` empties the container.
* ``move [from, to]``: equal lengths only *rename* the last step in place,
  ignoring ``to``'s prefix (``a.b -> x.y`` gives ``a.y``; renaming an array
  element changes nothing). A shorter ``to`` *promotes*: its prefix is
  walked from the root (``*`` takes the matched key at that depth) and the
  value goes under its last step in the deepest container reached, even if
  a step was missing. A longer ``to`` *embeds* below the match's parent:
  ``to``'s first ``len(from) - 1`` steps are ignored, the rest is made of
  objects where missing (``*`` is literal). The value replaces a same-named
  key, is appended to an array, and turns a scalar into an object.
* ``append [from, to]``: if both hold arrays, ``to`` becomes ``to + from``,
  then ``from`` is deleted (``append x x`` deletes ``x``). A ``*`` in
  ``from`` collects the matches (``null`` for a missing one).

As in lura: missing paths are ignored; indices stay the backend's (after
``del a.0``, ``a.1`` is still the second element received); an object or
array an operation empties becomes ``null`` (one empty in the input stays).
busgw decides where lura is random or fails: an emptied root is ``{}``; a
rename onto an existing key lets the moved value win; ``move``/``append``
with under two arguments (lura panics), ``append`` into a path with ``*``
(lura writes a literal ``*`` key) and unknown types are skipped, extra
arguments ignored; a value moved into an array is found by its position.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

from busd.config.model import FlatmapOp

__all__ = ["apply_flatmap", "make_flatmap", "Flatmap"]

Data = dict[str, Any]
Flatmap = Callable[[Data], Data]
Steps = tuple[str, ...]
Key = str | int
Keys = tuple[Key, ...]
# A JSON object or array; Any, as its key type (str or int) depends on which.
Container = Any

_WILDCARD = "*"
# Marks a removed array element until the run ends, so that the others keep
# their indices, as lura's element labels do.
_GONE: Any = object()


def _key(node: Any, step: str) -> Key | None:
    """The key or index ``step`` names in ``node``, or None."""
    if isinstance(node, dict):
        return step if step in node else None
    # lura labels elements with strconv.Itoa: only canonical decimals match.
    if isinstance(node, list) and step.isascii() and step.isdigit():
        if (step == "0" or step[0] != "0") and int(step) < len(node):
            return int(step) if node[int(step)] is not _GONE else None
    return None


def _items(node: Any) -> Iterable[tuple[Key, Any]]:
    if isinstance(node, list):
        return [(i, v) for i, v in enumerate(node) if v is not _GONE]
    return list(node.items()) if isinstance(node, dict) else ()


def _bare(node: Any) -> bool:
    """A scalar or a container without children (lura's leaf)."""
    if isinstance(node, dict):
        return not node
    return not isinstance(node, list) or all(v is _GONE for v in node)


def _put(node: Container, label: str, value: Any) -> None:
    if isinstance(node, dict):
        node[label] = value
    else:
        node.append(value)  # the label is lost: see the module docstring


class _Run:
    """Applies operations to one object, copy-on-write. ``_owned``: the
    containers it made and may mutate (held, so their ids stay unique).
    ``_emptied``: what one becomes if emptied (lura's node value: ``None``
    or the scalar an object replaced); if absent, it stays empty."""

    def __init__(self, data: Data) -> None:
        self._owned: dict[int, Container] = {}
        self._emptied: dict[int, Any] = {}
        self._untidy = False
        self.root: Data = self._own(data)

    def _adopt(self, node: Container, nullable: bool, was: Any = None) -> Any:
        self._owned[id(node)] = node
        if nullable:
            self._emptied[id(node)] = was
        return node

    def _own(self, node: Container) -> Container:
        if id(node) in self._owned:
            return node
        copy = dict(node) if isinstance(node, dict) else list(node)
        return self._adopt(copy, nullable=bool(node))

    def _descend(self, node: Container, key: Key) -> Container:
        """The owned child ``node[key]``; a scalar becomes a new object."""
        child = node[key]
        if isinstance(child, (dict, list)):
            owned = self._own(child)
        else:
            owned = self._adopt({}, nullable=True, was=child)
        if owned is not child:
            node[key] = owned
        return owned

    def _owned_at(self, keys: Keys) -> Container:
        node: Container = self.root
        for key in keys:
            node = self._descend(node, key)
        return node

    def _drop(self, parent: Container, key: Key) -> Any:
        """Remove and return ``parent[key]`` from an owned ``parent``."""
        if isinstance(parent, dict):
            value = parent.pop(key)
            self._untidy |= not parent
        else:
            value, parent[key] = parent[key], _GONE
            self._untidy = True
        return value

    def _match(self, steps: Steps) -> list[tuple[Keys, Any]]:
        """Every (key path, value) that ``steps`` reaches from the root."""
        found: list[tuple[Keys, Any]] = [((), self.root)]
        for step in steps:
            reached: list[tuple[Keys, Any]] = []
            for keys, node in found:
                if step == _WILDCARD:
                    reached.extend((keys + (k,), v) for k, v in _items(node))
                elif (key := _key(node, step)) is not None:
                    reached.append((keys + (key,), node[key]))
            found = reached
        return found

    def _get(self, node: Any, steps: Steps) -> Any:
        """lura's ``Get``: a value, a list for ``*`` steps, or None."""
        if not steps:
            if isinstance(node, (dict, list)) and _bare(node):
                return self._emptied.get(id(node), node)
            return node
        if _bare(node):
            return None
        step, rest = steps[0], steps[1:]
        if step == _WILDCARD:
            return [self._get(child, rest) for _, child in _items(node)]
        key = _key(node, step)
        return None if key is None else self._get(node[key], rest)

    def delete(self, steps: Steps) -> None:
        self.root = self._del(self.root, steps)

    def _del(self, node: Any, steps: Steps) -> Any:  # node or owned copy
        if not steps or _bare(node):
            return node
        step, rest = steps[0], steps[1:]
        if step == _WILDCARD and not rest:
            self._untidy = True
            if id(node) in self._owned:
                node.clear()
                return node
            return self._adopt({} if isinstance(node, dict) else [], True)
        if step == _WILDCARD:
            keys = [key for key, _ in _items(node)]
        else:
            keys = [key] if (key := _key(node, step)) is not None else []
        out = node
        for key in keys:
            if rest:
                new = self._del(out[key], rest)
                if new is not out[key]:
                    out = self._own(out)
                    out[key] = new
            else:
                out = self._own(out)
                self._drop(out, key)
        return out

    def move(self, src: Steps, dst: Steps) -> None:
        hits = [
            (keys, key)
            for keys, node in self._match(src[:-1])
            if (key := _key(node, src[-1])) is not None
        ]
        if len(src) == len(dst):
            for keys, key in hits:
                if isinstance(key, str) and key != dst[-1]:
                    parent = self._owned_at(keys)
                    parent[dst[-1]] = parent.pop(key)
            return
        # Detach every match first, as lura does, then insert.
        moved = [(k, self._drop(self._owned_at(k), key)) for k, key in hits]
        for keys, value in moved:
            if len(src) > len(dst):  # promote
                node: Any = self.root
                path: list[Key] = []
                for depth, step in enumerate(dst[:-1]):
                    label = str(keys[depth]) if step == _WILDCARD else step
                    if (key := _key(node, label)) is None:
                        break  # lura stops here and inserts at this level
                    node, path = node[key], path + [key]
                _put(self._owned_at(tuple(path)), dst[-1], value)
                continue
            node = self._owned_at(keys)  # embed
            for step in dst[len(src) - 1 : -1]:
                if (key := _key(node, step)) is None:
                    _put(node, step, self._adopt({}, nullable=True))
                    key = len(node) - 1 if isinstance(node, list) else step
                node = self._descend(node, key)
            _put(node, dst[-1], value)

    def append(self, src: Steps, dst: Steps) -> None:
        if _WILDCARD in dst:
            return
        tail = self._get(self.root, src)
        head = self._get(self.root, dst)
        if not isinstance(tail, list) or not isinstance(head, list):
            return
        # lura refills the node at dst, keeping what it is when emptied.
        if id(head) in self._owned:
            nullable = id(head) in self._emptied
        else:
            nullable = bool(head)
        combined = [v for v in head + tail if v is not _GONE]
        [(keys, _)] = self._match(dst)  # no wildcard: exactly one match
        parent = self._owned_at(keys[:-1])
        parent[keys[-1]] = self._adopt(combined, nullable)
        self.delete(src)

    def result(self) -> Data:
        if self._untidy:
            self._finish(self.root)
        return self.root

    def _finish(self, node: Container) -> None:
        # Only owned containers can be emptied or hold tombstones, and only
        # they are in _owned (the ids of live objects are unique).
        owned, emptied = self._owned, self._emptied
        children = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in children:
            if id(child) in owned:
                self._finish(child)
                if not child and id(child) in emptied:
                    node[key] = emptied[id(child)]
        if isinstance(node, list) and _GONE in node:
            node[:] = [value for value in node if value is not _GONE]


_Call = tuple[Callable[..., None], tuple[Steps, ...]]


def _compile(ops: Sequence[FlatmapOp]) -> list[_Call]:
    compiled: list[_Call] = []
    for op in ops:
        paths = tuple(tuple(arg.split(".")) for arg in op.args)
        if op.type == "del":
            compiled.extend((_Run.delete, (path,)) for path in paths)
        elif op.type in ("move", "append") and len(paths) >= 2:
            compiled.append((getattr(_Run, op.type), paths[:2]))
    return compiled


def make_flatmap(ops: Sequence[FlatmapOp]) -> Flatmap:
    """Compile ``ops`` once into a function applying them in order.

    It returns a new dict sharing untouched values with its argument, which
    it never mutates; with no usable operation it is the identity.
    """
    compiled = _compile(ops)
    if not compiled:
        return lambda data: data

    def flatmap(data: Data) -> Data:
        run = _Run(data)
        for method, args in compiled:
            method(run, *args)
        return run.result()

    return flatmap


def apply_flatmap(data: Data, ops: Sequence[FlatmapOp]) -> Data:
    """Apply ``ops`` to ``data``; compiles them on every call, so prefer
    :func:`make_flatmap` (once, at config load) on the request path."""
    return make_flatmap(ops)(data)
