"""Environment in configs: ``${NAME}`` placeholders and KRAKEND_* overrides.

One config file serves every bus: the per-bus values (bus id, central URL,
key paths) come from the environment, e.g. a systemd ``EnvironmentFile``.

* ``${NAME}`` in any JSON **string** value (keys are left alone) is replaced
  by the variable's value; ``${NAME:-default}`` falls back to ``default``
  when the variable is unset or empty; ``$${`` writes a literal ``${``. A
  variable that is unset with no default is a config error at that JSON
  path, naming the variable. Substitution happens after JSON parsing, so a
  value can never change the document's structure.
* KrakenD's ``KRAKEND_<KEY>`` variables override root-level keys that the
  file already has (``KRAKEND_PORT=9000``), as KrakenD CE does; the value
  is then read like any other (``"9000"`` is a valid port).
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

from busd.config._json import JSONObject
from busd.config._walk import ROOT, Loc, Report

__all__ = ["apply_environment", "environment", "read_env_file", "EnvFileError"]

_PLACEHOLDER = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KRAKEND_PREFIX = "KRAKEND_"


def apply_environment(
    report: Report, raw: Any, environ: Mapping[str, str]
) -> Any:
    """Return ``raw`` with placeholders filled and KRAKEND_* overrides
    applied; problems go to ``report``. ``raw`` itself is not modified."""
    out = _walk(report, raw, ROOT, environ)
    if isinstance(out, dict):
        for name, value in environ.items():
            if not name.startswith(_KRAKEND_PREFIX):
                continue
            key = name[len(_KRAKEND_PREFIX) :].lower()
            current = out.get(key)
            # Only scalar root keys already in the file, as KrakenD does.
            if key in out and isinstance(current, (str, int, float, bool)):
                out[key] = value
    return out


def _walk(report: Report, value: Any, loc: Loc, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        if "$" not in value:
            return value
        return _substitute(report, value, loc, environ)
    if isinstance(value, dict):
        copy = JSONObject(
            (k, _walk(report, v, loc.key(value, k), environ))
            for k, v in value.items()
        )
        copy.duplicate_keys = getattr(value, "duplicate_keys", ())
        return copy
    if isinstance(value, list):
        return [_walk(report, v, loc.item(i), environ) for i, v in enumerate(value)]
    return value


def _substitute(
    report: Report, text: str, loc: Loc, environ: Mapping[str, str]
) -> str:
    def replace(m: "re.Match[str]") -> str:
        if m.group(0) == "$${":
            return "${"
        inner = m.group(1)
        name, sep, default = inner.partition(":-")
        if not _NAME.fullmatch(name):
            report.error(
                loc,
                f'invalid placeholder "${{{inner}}}": expected ${{NAME}} or '
                "${NAME:-default}",
            )
            return m.group(0)
        value = environ.get(name)
        if value:
            return value
        if sep:
            return default
        if value is None:
            report.error(loc, f'environment variable "{name}" is not set')
        return ""

    return _PLACEHOLDER.sub(replace, text)


class EnvFileError(ValueError):
    """An environment file that cannot be read; the message names the line."""


def read_env_file(path: str) -> Dict[str, str]:
    """Read a systemd-style ``EnvironmentFile``: ``NAME=value`` lines,
    ``#``/``;`` comments and blank lines ignored, one pair of surrounding
    single or double quotes removed, an optional ``export `` prefix."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvFileError(f"{path}: cannot read the environment file: {exc}")
    env: Dict[str, str] = {}
    problems: List[Tuple[int, str]] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text[0] in "#;":
            continue
        if text.startswith("export "):
            text = text[len("export ") :].lstrip()
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep or not _NAME.fullmatch(name):
            problems.append((number, "expected NAME=value"))
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[name] = value
    if problems:
        raise EnvFileError(
            "\n".join(f"{path}:{n}: {msg}" for n, msg in problems)
        )
    return env


def environment(env_file: Optional[str] = None) -> Dict[str, str]:
    """The variables a config is filled from: ``env_file``'s (if given),
    overridden by the process environment, so an explicit
    ``BUS_ID=... busgw run`` beats the file."""
    env = read_env_file(env_file) if env_file else {}
    env.update(os.environ)
    return env
