"""The release matrix: which (architecture, Python) pairs busgw ships for.

Shared by ``packaging/lock`` (which pins and hashes the wheels) and
``packaging/build-zipapp`` (which installs them), so both always agree on
the pip platform tags and on armhf's two special cases.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List

__all__ = [
    "ARCHES",
    "PYTHONS",
    "SYSTEM_CFFI",
    "FOREIGN_WHEEL",
    "DEBIAN_MAJOR",
    "canonical",
    "pip_env",
    "pip_target_args",
    "platforms",
    "targets",
]

# Debian architecture -> (wheel machine name, glibc floor, CPython multiarch
# triplet reported by sys.implementation._multiarch on Debian/Pi OS).
ARCHES: Dict[str, Dict[str, object]] = {
    "amd64": {"machine": "x86_64", "glibc_min": 17, "multiarch": "x86_64-linux-gnu"},
    "arm64": {"machine": "aarch64", "glibc_min": 17, "multiarch": "aarch64-linux-gnu"},
    # cryptography's only armv7l wheel is manylinux_2_31 (PACKAGING.md 1.3).
    "armhf": {"machine": "armv7l", "glibc_min": 31, "multiarch": "arm-linux-gnueabihf"},
}

# CPython minor version -> the Debian / Raspberry Pi OS release that ships it.
PYTHONS: Dict[str, str] = {"3.11": "bookworm", "3.13": "trixie"}

# Bookworm has glibc 2.36; trixie 2.41. Capping every build at 2.36 keeps
# each wheel loadable on the oldest release that the Python version is on.
GLIBC_MAX = 36

# PyPI has no armv7l wheel for cffi: the armhf zipapp loads Debian's
# python3-cffi-backend instead (the .deb depends on it), and pycparser is only
# needed by cffi's compiler, never at run time.
SYSTEM_CFFI: Dict[str, frozenset] = {"armhf": frozenset({"cffi", "pycparser"})}

# PyPI has no armv7l wheel for zope.interface: armhf ships the amd64 wheel
# with its C speedups deleted, i.e. zope.interface's pure-Python fallback.
FOREIGN_WHEEL: Dict[str, Dict[str, str]] = {"armhf": {"zope-interface": "amd64"}}


def canonical(name: str) -> str:
    """PEP 503 normalised project name (``Zope.Interface`` -> ``zope-interface``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def platforms(arch: str) -> List[str]:
    """pip ``--platform`` tags for ``arch``, best first.

    pip does not expand ``manylinux_2_X`` to older glibc versions, so every
    acceptable tag is listed explicitly (PACKAGING.md pitfall 5).
    """
    info = ARCHES[arch]
    machine = info["machine"]
    lo = int(info["glibc_min"])  # type: ignore[call-overload]
    tags = [f"manylinux_2_{v}_{machine}" for v in range(GLIBC_MAX, lo - 1, -1)]
    if lo <= 17:
        tags.append(f"manylinux2014_{machine}")
    return tags


def pip_target_args(arch: str, python: str) -> List[str]:
    """pip options that select wheels for (arch, python) on any build host."""
    nodot = python.replace(".", "")
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
    for abi in (f"cp{nodot}", "abi3", "none"):
        args += ["--abi", abi]
    for tag in platforms(arch):
        args += ["--platform", tag]
    return args


def targets() -> List[tuple]:
    """Every (arch, python) pair, in build order."""
    return [(a, p) for p in PYTHONS for a in ARCHES]


def pip_env() -> Dict[str, str]:
    """The environment for packaging pip calls: PyPI (or PIP_INDEX_URL) only.

    A machine's pip.conf and PIP_FIND_LINKS may add local wheel directories
    or mirrors; they are ignored so that the lock and the builds see one
    index. PIP_CERT and proxy variables are kept (they reach the index).
    """
    env = dict(os.environ)
    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_REQUIRE_VIRTUALENV"):
        env.pop(var, None)
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


# Debian major version by suite: the .deb version suffix (0.1.0+deb12).
DEBIAN_MAJOR: Dict[str, int] = {"bookworm": 12, "trixie": 13}

if __name__ == "__main__":
    # For shell scripts: one "arch python suite debian-major" line per target.
    for _arch, _python in targets():
        print(_arch, _python, PYTHONS[_python], DEBIAN_MAJOR[PYTHONS[_python]])
