"""``busgw check`` and ``busgw --version``."""

import contextlib
import io
import json
import os

from twisted.trial.unittest import SynchronousTestCase

from busd import __version__
from busd.cli import main
from tests.test_service import EXAMPLE


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
    return code, out.getvalue(), err.getvalue()


class CheckTests(SynchronousTestCase):
    def test_example_is_valid(self):
        """The shipped demo config passes check with exit 0."""
        code, out, err = run(["check", "-c", EXAMPLE])
        self.assertEqual(code, 0, err)
        self.assertIn("Syntax OK!", out)

    def test_central_fleet_counted(self):
        """check names the fleet's size and the buses whose events it would refuse."""
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        fleet = os.path.join(folder, "fleet.json")
        with open(fleet, "w") as f:
            json.dump([{"id": "a", "url": "http://a:1"}, {"id": "b", "url": "http://b:1"}], f)
        path = os.path.join(folder, "central.json")
        with open(path, "w") as f:
            json.dump({"version": 3, "endpoints": [], "extra_config": {
                "busgw/central": {"state_dir": folder, "fleet_file": fleet}}}, f)
        code, out, err = run(["check", "-c", path])
        self.assertEqual(code, 0, err)
        self.assertIn("central: 2 bus(es) in the fleet, 2 without a key", out)

    def test_three_mistakes(self):
        """Three different mistakes are all printed with their paths; exit 1."""
        path = self.mktemp()
        with open(path, "w") as f:
            json.dump(
                {
                    "version": 3,
                    "timeout": "soon",
                    "endpoints": [
                        {
                            "endpoint": "/a/{id}",
                            "backend": [
                                {
                                    "host": ["http://h:1"],
                                    "url_pattern": "/x/{bus}",
                                    "allow": ["a"],
                                    "deny": ["b"],
                                }
                            ],
                        }
                    ],
                },
                f,
            )
        code, out, err = run(["check", "-c", path])
        self.assertEqual(code, 1)
        self.assertIn("timeout", err)
        self.assertIn("endpoints[0].backend[0].url_pattern", err)
        self.assertIn("endpoints[0].backend[0]", err)
        self.assertIn("deny", err)

    def test_strict_warning(self):
        """An unknown key is a warning, and an error with --strict."""
        path = self.mktemp()
        with open(path, "w") as f:
            json.dump({"version": 3, "colour": "blue"}, f)
        code, _, err = run(["check", "-c", path])
        self.assertEqual(code, 0)
        self.assertIn("colour", err)
        code, _, err = run(["check", "-c", path, "--strict"])
        self.assertEqual(code, 1)

    def test_version(self):
        """--version prints the version."""
        code, out, _ = run(["--version"])
        self.assertEqual(code, 0)
        self.assertIn(__version__, out)


class EnvCheckTests(SynchronousTestCase):
    def test_unset_variable_named(self):
        """check names an unset ${VAR}; --env-file supplies it."""
        path = self.mktemp()
        with open(path, "w") as f:
            json.dump({"version": 3, "name": "bus ${BUSGW_TEST_BUS_ID}"}, f)
        code, _, err = run(["check", "-c", path])
        self.assertEqual(code, 1)
        self.assertIn('"BUSGW_TEST_BUS_ID" is not set', err)
        env = self.mktemp()
        with open(env, "w") as f:
            f.write("BUSGW_TEST_BUS_ID=FW-1\n")
        code, out, _ = run(["check", "-c", path, "--env-file", env])
        self.assertEqual(code, 0)


class ReloadCommandTests(SynchronousTestCase):
    def test_sends_sighup(self):
        """busgw reload --pidfile sends SIGHUP to the pid in the file."""
        import signal

        sent = []
        self.patch(__import__("os"), "kill", lambda pid, sig: sent.append((pid, sig)))
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("4242\n")
        code, out, _ = run(["reload", "--pidfile", path])
        self.assertEqual((code, sent), (0, [(4242, signal.SIGHUP)]))

    def test_bad_pidfile(self):
        """A missing pidfile is a clear error, exit 1."""
        code, _, err = run(["reload", "--pidfile", self.mktemp()])
        self.assertEqual(code, 1)
        self.assertIn("cannot read", err)
