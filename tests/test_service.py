"""The twistd plugin, its Options and the service tree."""

import json
import os

from twisted.application.service import IServiceMaker
from twisted.internet.defer import succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from busd.config.load import parse_config
from busd.service import Options, build_service, default_listen, makeService

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(os.path.dirname(HERE), "etc", "busgw.json")


class PluginTests(SynchronousTestCase):
    def test_plugin_found(self):
        """twistd finds a 'busgw' service maker whose options parse -c."""
        import twisted.plugins

        makers = {m.tapname: m for m in getPlugins(IServiceMaker, twisted.plugins)}
        self.assertIn("busgw", makers)
        options = makers["busgw"].options()
        options.parseOptions(["-c", EXAMPLE])
        self.assertEqual(options.config.name, "Foggy Whale bus FW-0042")


class OptionsTests(SynchronousTestCase):
    def write(self, raw):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(raw if isinstance(raw, str) else json.dumps(raw))
        return path

    def test_typed_options(self):
        """Non-default typed values parse: port override, repeated --listen, -d."""
        options = Options()
        options.parseOptions(
            [
                "-c",
                EXAMPLE,
                "-p",
                "9999",
                "-d",
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--listen",
                "tcp:0",
            ]
        )
        self.assertEqual(options["port"], 9999)
        self.assertTrue(options["debug"])
        self.assertEqual(options["listen"], ["tcp:0:interface=127.0.0.1", "tcp:0"])

    def test_default_listen_from_config(self):
        """Without --listen the config's port (or -p) and listen_ip are used."""
        options = Options()
        options.parseOptions(["-c", EXAMPLE, "-p", "8123"])
        self.assertEqual(options["listen"], ["tcp:8123"])
        cfg = parse_config({"version": 3, "port": 81, "listen_ip": "::1"}).config
        self.assertEqual(default_listen(cfg), "tcp:81:interface=\\:\\:1")

    def test_bad_config_fails_before_binding(self):
        """A bad config is a UsageError listing every problem with its path."""
        path = self.write(
            {
                "version": 3,
                "timeout": "2 seconds",
                "endpoints": [{"endpoint": "/a", "backend": []}],
            }
        )
        err = self.assertRaises(
            usage.UsageError, Options().parseOptions, ["-c", path]
        )
        self.assertIn("timeout", str(err))
        self.assertIn("endpoints[0].backend", str(err))

    def test_bad_listen(self):
        """A malformed --listen string is refused before anything binds."""
        err = self.assertRaises(
            usage.UsageError,
            Options().parseOptions,
            ["-c", EXAMPLE, "--listen", "tcp:notaport"],
        )
        self.assertIn("tcp:notaport", str(err))

    def test_strict(self):
        """--strict turns an unknown key into an error."""
        path = self.write({"version": 3, "colour": "blue"})
        Options().parseOptions(["-c", path])
        self.assertRaises(
            usage.UsageError, Options().parseOptions, ["-c", path, "--strict"]
        )


class ServiceTreeTests(SynchronousTestCase):
    def test_tree_and_stop_order(self):
        """The admin listener comes first and the public listeners last, so
        the public ones stop first; then the gateway closes its pool."""
        reactor = MemoryReactorClock()
        cfg = parse_config(
            {
                "version": 3,
                "extra_config": {"busgw/telemetry": {"admin": {"listen": "tcp:9191"}}},
            }
        ).config
        top = build_service(cfg, reactor, listen=["tcp:8001", "tcp:8002"])
        names = [s.name for s in top]
        self.assertEqual(names, ["admin", "http", "http-1"])
        closed = []
        top._pool.closeCachedConnections = lambda: closed.append(1) or succeed(None)
        top.startService()
        self.assertEqual([p[0] for p in reactor.tcpServers], [9191, 8001, 8002])
        self.successResultOf(top.stopService())
        self.assertEqual(closed, [1])

    def test_make_service(self):
        """makeService builds the tree from parsed Options."""
        options = Options()
        options.parseOptions(["-c", EXAMPLE, "--listen", "tcp:0"])
        svc = makeService(options)
        # The example's bus roles come first (started before, stopped after
        # the listeners); which ones is for their own tests.
        roles = len(svc.roles)
        self.assertEqual([s.name for s in svc][roles:], ["admin", "http"])
        self.assertEqual(list(svc)[:roles], list(svc.roles))
        self.assertEqual(svc.source.path, EXAMPLE)
