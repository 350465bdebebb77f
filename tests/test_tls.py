"""TLS without sockets: reading ``client_tls`` (values, defaults, every
error with its JSON path), building the outbound policy, and the checks
on ``ssl:`` listen strings before anything binds."""

import os

from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from twisted.internet import endpoints, task
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.testing import EventLoggingObserver, MemoryReactor
from twisted.logger import globalLogPublisher
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface.verify import verifyObject

from busd.config import ConfigError, parse_config
from busd.service import Options, validate_listen
from busd.testing_tls import make_pki, ssl_listen
from busd.tls import INSECURE_WARNING, ClientTLSConfig, make_tls_policy
from tests.test_cli import run
from tests.test_service import EXAMPLE


class _PKICase(SynchronousTestCase):
    def setUp(self):
        # Absolute: Twisted names key files by their absolute path.
        self.pki = make_pki(os.path.abspath(self.mktemp()))
        self.dir = self.pki.directory

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as handle:
            handle.write(data)
        return path

    def load(self, client_tls=None, strict=False, **root):
        """The ClientTLSConfig of a config with this client_tls."""
        raw = {"version": 3, **root}
        if client_tls is not None:
            raw["client_tls"] = client_tls
        return parse_config(raw, strict=strict).config.client_tls

    def problems(self, client_tls, **root):
        """(severity, path, message) of each problem of this client_tls."""
        raw = {"version": 3, "client_tls": client_tls, **root}
        try:
            result = parse_config(raw)
        except ConfigError as err:
            found = err.problems
        else:
            found = result.warnings
        return [(p.severity, p.path, p.message) for p in found]

    def assertProblem(self, client_tls, severity, path, *words, **root):
        """Exactly one problem, at ``path``, whose message has ``words``."""
        [(sev, where, message)] = self.problems(client_tls, **root)
        self.assertEqual((sev, where), (severity, path), message)
        for word in words:
            self.assertIn(word, message)

    def client_cert(self, cert=None, key=None):
        return {
            "certificate": cert or self.pki.client.cert_path,
            "private_key": key or self.pki.client.key_path,
        }


class ReadTests(_PKICase):
    def test_absent(self):
        """Without client_tls: verify with the system CAs, TLS 1.2 to 1.3."""
        self.assertEqual(self.load(), ClientTLSConfig())
        self.assertEqual(ClientTLSConfig().min_version, "TLS12")

    def test_root_insecure_key(self):
        """The root allow_insecure_connections alone turns verification off
        (and, as KrakenD builds a client_tls for it, TLS 1.3 minimum)."""
        cfg = self.load(allow_insecure_connections=True)
        self.assertTrue(cfg.allow_insecure_connections)
        self.assertEqual(cfg.min_version, "TLS13")

    def test_root_or_block_insecure(self):
        """Either the root key or client_tls's turns verification off."""
        self.assertTrue(
            self.load({"min_version": "TLS12"}, allow_insecure_connections=True)
            .allow_insecure_connections
        )
        self.assertTrue(
            self.load({"allow_insecure_connections": True}).allow_insecure_connections
        )

    def test_defaults_in_block(self):
        """An empty client_tls keeps system trust with KrakenD's TLS13 default."""
        cfg = self.load({})
        self.assertEqual(
            (cfg.allow_insecure_connections, cfg.ca_pem),
            (False, ()),
        )
        self.assertEqual(
            (cfg.min_version, cfg.max_version), ("TLS13", "TLS13")
        )

    def test_full(self):
        """Every supported key is read; CA and client PEM files are loaded."""
        cfg = self.load(
            {
                "ca_certs": [self.pki.ca.cert_path],
                "disable_system_ca_pool": True,
                "client_certs": [self.client_cert()],
                "min_version": "TLS12",
                "max_version": "TLS13",
            },
            strict=True,
        )
        self.assertEqual(cfg.ca_certs, (self.pki.ca.cert_path,))
        self.assertEqual(cfg.ca_pem, (self.pki.ca.cert_pem,))
        self.assertTrue(cfg.disable_system_ca_pool)
        [cert] = cfg.client_certs
        self.assertEqual(cert.chain_pem, (self.pki.client.cert_pem,))
        self.assertEqual(cert.key_pem, self.pki.client.key_pem)
        self.assertEqual((cfg.min_version, cfg.max_version), ("TLS12", "TLS13"))
        self.assertNotIn(b"PRIVATE", repr(cfg).encode())

    def test_bundle_and_chain(self):
        """A CA bundle yields every certificate; a certificate file with its
        chain keeps the leaf first."""
        ca, server, leaf = (
            self.pki.ca.cert_pem,
            self.pki.server.cert_pem,
            self.pki.client.cert_pem,
        )
        bundle = self.write("bundle.pem", ca + server)
        chain = self.write("chain.pem", leaf + ca)
        cfg = self.load(
            {"ca_certs": bundle, "client_certs": [self.client_cert(cert=chain)]}
        )
        self.assertEqual(cfg.ca_pem, (ca, server))
        self.assertEqual(cfg.client_certs[0].chain_pem, (leaf, ca))


class ReadErrorTests(_PKICase):
    def test_missing_ca_file(self):
        """An unreadable CA file is an error naming the file and its path."""
        missing = os.path.join(self.dir, "nope.pem")
        self.assertProblem(
            {"ca_certs": [self.pki.ca.cert_path, missing]},
            "error",
            "client_tls.ca_certs[1]",
            missing,
            "No such file",
        )

    def test_ca_file_without_certificate(self):
        """A CA file holding no PEM certificate is an error."""
        junk = self.write("junk.pem", b"hello")
        self.assertProblem(
            {"ca_certs": [junk]},
            "error",
            "client_tls.ca_certs[0]",
            "no PEM certificate",
        )

    def test_empty_path(self):
        """An empty path string is an error."""
        self.assertProblem(
            {"ca_certs": [""]}, "error", "client_tls.ca_certs[0]", "empty"
        )

    def test_wrong_types(self):
        """Wrong JSON types are errors at their paths."""
        found = self.problems(
            {"ca_certs": 5, "client_certs": "c.pem", "disable_system_ca_pool": "no"}
        )
        self.assertEqual(
            [(s, p) for s, p, _ in found],
            [
                ("error", "client_tls.ca_certs"),
                ("error", "client_tls.client_certs"),
                ("error", "client_tls.disable_system_ca_pool"),
            ],
        )
        self.assertProblem([], "error", "client_tls", "an object")

    def test_key_mismatch(self):
        """A private key that is not the certificate's is an error."""
        self.assertProblem(
            {"client_certs": [self.client_cert(key=self.pki.server.key_path)]},
            "error",
            "client_tls.client_certs[0].private_key",
            "is not the private key of",
        )

    def test_encrypted_key(self):
        """An encrypted private key is an error (no passphrase prompt)."""
        pem = self.pki.client.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
        key = self.write("enc-key.pem", pem)
        self.assertProblem(
            {"client_certs": [self.client_cert(key=key)]},
            "error",
            "client_tls.client_certs[0].private_key",
            "encrypted",
        )

    def test_not_a_key(self):
        """A certificate given as the private key is an error."""
        self.assertProblem(
            {"client_certs": [self.client_cert(key=self.pki.client.cert_path)]},
            "error",
            "client_tls.client_certs[0].private_key",
            "no PEM private key",
        )

    def test_missing_private_key(self):
        """A client_certs entry needs both files."""
        self.assertProblem(
            {"client_certs": [{"certificate": self.pki.client.cert_path}]},
            "error",
            "client_tls.client_certs[0].private_key",
            "missing required key",
        )

    def test_old_version(self):
        """TLS versions below 1.2 are refused, naming what busgw speaks."""
        self.assertProblem(
            {"min_version": "TLS11"}, "error", "client_tls.min_version", "TLS12, TLS13"
        )

    def test_unknown_version(self):
        """An unknown version name is an error."""
        self.assertProblem(
            {"max_version": "1.3"}, "error", "client_tls.max_version", "unknown"
        )

    def test_min_above_max(self):
        """min_version above max_version is a contradiction."""
        self.assertProblem(
            {"min_version": "TLS13", "max_version": "TLS12"},
            "error",
            "client_tls.min_version",
            "above max_version",
        )

    def test_no_trust_at_all(self):
        """disable_system_ca_pool without ca_certs would trust nobody: error,
        unless verification is off anyway."""
        self.assertProblem(
            {"disable_system_ca_pool": True},
            "error",
            "client_tls.disable_system_ca_pool",
            "ca_certs",
        )
        self.assertEqual(
            self.problems(
                {"disable_system_ca_pool": True, "allow_insecure_connections": True}
            ),
            [],
        )


class ReadWarningTests(_PKICase):
    def test_unsupported_keys(self):
        """Go cipher and curve numbers are known but unsupported: warnings."""
        found = self.problems({"cipher_suites": [4865], "curve_preferences": [23]})
        self.assertEqual(
            [(s, p) for s, p, _ in found],
            [
                ("warning", "client_tls.cipher_suites"),
                ("warning", "client_tls.curve_preferences"),
            ],
        )

    def test_unknown_key(self):
        """A misspelt key is a warning with a suggestion; --strict fails."""
        self.assertProblem(
            {"ca_cert": ["x.pem"]},
            "warning",
            "client_tls.ca_cert",
            'did you mean "ca_certs"',
        )
        self.assertRaises(ConfigError, self.load, {"ca_cert": []}, strict=True)

    def test_second_client_cert(self):
        """Only the first client certificate is used; the others warn."""
        found = self.problems(
            {"client_certs": [self.client_cert(), self.client_cert(), {"x": 1}]}
        )
        self.assertEqual(
            [(s, p) for s, p, _ in found],
            [
                ("warning", "client_tls.client_certs[1]"),
                ("warning", "client_tls.client_certs[2]"),
                ("warning", "client_tls.client_certs[2].x"),
                ("error", "client_tls.client_certs[2].certificate"),
                ("error", "client_tls.client_certs[2].private_key"),
            ],
        )

    def test_server_tls_key(self):
        """KrakenD's server "tls" block warns that busgw needs --listen ssl:."""
        [warning] = parse_config({"version": 3, "tls": {}}).warnings
        self.assertEqual(warning.path, "tls")
        self.assertIn("--listen ssl:", warning.message)


class PolicyTests(_PKICase):
    def setUp(self):
        super().setUp()
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def insecure_warnings(self):
        return [e for e in self.log if e.get("log_format") == INSECURE_WARNING]

    def test_default_policy(self):
        """The default config gives an HTTPS policy whose creators verify
        the peer; it warns about nothing."""
        policy = make_tls_policy(ClientTLSConfig())
        verifyObject(IPolicyForHTTPS, policy)
        for host in (b"127.0.0.1", b"::1", b"bus.example"):
            creator = policy.creatorForNetloc(host, 443)
            verifyObject(IOpenSSLClientConnectionCreator, creator)
        self.assertEqual(self.insecure_warnings(), [])

    def test_creators_cached_per_host(self):
        """A host's creator (and its parsed CA bundle) is reused."""
        policy = make_tls_policy(ClientTLSConfig())
        first = policy.creatorForNetloc(b"a.example", 443)
        self.assertIs(policy.creatorForNetloc(b"a.example", 8443), first)
        self.assertIsNot(policy.creatorForNetloc(b"b.example", 443), first)

    def test_every_option(self):
        """CAs added to the system pool, a client certificate and versions
        all build (the handshakes are in the loopback tests)."""
        cfg = self.load(
            {
                "ca_certs": [self.pki.ca.cert_path],
                "client_certs": [self.client_cert()],
                "min_version": "TLS12",
            }
        )
        creator = make_tls_policy(cfg).creatorForNetloc(b"127.0.0.1", 443)
        verifyObject(IOpenSSLClientConnectionCreator, creator)

    def test_insecure_warns_each_time(self):
        """An insecure policy logs a warning every time one is built."""
        cfg = self.load({"allow_insecure_connections": True})
        make_tls_policy(cfg)
        make_tls_policy(cfg)
        self.assertEqual(len(self.insecure_warnings()), 2)
        creator = make_tls_policy(cfg).creatorForNetloc(b"bus.example", 443)
        verifyObject(IOpenSSLClientConnectionCreator, creator)


class ListenTests(_PKICase):
    def problem(self, desc):
        [problem] = validate_listen([desc])
        self.assertIn(repr(desc), problem)
        return problem

    def test_good(self):
        """A valid ssl: string (with extraCertChain) has no problem."""
        desc = ssl_listen(self.pki.server) + ":extraCertChain=" + self.pki.ca.cert_path
        self.assertEqual(validate_listen([desc, "tcp:0"]), [])

    def test_missing_key(self):
        """A missing key file names the file and the reason."""
        missing = os.path.join(self.dir, "missing-key.pem")
        desc = f"ssl:0:privateKey={missing}:certKey={self.pki.server.cert_path}"
        self.assertIn(f"cannot read {missing}: No such file", self.problem(desc))

    def test_unreadable_key(self):
        """A key path that cannot be read (a directory) is named."""
        desc = f"ssl:0:privateKey={self.dir}:certKey={self.pki.server.cert_path}"
        self.assertIn(f"cannot read {self.dir}", self.problem(desc))

    def test_not_pem(self):
        """A key file that is not PEM gets a hint, not a bare OpenSSL list."""
        junk = self.write("junk.pem", b"hello")
        desc = f"ssl:0:privateKey={junk}:certKey={self.pki.server.cert_path}"
        self.assertIn("must be PEM files", self.problem(desc))

    def test_mismatch(self):
        """A key that does not match the certificate is refused."""
        desc = (
            f"ssl:0:privateKey={self.pki.client.key_path}"
            f":certKey={self.pki.server.cert_path}"
        )
        self.assertIn("do not match", self.problem(desc))

    def test_late_file(self):
        """dhParameters, which Twisted reads at the first connection, is
        checked before binding too."""
        missing = os.path.join(self.dir, "dh.pem")
        desc = ssl_listen(self.pki.server) + ":dhParameters=" + missing
        self.assertIn(missing, self.problem(desc))

    def test_options(self):
        """twistd's Options refuse a missing key file before binding."""
        missing = os.path.join(self.dir, "missing-key.pem")
        desc = f"ssl:0:privateKey={missing}"
        err = self.assertRaises(
            usage.UsageError, Options().parseOptions, ["-c", EXAMPLE, "--listen", desc]
        )
        self.assertIn(f"cannot read {missing}", str(err))

    def test_busgw_run(self):
        """busgw run exits 1 naming the missing key, before any reactor runs."""
        self.patch(task, "react", lambda *a, **k: self.fail("the reactor ran"))
        missing = os.path.join(self.dir, "missing-key.pem")
        desc = f"ssl:0:privateKey={missing}"
        code, _, err = run(["run", "-c", EXAMPLE, "--listen", desc])
        self.assertEqual(code, 1)
        self.assertIn(f"cannot read {missing}", err)

    def test_twisted_server_defaults(self):
        """Twisted's ssl: endpoint refuses SSL 3, TLS 1.0 and 1.1 and
        compression, so busgw need not configure them."""
        desc = ssl_listen(self.pki.server)
        endpoint = endpoints.serverFromString(MemoryReactor(), desc)
        context = endpoint._sslContextFactory.getContext()
        wanted = (
            SSL.OP_NO_SSLv3
            | SSL.OP_NO_TLSv1
            | SSL.OP_NO_TLSv1_1
            | SSL.OP_NO_COMPRESSION
        )
        # set_options(0) adds nothing and returns the options in force.
        self.assertEqual(context.set_options(0) & wanted, wanted)
