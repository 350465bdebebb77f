"""load_config: reading files, JSON syntax errors, unreadable files."""

from __future__ import annotations

import json
import os

from twisted.trial.unittest import SynchronousTestCase

from busd.config import ConfigError, ConfigProblem, load_config
from tests.config._support import endpoint as ep, service as svc


class LoadConfigTests(SynchronousTestCase):
    def write(self, content: bytes, suffix: str = ".json") -> str:
        """A temporary file holding ``content``."""
        path = self.mktemp() + suffix
        with open(path, "wb") as handle:
            handle.write(content)
        return path

    def failure(self, path: str) -> ConfigError:
        """The ConfigError load_config raises for ``path``."""
        with self.assertRaises(ConfigError) as caught:
            load_config(path)
        self.assertEqual(caught.exception.source, path)
        return caught.exception

    def test_load(self) -> None:
        """A valid file loads, with the path recorded as its source."""
        path = self.write(json.dumps(svc(ep("/a"), name="gw")).encode())
        result = load_config(path)
        self.assertEqual(result.config.name, "gw")
        self.assertEqual(result.config.source, path)
        self.assertEqual(result.config.endpoints[0].endpoint, "/a")
        self.assertEqual(result.warnings, ())

    def test_warnings_and_strict(self) -> None:
        """A file with a warning loads, but not with strict=True."""
        path = self.write(json.dumps(svc(colour="red")).encode())
        self.assertEqual(len(load_config(path).warnings), 1)
        with self.assertRaises(ConfigError) as caught:
            load_config(path, strict=True)
        self.assertEqual(
            caught.exception.problems,
            (ConfigProblem("colour", "unknown key (ignored)", "error"),),
        )

    def test_syntax_error(self) -> None:
        """A JSON syntax error is one problem naming line and column."""
        path = self.write(b'{\n  "version": 3\n  "port": 80\n}\n')
        err = self.failure(path)
        self.assertEqual(
            err.problems,
            (
                ConfigProblem(
                    "",
                    "invalid JSON at line 3 column 3:"
                    " Expecting ',' delimiter",
                ),
            ),
        )
        self.assertIn("line 3 column 3", str(err))

    def test_nan(self) -> None:
        """NaN, which Python would read, is not JSON."""
        err = self.failure(self.write(b'{"version": 3, "port": NaN}'))
        self.assertEqual(
            err.problems[0].message, "invalid JSON: NaN is not a JSON value"
        )

    def test_missing_file(self) -> None:
        """A missing file is a ConfigError that says so."""
        err = self.failure(self.mktemp())
        self.assertIn("cannot read the config file", err.problems[0].message)
        self.assertIn("No such file", err.problems[0].message)

    def test_directory(self) -> None:
        """A directory is not a readable config file."""
        path = self.mktemp()
        os.mkdir(path)
        err = self.failure(path)
        self.assertIn("cannot read the config file", err.problems[0].message)

    def test_not_utf8(self) -> None:
        """Bytes that are not UTF-8 are refused with their offset."""
        err = self.failure(self.write(b'{"name": "\xff"}'))
        self.assertEqual(
            err.problems[0].message, "the file is not UTF-8 text (byte 10)"
        )

    def test_bom(self) -> None:
        """A UTF-8 byte order mark is skipped."""
        path = self.write(b"\xef\xbb\xbf" + json.dumps(svc()).encode())
        self.assertEqual(load_config(path).config.endpoints, ())

    def test_yaml(self) -> None:
        """YAML and TOML configs are refused with a clear message."""
        err = self.failure(self.write(b"version: 3\n", suffix=".yaml"))
        self.assertEqual(
            err.problems[0].message, "busgw reads JSON config files only"
        )

    def test_errors_carry_source(self) -> None:
        """Validation errors name the file in the error text."""
        path = self.write(b'{"version": 2}')
        err = self.failure(path)
        self.assertEqual(
            str(err),
            f"{path}: 1 problem(s) in the config\n"
            "error: version: unsupported version: 2 (want: 3)",
        )
