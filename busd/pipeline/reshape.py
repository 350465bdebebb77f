"""Per-backend response manipulation: target, allow/deny, mapping, group.

This is lura's entity formatter (``proxy/formatter.go``, KRAKEND.md 3.4).
:func:`make_formatter` compiles a backend's settings once, at config load,
into one function that runs, in this order:

1. ``target``: replace the data with the object at that dot path; a missing
   path or a non-object value gives ``{}``.
2. If ``flatmap_filter`` is non-empty, its operations run and replace steps
   3-4 entirely (``allow``, ``deny`` and ``mapping`` are ignored).
3. ``allow`` if non-empty, else ``deny``; only when the data is non-empty.
4. ``mapping``; only when the data is non-empty.
5. ``group``: wrap the result under that key, even around ``{}``.

**Sharing.** Every function here treats its input as read-only and never
mutates it, so a cached or shared response stays intact. Results are new
dicts where something changed and may share nested values with the input
(or be the input itself when nothing changed): treat them as read-only too,
or copy before mutating.

Decisions where KrakenD is unclear or accidental:

* ``allow`` is a union: listing ``a`` keeps all of ``a`` even if ``a.b``
  is also listed. (lura lets the later of the two entries win.)
* ``deny`` follows current lura: any depth, a shorter path wins, emptied
  parents stay as ``{}``, non-objects on the way are left alone.
* ``mapping`` renames all keys at once, from the data as it was: ``{"a":
  "b", "b": "c"}`` moves ``a`` to ``b`` and ``b`` to ``c``. Go iterates its
  map in random order, so KrakenD may also chain them. When two keys map
  to one name, the later mapping entry wins (random in KrakenD). A key
  mapped to itself is kept (lura deletes it).
"""

from __future__ import annotations

from typing import (
    Any,
    Callable,
    Dict,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from busd.config.model import BackendConfig
from busd.pipeline.flatmap import make_flatmap

__all__ = [
    "MISSING",
    "Formatter",
    "get_path",
    "apply_target",
    "apply_allow",
    "apply_deny",
    "apply_mapping",
    "apply_group",
    "make_formatter",
    "format_backend",
]

Data = Dict[str, Any]
Formatter = Callable[[Data], Data]


class _Missing:
    """Type of :data:`MISSING`; falsy, with a readable repr."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
"""What :func:`get_path` returns when the path leads nowhere."""

# A path tree maps a key either to _ALL (the whole value is selected) or to
# a nested path tree.
_ALL = True
_Tree = Dict[str, Union[bool, "_Tree"]]


def _identity(data: Data) -> Data:
    return data


def _walk(data: Any, parts: Sequence[str]) -> Any:
    for part in parts:
        if not isinstance(data, dict):
            return MISSING
        data = data.get(part, MISSING)
        if data is MISSING:
            return MISSING
    return data


def get_path(data: Any, dotted: str) -> Any:
    """The value at dot path ``dotted`` through nested objects, or MISSING.

    Every step must be a key of an object (arrays are not entered). An
    empty path addresses ``data`` itself.
    """
    return _walk(data, dotted.split(".")) if dotted else data


def _compile_target(target: str) -> Formatter:
    parts = tuple(target.split("."))

    def extract(data: Data) -> Data:
        found = _walk(data, parts)
        return found if isinstance(found, dict) else {}

    return extract


def apply_target(data: Data, path: str) -> Data:
    """The object at dot path ``path``; ``{}`` if missing or not an object.

    An empty ``path`` means no target: ``data`` is returned unchanged.
    """
    return _compile_target(path)(data) if path else data


def _path_tree(paths: Sequence[str]) -> _Tree:
    """Merge dot paths into a tree where a shorter path wins."""
    tree: _Tree = {}
    for path in paths:
        *parents, leaf = path.split(".")
        node = tree
        for part in parents:
            child = node.get(part)
            if child is _ALL:
                break  # an ancestor is already wholly selected
            if child is None:
                child = node[part] = {}
            assert isinstance(child, dict)
            node = child
        else:
            node[leaf] = _ALL
    return tree


def _prune(data: Data, tree: _Tree) -> Data:
    # Walk the (small) allow tree rather than the data; output key order
    # does not matter because the encoder sorts keys.
    out: Data = {}
    for key, sub in tree.items():
        if key not in data:
            continue
        value = data[key]
        if sub is _ALL:
            out[key] = value
        elif isinstance(value, dict) and isinstance(sub, dict):
            kept = _prune(value, sub)
            if kept:  # a branch with nothing left is dropped
                out[key] = kept
    return out


def _compile_allow(paths: Sequence[str]) -> Formatter:
    tree = _path_tree(paths)
    return lambda data: _prune(data, tree)


def apply_allow(data: Data, paths: Sequence[str]) -> Data:
    """Keep only the listed dot paths (through objects, not arrays).

    An object on a listed path keeps just its listed descendants; a branch
    where nothing survives is dropped, so the result may be ``{}``.
    """
    return _compile_allow(paths)(data)


def _remove(data: Data, tree: _Tree) -> Data:
    out = data
    for key, sub in tree.items():
        if key not in data:
            continue
        if sub is _ALL:
            if out is data:
                out = dict(data)
            del out[key]
            continue
        value = data[key]
        if isinstance(value, dict) and isinstance(sub, dict):
            trimmed = _remove(value, sub)
            if trimmed is not value:
                if out is data:
                    out = dict(data)
                out[key] = trimmed
    return out


def _compile_deny(paths: Sequence[str]) -> Formatter:
    tree = _path_tree(paths)
    return lambda data: _remove(data, tree)


def apply_deny(data: Data, paths: Sequence[str]) -> Data:
    """Drop the listed dot paths (through objects, not arrays).

    Missing paths and non-object values on the way are ignored; a parent
    emptied this way stays as ``{}``. Returns ``data`` itself when nothing
    was removed.
    """
    return _compile_deny(paths)(data)


def _compile_mapping(mapping: Mapping[str, str]) -> Formatter:
    # lura keeps only the part of a new name before the first dot.
    renames: Tuple[Tuple[str, str], ...] = tuple(
        (old, new.split(".", 1)[0]) for old, new in mapping.items()
    )

    def rename(data: Data) -> Data:
        hits = [(old, new) for old, new in renames if old in data]
        if not hits:
            return data
        olds = {old for old, _ in hits}
        out = {k: v for k, v in data.items() if k not in olds}
        for old, new in hits:
            out[new] = data[old]
        return out

    return rename


def apply_mapping(data: Data, mapping: Mapping[str, str]) -> Data:
    """Rename top-level keys (``{old: new}``), all at once.

    A new name is cut at its first dot (``"b.c"`` renames to ``b``). A
    renamed value overwrites a key already called ``new``.
    """
    return _compile_mapping(mapping)(data)


def apply_group(data: Data, group: str) -> Data:
    """``{group: data}``; an empty ``group`` returns ``data`` unchanged."""
    return {group: data} if group else data


def make_formatter(backend: BackendConfig) -> Formatter:
    """Compile ``backend``'s manipulation settings into one function.

    Call it once per backend at config load. With nothing configured it
    returns an identity function. The returned function follows the
    module's sharing rules.
    """
    target = _compile_target(backend.target) if backend.target else None
    group = backend.group
    flatmap: Optional[Formatter] = None
    filt: Optional[Formatter] = None
    mapping: Optional[Formatter] = None
    if backend.flatmap_filter:
        flatmap = make_flatmap(backend.flatmap_filter)
    else:
        if backend.allow:
            filt = _compile_allow(backend.allow)
        elif backend.deny:
            filt = _compile_deny(backend.deny)
        if backend.mapping:
            mapping = _compile_mapping(backend.mapping)
    if not (target or flatmap or filt or mapping or group):
        return _identity

    def format_data(data: Data) -> Data:
        if target is not None:
            data = target(data)
        if flatmap is not None:
            data = flatmap(data)
        elif data:
            # lura runs the filter and the mapping on non-empty data only.
            if filt is not None:
                data = filt(data)
            if mapping is not None and data:
                data = mapping(data)
        if group:
            data = {group: data}
        return data

    return format_data


def format_backend(data: Data, backend: BackendConfig) -> Data:
    """Apply ``backend``'s manipulation to ``data`` (see the module doc).

    Compiles the settings on every call: on the request path, use a
    function from :func:`make_formatter` built at config load instead.
    """
    return make_formatter(backend)(data)
