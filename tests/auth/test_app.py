"""JWT validation through the router (StubTreq): JSON 401/403 answers with
WWW-Authenticate, claims reaching the backend, public endpoints."""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from busd.testing import JSONBackend
from tests.auth._support import (
    AUD,
    ISS,
    NOW,
    ec_key,
    jwks,
    public_jwk,
    pyjwt_token,
)
from tests.helpers import B1, Gateway, body_json, config, get, header


class RouterTests(SynchronousTestCase):
    def setUp(self):
        path = self.mktemp()
        with open(path, "w") as handle:
            json.dump(jwks(public_jwk(ec_key(), "k1")), handle)
        validator = {
            "alg": "ES256",
            "jwk_local_path": path,
            "issuer": ISS,
            "audience": [AUD],
            "propagate_claims": [["sub", "X-Sub"]],
        }
        backend = {"host": [B1], "url_pattern": "/s/{JWT.sub}"}
        raw = config(
            [
                {
                    "endpoint": "/status",
                    "input_headers": ["X-Sub"],
                    "backend": [backend],
                },
                {
                    "endpoint": "/admin",
                    "backend": [backend],
                    "extra_config": {
                        "auth/validator": dict(validator, roles=["fleet-admin"])
                    },
                },
                {
                    "endpoint": "/open",
                    "backend": [backend],
                    "extra_config": {"busgw/auth": {"public": True}},
                },
            ],
            extra_config={"busgw/auth": {"validator": validator}},
        )
        self.backend = JSONBackend(
            {"/s/central": (200, {"ok": 1}), "/s/": (200, {"open": 1})}
        )
        self.gw = Gateway(raw, {B1: self.backend})
        self.gw.clock.advance(NOW)

    def test_missing_token(self):
        """No token: 401, JSON body, WWW-Authenticate without error."""
        response, body = get(self, self.gw, "/status")
        self.assertEqual(response.code, 401)
        self.assertEqual(
            body_json(body), {"error": "missing token", "status": 401}
        )
        self.assertEqual(
            header(response, "WWW-Authenticate"), 'Bearer realm="busgw"'
        )
        self.assertEqual(
            header(response, "Content-Type"), "application/json; charset=utf-8"
        )
        self.assertEqual(self.backend.requests, [])

    def test_invalid_token(self):
        """A bad token: 401 invalid_token; the body holds neither the token
        nor key material."""
        raw = pyjwt_token(ec_key("stranger"), "ES256")
        response, body = get(
            self, self.gw, "/status", headers={"Authorization": "Bearer " + raw}
        )
        self.assertEqual(response.code, 401)
        self.assertEqual(
            body_json(body), {"error": "invalid token", "status": 401}
        )
        self.assertEqual(
            header(response, "WWW-Authenticate"),
            'Bearer realm="busgw", error="invalid_token"',
        )
        jwk = public_jwk(ec_key(), "k1")
        for secret in (raw, raw.split(".")[2], jwk["x"], jwk["y"]):
            self.assertNotIn(secret.encode(), body)

    def test_valid_token(self):
        """A valid token: 200; the sub claim reaches the backend as X-Sub
        (the client's own X-Sub is dropped) and in the URL."""
        raw = pyjwt_token(ec_key(), "ES256")
        response, body = get(
            self,
            self.gw,
            "/status",
            headers={"Authorization": "Bearer " + raw, "X-Sub": "root"},
        )
        self.assertEqual(response.code, 200)
        self.assertEqual(body_json(body), {"ok": 1})
        ((method, uri, headers, _),) = self.backend.requests
        self.assertEqual(uri, "/s/central")
        self.assertEqual(headers["x-sub"], ["central"])
        self.assertNotIn("authorization", headers)

    def test_role_missing(self):
        """A token without the endpoint's role: 403 insufficient_scope."""
        raw = pyjwt_token(ec_key(), "ES256")
        response, body = get(
            self, self.gw, "/admin", headers={"Authorization": raw}
        )
        self.assertEqual(response.code, 403)
        self.assertEqual(
            body_json(body), {"error": "insufficient scope", "status": 403}
        )
        self.assertEqual(
            header(response, "WWW-Authenticate"),
            'Bearer realm="busgw", error="insufficient_scope"',
        )
        ok = pyjwt_token(ec_key(), "ES256", roles=["fleet-admin"])
        response, _ = get(
            self, self.gw, "/admin", headers={"Authorization": ok}
        )
        self.assertEqual(response.code, 200)

    def test_public_and_health(self):
        """The opted-out endpoint and /__health answer without a token."""
        response, _ = get(self, self.gw, "/open")
        self.assertEqual(response.code, 200)
        response, body = get(self, self.gw, "/__health")
        self.assertEqual(
            (response.code, body_json(body)["status"]), (200, "ok")
        )
