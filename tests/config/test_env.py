"""${NAME} placeholders, KRAKEND_* overrides and environment files."""

from twisted.trial.unittest import SynchronousTestCase

from busd.config.env import EnvFileError, read_env_file
from busd.config.load import parse_config
from busd.errors import ConfigError


def cfg(**extra):
    return {
        "version": 3,
        "name": "bus ${BUS_ID}",
        "endpoints": [
            {
                "endpoint": "/status",
                "backend": [
                    {"host": ["${ECU_HOST:-http://127.0.0.1:9101}"], "url_pattern": "/v"}
                ],
            }
        ],
        **extra,
    }


class PlaceholderTests(SynchronousTestCase):
    def test_filled_from_environ(self):
        """${NAME} takes the variable's value; a default applies when unset."""
        config = parse_config(cfg(), environ={"BUS_ID": "FW-0042"}).config
        self.assertEqual(config.name, "bus FW-0042")
        self.assertEqual(config.endpoints[0].backends[0].hosts, ("http://127.0.0.1:9101",))

    def test_default_overridden(self):
        """A set variable wins over the placeholder's default."""
        env = {"BUS_ID": "x", "ECU_HOST": "10.0.0.7:9101"}
        config = parse_config(cfg(), environ=env).config
        self.assertEqual(config.endpoints[0].backends[0].hosts, ("http://10.0.0.7:9101",))

    def test_unset_is_named_error(self):
        """An unset variable without default is an error naming it and its path."""
        err = self.assertRaises(ConfigError, parse_config, cfg(), environ={})
        (problem,) = [p for p in err.problems if p.severity == "error"]
        self.assertEqual(problem.path, "name")
        self.assertIn('"BUS_ID" is not set', problem.message)

    def test_escape_and_literal_dollar(self):
        """$${ writes a literal ${ and a lone $ stays as it is."""
        config = parse_config(
            {"version": 3, "name": "$${X} costs $5"}, environ={}
        ).config
        self.assertEqual(config.name, "${X} costs $5")

    def test_invalid_placeholder(self):
        """A malformed placeholder is an error, not a silent literal."""
        err = self.assertRaises(
            ConfigError, parse_config, {"version": 3, "name": "${1x}"}, environ={}
        )
        self.assertIn("invalid placeholder", str(err))

    def test_raw_not_modified(self):
        """The caller's dict keeps its placeholders."""
        raw = cfg()
        parse_config(raw, environ={"BUS_ID": "a"})
        self.assertEqual(raw["name"], "bus ${BUS_ID}")

    def test_substituted_value_typed_later(self):
        """A placeholder value is read like any value: "8123" is a valid port."""
        raw = {"version": 3, "port": "${PORT}"}
        self.assertEqual(parse_config(raw, environ={"PORT": "8123"}).config.port, 8123)


class KrakendOverrideTests(SynchronousTestCase):
    def test_override_existing_root_key(self):
        """KRAKEND_PORT replaces an existing root key, as KrakenD does."""
        raw = {"version": 3, "port": 8080, "timeout": "2s"}
        env = {"KRAKEND_PORT": "9000", "KRAKEND_TIMEOUT": "500ms"}
        config = parse_config(raw, environ=env).config
        self.assertEqual((config.port, config.timeout), (9000, 0.5))

    def test_absent_key_not_added(self):
        """An override of a key missing from the file adds nothing."""
        config = parse_config({"version": 3}, environ={"KRAKEND_PORT": "9000"}).config
        self.assertEqual(config.port, 8080)


class EnvFileTests(SynchronousTestCase):
    def test_read(self):
        """NAME=value lines are read; comments, quotes and export handled."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('# bus\nBUS_ID=FW-7\nexport CENTRAL="https://c:8443"\n\n; x\nA=\'b c\'\n')
        self.assertEqual(
            read_env_file(path),
            {"BUS_ID": "FW-7", "CENTRAL": "https://c:8443", "A": "b c"},
        )

    def test_bad_line(self):
        """A line that is not NAME=value is refused with its number."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("OK=1\nnot a pair\n")
        err = self.assertRaises(EnvFileError, read_env_file, path)
        self.assertIn(":2:", str(err))
