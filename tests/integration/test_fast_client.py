"""The gateway's fast backend client over loopback: redirects across
origins, gzip bodies and the pre-built Host header (busd.backends)."""

import gzip
import json

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from busd.config.load import parse_config
from busd.testing import JSONBackend
from tests.integration._util import client, serve, start_gateway


def _config(url: str) -> dict:
    return {
        "version": 3,
        "endpoints": [{"endpoint": "/v", "backend": [{"host": [url], "url_pattern": "/v"}]}],
    }


class FastClientTests(TestCase):
    @inlineCallbacks
    def get(self, gateway: str) -> object:
        resp = yield client(self).get(gateway + "/v")
        body = yield resp.content()
        return resp.code, json.loads(body)

    @inlineCallbacks
    def test_host_header_and_cross_origin_redirect(self) -> None:
        """The backend gets its own Host; after a redirect to another origin,
        the new origin gets its own Host too (the pre-built one is dropped)."""
        target = JSONBackend({"/v": (200, {"from": "target"})})
        target_url, _ = yield serve(self, target)

        def moved(request):
            request.setHeader(b"Location", (target_url + "/v").encode())
            return 302, b""

        first = JSONBackend({"/v": moved})
        first_url, _ = yield serve(self, first)
        gateway = yield start_gateway(self, parse_config(_config(first_url)).config)
        code, data = yield self.get(gateway)
        self.assertEqual((code, data), (200, {"from": "target"}))
        self.assertEqual(first.requests[0][2]["host"], [first_url.split("//")[1]])
        self.assertEqual(target.requests[0][2]["host"], [target_url.split("//")[1]])

    @inlineCallbacks
    def test_gzip_body(self) -> None:
        """A gzip-encoded backend answer is decoded (gzip is accepted)."""
        def zipped(request):
            request.setHeader(b"Content-Encoding", b"gzip")
            return 200, gzip.compress(b'{"fuel": 42}')

        backend = JSONBackend({"/v": zipped})
        url, _ = yield serve(self, backend)
        gateway = yield start_gateway(self, parse_config(_config(url)).config)
        code, data = yield self.get(gateway)
        self.assertEqual((code, data), (200, {"fuel": 42}))
        self.assertIn("gzip", backend.requests[0][2]["accept-encoding"][0])
