"""TLS both ways over loopback: the gateway serving HTTPS from an ``ssl:``
endpoint string, and calling HTTPS backends with ``client_tls`` (test CA,
wrong host name, system trust, the insecure switch, mTLS, versions).
Every certificate comes from a fresh test CA (``busd.testing_tls``)."""

import json
import shutil

from cryptography.x509.oid import NameOID

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    TLSVersion,
    trustRootFromCertificates,
)
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.client import BrowserLikePolicyForHTTPS

from busd.config.load import parse_config
from busd.testing import JSONBackend
from busd.testing_tls import make_pki, server_options, ssl_listen
from busd.tls import INSECURE_WARNING
from tests.integration._util import client, serve, start_gateway

FUEL = {"/v": (200, {"fuel": 70})}


def _peer(request):
    """A backend route naming the client certificate it was shown."""
    cert = request.channel.transport.getPeerCertificate().to_cryptography()
    [name] = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return 200, {"peer": name.value}


class _TLSCase(TestCase):
    def setUp(self):
        self.pki = make_pki(self.mktemp())
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def trusting_client(self):
        """A client that trusts the test CA (curl --cacert)."""
        ca = Certificate.loadPEM(self.pki.ca.cert_pem)
        policy = BrowserLikePolicyForHTTPS(trustRootFromCertificates([ca]))
        return client(self, policy)

    @inlineCallbacks
    def fetch(self, http, url):
        resp = yield http.get(url)
        body = yield resp.content()
        return resp, body


class InboundTests(_TLSCase):
    @inlineCallbacks
    def start(self):
        config = parse_config({"version": 3}).config
        base = yield start_gateway(self, config, ssl_listen(self.pki.server))
        self.assertTrue(base.startswith("https://127.0.0.1:"))
        return base

    @inlineCallbacks
    def test_client_trusting_the_ca(self):
        """A client trusting the test CA gets an answer over HTTPS."""
        base = yield self.start()
        resp, body = yield self.fetch(self.trusting_client(), base + "/__health")
        self.assertEqual(resp.code, 200)
        self.assertEqual(json.loads(body)["status"], "ok")

    @inlineCallbacks
    def test_client_without_the_ca_refused(self):
        """A client with the default (system) trust refuses the gateway."""
        base = yield self.start()
        refused = client(self).get(base + "/__health")
        error = yield self.assertFailure(refused, Exception)
        self.assertIn("certificate verify failed", repr(error.reasons))


class _Curl(ProcessProtocol):
    def __init__(self):
        self.out = b""
        self.done = Deferred()

    def outReceived(self, data):
        self.out += data

    def processEnded(self, reason):
        self.done.callback((reason.value.exitCode, self.out))


class CurlTests(_TLSCase):
    @inlineCallbacks
    def curl(self, *args):
        exe = shutil.which("curl")
        if exe is None:
            raise SkipTest("curl is not installed")
        proto = _Curl()
        # No proxy, no CA variables from the environment: only argv counts.
        argv = [exe, "-sS", "--noproxy", "*", "--max-time", "20", *args]
        reactor.spawnProcess(proto, exe, argv, env={})
        result = yield proto.done
        return result

    @inlineCallbacks
    def test_curl(self):
        """curl --cacert gets 200 from the HTTPS gateway; curl without it
        fails the certificate check (exit 60)."""
        config = parse_config({"version": 3}).config
        base = yield start_gateway(self, config, ssl_listen(self.pki.server))
        ca = self.pki.ca.cert_path
        code, out = yield self.curl("--cacert", ca, base + "/__health")
        self.assertEqual((code, json.loads(out)["status"]), (0, "ok"))
        code, out = yield self.curl(base + "/__health")
        self.assertEqual((code, out), (60, b""))


class OutboundTests(_TLSCase):
    @inlineCallbacks
    def call(self, backend, client_tls=None, path="/v", **service):
        """Serve one endpoint over ``backend`` (a base URL); return the
        gateway's (status, data) for ``GET path``."""
        raw = {
            "version": 3,
            "endpoints": [
                {
                    "endpoint": "/v",
                    "backend": [{"host": [backend], "url_pattern": path}],
                }
            ],
            # The error text names the cause, so a test can tell a refused
            # certificate from, say, a closed port.
            "extra_config": {"router": {"return_error_msg": True}},
            **service,
        }
        if client_tls is not None:
            raw["client_tls"] = client_tls
        base = yield start_gateway(self, parse_config(raw).config)
        resp, body = yield self.fetch(client(self), base + "/v")
        return resp.code, json.loads(body)

    def backend(self, routes=FUEL, issued=None, **options):
        return serve(
            self,
            JSONBackend(routes),
            server_options(issued or self.pki.server, **options),
        )

    @inlineCallbacks
    def test_ca_certs(self):
        """A backend with a test-CA certificate answers when ca_certs lists the CA."""
        url, _ = yield self.backend()
        result = yield self.call(url, {"ca_certs": [self.pki.ca.cert_path]})
        self.assertEqual(result, (200, {"fuel": 70}))

    @inlineCallbacks
    def test_dns_name(self):
        """The DNS subjectAltName is checked too: https://localhost works."""
        url, _ = yield self.backend()
        url = url.replace("127.0.0.1", "localhost")
        result = yield self.call(url, {"ca_certs": [self.pki.ca.cert_path]})
        self.assertEqual(result, (200, {"fuel": 70}))

    @inlineCallbacks
    def test_wrong_host_refused(self):
        """A certificate from the trusted CA but for another host is refused."""
        url, _ = yield self.backend(issued=self.pki.wrong_host)
        code, data = yield self.call(url, {"ca_certs": [self.pki.ca.cert_path]})
        self.assertEqual(code, 500)
        self.assertIn("IPAddressMismatch", data["error"])

    @inlineCallbacks
    def test_system_trust_refuses_test_ca(self):
        """Without ca_certs (system CAs only) the test-CA backend is refused."""
        url, _ = yield self.backend()
        code, data = yield self.call(url)
        self.assertEqual(code, 500)
        self.assertIn("certificate verify failed", data["error"])

    @inlineCallbacks
    def test_disable_system_ca_pool(self):
        """disable_system_ca_pool with the test CA still trusts that CA."""
        url, _ = yield self.backend()
        tls = {"ca_certs": [self.pki.ca.cert_path], "disable_system_ca_pool": True}
        result = yield self.call(url, tls)
        self.assertEqual(result, (200, {"fuel": 70}))

    @inlineCallbacks
    def test_insecure_accepts_and_warns(self):
        """allow_insecure_connections accepts the wrong-host, untrusted
        backend, and the gateway warns at start-up."""
        url, _ = yield self.backend(issued=self.pki.wrong_host)
        result = yield self.call(url, {"allow_insecure_connections": True})
        self.assertEqual(result, (200, {"fuel": 70}))
        warnings = [e for e in self.log if e.get("log_format") == INSECURE_WARNING]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["log_level"].name, "warn")

    @inlineCallbacks
    def test_insecure_root_key(self):
        """The older root-level allow_insecure_connections works as well."""
        url, _ = yield self.backend(issued=self.pki.wrong_host)
        result = yield self.call(url, allow_insecure_connections=True)
        self.assertEqual(result, (200, {"fuel": 70}))

    @inlineCallbacks
    def test_mtls_needs_client_certs(self):
        """A backend requiring a client certificate refuses the gateway
        without client_certs."""
        url, _ = yield self.backend({"/v": _peer}, client_ca=self.pki.ca)
        code, data = yield self.call(url, {"ca_certs": [self.pki.ca.cert_path]})
        self.assertEqual(code, 500)
        self.assertIn("certificate required", data["error"])

    @inlineCallbacks
    def test_mtls_with_client_certs(self):
        """With client_certs the gateway presents its certificate (mTLS)."""
        url, _ = yield self.backend({"/v": _peer}, client_ca=self.pki.ca)
        tls = {
            "ca_certs": [self.pki.ca.cert_path],
            "client_certs": [
                {
                    "certificate": self.pki.client.cert_path,
                    "private_key": self.pki.client.key_path,
                }
            ],
        }
        result = yield self.call(url, tls)
        self.assertEqual(result, (200, {"peer": "client"}))

    @inlineCallbacks
    def test_tls13_default_and_min_version(self):
        """A TLS 1.2-only backend is refused by client_tls's TLS13 default
        and accepted with min_version TLS12."""
        options = CertificateOptions(
            privateKey=self.pki.server.key,
            certificate=self.pki.server.cert,
            lowerMaximumSecurityTo=TLSVersion.TLSv1_2,
        )
        url, _ = yield serve(self, JSONBackend(FUEL), options)
        code, data = yield self.call(url, {"ca_certs": [self.pki.ca.cert_path]})
        self.assertEqual(code, 500)
        self.assertIn("protocol version", data["error"])
        tls = {"ca_certs": [self.pki.ca.cert_path], "min_version": "TLS12"}
        result = yield self.call(url, tls)
        self.assertEqual(result, (200, {"fuel": 70}))
