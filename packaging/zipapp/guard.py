# The zipapp's __main__.py (build-zipapp prepends the TARGET line).
#
# Runs before shiv's bootstrap touches the disk, so that a wrong CPU or
# Python, a missing python3-cffi-backend (armhf) or an unusable SHIV_ROOT
# ends with one sentence on stderr and exit status 2 instead of a traceback
# after a 37 MB extraction. Only the standard library is used here.
import json
import os
import struct
import sys
import zipfile
from pathlib import Path

# TARGET = {...} is inserted above by build-zipapp: arch, python, version,
# multiarch, system_cffi, arches (all built arches) and pythons.
TARGET: dict  # noqa: F821 (defined by the generated header)

_MULTIARCH = {
    "x86_64-linux-gnu": "amd64",
    "aarch64-linux-gnu": "arm64",
    "arm-linux-gnueabihf": "armhf",
}


def _fail(sentence):
    sys.stderr.write("busgw: " + sentence + "\n")
    sys.exit(2)


def _this_arch():
    """Debian architecture of this interpreter (what its extensions must be)."""
    arch = _MULTIARCH.get(getattr(sys.implementation, "_multiarch", ""))
    if arch:
        return arch
    machine = os.uname().machine
    bits = struct.calcsize("P") * 8
    if machine in ("x86_64", "amd64") and bits == 64:
        return "amd64"
    if machine in ("aarch64", "arm64") and bits == 64:
        return "arm64"
    return machine + "/" + str(bits) + "-bit"


def _check_platform():
    want_py = tuple(int(x) for x in TARGET["python"].split("."))
    have_py = sys.version_info[:2]
    arch = _this_arch()
    me = "busgw-%s-py%s.pyz" % (TARGET["arch"], TARGET["python"].replace(".", ""))
    this = "CPython %d.%d.%d on %s" % (sys.version_info[:3] + (arch,))
    if sys.implementation.name != "cpython":
        this = sys.implementation.name + this[len("CPython"):]
    if sys.implementation.name != "cpython" or have_py != want_py or arch != TARGET["arch"]:
        pyver = "%d.%d" % have_py
        if sys.implementation.name == "cpython" and arch in TARGET["arches"] \
                and pyver in TARGET["pythons"]:
            hint = "use busgw-%s-py%s.pyz instead" % (arch, pyver.replace(".", ""))
        else:
            hint = "busgw is built for CPython %s on %s" % (
                " and ".join(TARGET["pythons"]), ", ".join(TARGET["arches"]))
        _fail("%s is for CPython %s on %s, but this is %s: %s." % (
            me, TARGET["python"], TARGET["arch"], this, hint))
    if arch == "armhf" and not os.uname().machine.startswith(("armv7", "armv8", "aarch64")):
        _fail("%s needs an ARMv7 or newer CPU (Raspberry Pi 2 or later), but this is %s."
              % (me, os.uname().machine))


def _load_system_cffi():
    """Load Debian's _cffi_backend (python3-cffi-backend) and nothing else
    from the system, so that ``python3 -S`` keeps the bundle self-contained."""
    import importlib.machinery
    import importlib.util
    import site

    for d in site.getsitepackages():
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(d, "_cffi_backend" + suffix)
            if os.path.exists(path):
                spec = importlib.util.spec_from_file_location("_cffi_backend", path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                sys.modules["_cffi_backend"] = module
                return
    _fail("the armhf zipapp needs Debian's python3-cffi-backend: "
          "install it with `apt install python3-cffi-backend`.")


def _extract():
    """Extract site-packages the way shiv would, failing in one sentence."""
    import _bootstrap

    with zipfile.ZipFile(sys.argv[0]) as archive:
        env = json.loads(archive.read("environment.json").decode())
        root = os.environ.get("SHIV_ROOT") or "~/.shiv"
        try:
            root_path = Path(root).expanduser()
        except RuntimeError:
            _fail("cannot find a home directory for ~/.shiv: set SHIV_ROOT to a "
                  "writable directory where busgw may unpack itself.")
        target = _bootstrap.cache_path(archive, str(root_path), env["build_id"])
        if (target / "site-packages").is_dir() and not os.environ.get("SHIV_FORCE_EXTRACT"):
            return  # already unpacked: a read-only SHIV_ROOT is fine from here on
        probe = root_path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not os.access(str(probe), os.W_OK | os.X_OK):
            _fail("cannot unpack into SHIV_ROOT=%s because %s is not writable "
                  "by this user: set SHIV_ROOT to a writable directory, "
                  "e.g. SHIV_ROOT=/var/tmp/busgw-$USER." % (root_path, probe))
        try:
            _bootstrap.extract_site_packages(archive, target)
        except OSError as err:
            _fail("cannot unpack into SHIV_ROOT=%s (%s): set SHIV_ROOT to a "
                  "writable directory with 60 MB free." % (root_path, err.strerror or err))


_check_platform()
if TARGET["system_cffi"]:
    _load_system_cffi()
_extract()

import _bootstrap  # noqa: E402

_bootstrap.bootstrap()
