"""Entry point of the busgw zipapp (shiv's ``entry_point``).

``python3 busgw.pyz busgw ARGS`` runs the ``busgw`` command line
(``busd.cli.main``); any other first argument goes to ``twistd``, so
``python3 busgw.pyz --nodaemon --pidfile= busgw -c FILE`` serves a config.

twistd is given the busgw ServiceMaker directly instead of scanning
``twisted/plugins``: start-up skips importing every Twisted plugin, and
nothing needs to write ``dropin.cache`` (the unpacked bundle may be
read-only). ``--logger=busgw_zipapp.journal`` logs for journald.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Dict, TextIO

__all__ = ["main", "journal"]


def main() -> int:
    """Dispatch on the first argument: ``busgw`` -> CLI, else twistd."""
    argv = sys.argv[1:]
    if argv[:1] == ["busgw"]:
        from busd.cli import main as cli

        sys.argv[0] = "busgw"
        return cli(argv[1:])
    return _twistd()


def _twistd() -> int:
    from twisted.application import app
    from twisted.plugins.busgw import busgw as maker

    def only_busgw(interface: Any, package: Any = None) -> list:
        return [maker]

    app.ServerOptions._getPlugins = staticmethod(only_busgw)  # type: ignore
    from twisted.scripts.twistd import run

    sys.argv[0] = "twistd"
    run()
    return 0


# journald priorities (sd-daemon(3)) by twisted.logger level name.
_PRIORITY: Dict[str, int] = {"debug": 7, "info": 6, "warn": 4, "error": 3, "critical": 2}


def journal() -> Callable[[Dict[str, Any]], None]:
    """twistd ``--logger`` factory: under systemd (``JOURNAL_STREAM`` set),
    each line is prefixed with its ``<priority>`` and carries no timestamp
    (journald adds its own); elsewhere Twisted's usual text format."""
    from twisted.logger import ILogObserver, textFileLogObserver

    if not os.environ.get("JOURNAL_STREAM"):
        return textFileLogObserver(sys.stdout)
    from zope.interface import implementer

    @implementer(ILogObserver)
    class _Journal:
        def __init__(self, out: TextIO):
            self._out = out

        def __call__(self, event: Dict[str, Any]) -> None:
            from twisted.logger import eventAsText

            level = event.get("log_level")
            prio = _PRIORITY.get(getattr(level, "name", "info"), 6)
            if event.get("log_failure") is not None:
                prio = min(prio, 3)
            text = eventAsText(event, includeTimestamp=False)
            self._out.write("".join(f"<{prio}>{line}\n" for line in text.splitlines()))
            self._out.flush()

    return _Journal(sys.stdout)
