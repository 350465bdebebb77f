"""The JWT guard: every refusal of issue 3 item 2, tokens accepted from
pyjwt and from the JWS spec by hand, roles and scopes, cookies, leeway,
and claims passed on without spoofing."""

from __future__ import annotations

import hmac as std_hmac

import attrs
import jwt
from treq.testing import StubTreq
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from busd.auth.config import ValidatorConfig
from busd.auth.guard import make_jwt_guard
from busd.auth.verify import MAX_TOKEN_BYTES
from busd.errors import GatewayError
from tests.auth._support import (
    NOW,
    SECRET,
    b64json,
    claims,
    ec_key,
    ed_key,
    eddsa_signer,
    es256_signer,
    guard,
    hand_token,
    hs256_signer,
    jwks,
    oct_jwk,
    preq,
    public_jwk,
    public_pem,
    pyjwt_token,
    rs256_signer,
    rsa_key,
    validator,
)

EC = validator("ES256", jwks(public_jwk(ec_key(), "k1")))


def run(g, request):
    return maybeDeferred(g, None, request)


class Refusals(SynchronousTestCase):
    """Each case answers 401 with WWW-Authenticate error="invalid_token"."""

    def refused(self, raw, cfg=EC, status=401):
        err = self.failureResultOf(
            run(guard(cfg), preq(raw)), GatewayError
        ).value
        self.assertEqual(err.status, status)
        if status == 401:
            self.assertEqual(err.code, "invalid_token")
            self.assertEqual(
                err.headers["WWW-Authenticate"],
                'Bearer realm="busgw", error="invalid_token"',
            )
            self.assertEqual(err.message, "invalid token")
        return err

    def test_valid_token_passes(self):
        """The baseline: a valid ES256 token is accepted."""
        self.successResultOf(
            run(guard(EC), preq(pyjwt_token(ec_key(), "ES256")))
        )

    def test_missing_token(self):
        """No token: 401 "missing token", WWW-Authenticate without error."""
        err = self.failureResultOf(run(guard(EC), preq()), GatewayError).value
        self.assertEqual((err.status, err.message), (401, "missing token"))
        self.assertEqual(
            err.headers["WWW-Authenticate"], 'Bearer realm="busgw"'
        )

    def test_alg_none(self):
        """An unsigned token (alg none) is refused."""
        self.refused(
            f"{b64json({'alg': 'none', 'kid': 'k1'})}.{b64json(claims())}."
        )
        self.refused(jwt.encode(claims(), None, algorithm="none"))

    def test_hs256_with_rsa_public_key(self):
        """HS256 "signed" with the RSA public key (PEM) as secret: refused."""
        cfg = validator("RS256", jwks(public_jwk(rsa_key(), "k1")))
        pem = public_pem(rsa_key())
        forged = hand_token(
            {"alg": "HS256", "kid": "k1"},
            claims(),
            lambda data: std_hmac.new(pem, data, "sha256").digest(),
        )
        self.refused(forged, cfg)

    def test_hs256_with_ec_public_key(self):
        """HS256 "signed" with the EC public key (PEM) as secret: refused."""
        pem = public_pem(ec_key())
        forged = hand_token(
            {"alg": "HS256", "kid": "k1"},
            claims(),
            lambda data: std_hmac.new(pem, data, "sha256").digest(),
        )
        self.refused(forged)

    def test_expired(self):
        """An expired token is refused."""
        self.refused(pyjwt_token(ec_key(), "ES256", exp=int(NOW) - 60))

    def test_nbf_in_future(self):
        """A token not valid before a future time is refused."""
        self.refused(pyjwt_token(ec_key(), "ES256", nbf=int(NOW) + 60))

    def test_wrong_or_missing_aud(self):
        """A token for another audience, or for none, is refused."""
        self.refused(pyjwt_token(ec_key(), "ES256", aud="bus-OTHER"))
        self.refused(pyjwt_token(ec_key(), "ES256", aud=None))

    def test_wrong_or_missing_iss(self):
        """A token from another issuer, or from none, is refused."""
        self.refused(pyjwt_token(ec_key(), "ES256", iss="https://evil.example"))
        self.refused(pyjwt_token(ec_key(), "ES256", iss=None))

    def test_unknown_kid(self):
        """A kid the key set does not hold is refused."""
        self.refused(pyjwt_token(ec_key(), "ES256", kid="k9"))

    def test_bad_signature(self):
        """A token signed by another key, or with a flipped signature byte,
        is refused."""
        self.refused(pyjwt_token(ec_key("stranger"), "ES256"))
        head, body, sig = pyjwt_token(ec_key(), "ES256").split(".")
        flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
        self.refused(f"{head}.{body}.{flipped}")

    def test_malformed_segments(self):
        """Too few or too many segments are refused."""
        head, body, sig = pyjwt_token(ec_key(), "ES256").split(".")
        self.refused(f"{head}.{body}")
        self.refused(f"{head}.{body}.{sig}.{sig}")
        self.refused("not-a-token")

    def test_malformed_base64(self):
        """Segments that are not base64url are refused."""
        head, body, sig = pyjwt_token(ec_key(), "ES256").split(".")
        self.refused(f"{head}.{body}+/.{sig}")
        self.refused(f"{head}=.{body}.{sig}")
        self.refused(f"{head}.{body[:-1]}*.{sig}")

    def test_too_large(self):
        """A token over 8 KiB is refused, even if validly signed."""
        raw = pyjwt_token(ec_key(), "ES256", pad="x" * MAX_TOKEN_BYTES)
        self.refused(raw)

    def test_roles_refused(self):
        """A valid token lacking every required role: 403 with
        error="insufficient_scope"."""
        cfg = attrs.evolve(EC, roles=("fleet-admin",))
        err = self.refused(pyjwt_token(ec_key(), "ES256"), cfg, status=403)
        self.assertEqual(err.code, "insufficient_scope")
        self.assertEqual(
            err.headers["WWW-Authenticate"],
            'Bearer realm="busgw", error="insufficient_scope"',
        )

    def test_scopes_refused(self):
        """A token without the required scopes: 403."""
        cfg = attrs.evolve(
            EC,
            scopes_key="scope",
            scopes=("read", "write"),
            scopes_matcher="all",
        )
        self.refused(
            pyjwt_token(ec_key(), "ES256", scope="read"), cfg, status=403
        )
        raw = pyjwt_token(ec_key(), "ES256", scope="read write")
        self.successResultOf(run(guard(cfg), preq(raw)))


class JWKSDown(Resource):
    isLeaf = True
    hits = 0

    def render_GET(self, request):
        self.hits += 1
        request.setResponseCode(503)
        return b"down"


class RemoteRefusals(SynchronousTestCase):
    def test_jwks_failing(self):
        """A JWK set that cannot be loaded: 401, the failure is logged once
        (a warning, no traceback) and the next request is answered too."""
        events = EventLoggingObserver.createWithCleanup(
            self, globalLogPublisher
        )
        server = JWKSDown()
        stub = StubTreq(server)
        clock = Clock()
        clock.advance(NOW)
        cfg = ValidatorConfig(
            alg="ES256", jwk_url="https://central.example/jwks"
        )
        g = make_jwt_guard(cfg, client=stub, clock=clock)
        raw = pyjwt_token(ec_key(), "ES256")
        for _ in range(2):
            d = run(g, preq(raw))
            stub.flush()
            self.assertEqual(
                self.failureResultOf(d, GatewayError).value.status, 401
            )
        self.assertEqual(server.hits, 1)
        warned = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warned), 1)
        self.assertIn("HTTP status 503", warned[0]["reason"])
        self.assertFalse([e for e in events if "log_failure" in e])

    def test_hs256_validator_with_public_keys(self):
        """An HS256 validator whose jwk_url serves only RSA/EC public keys
        finds no usable key: tokens are refused."""

        class Served(Resource):
            isLeaf = True

            def render_GET(self, request):
                import json

                return json.dumps(
                    jwks(
                        public_jwk(rsa_key(), "k1"), public_jwk(ec_key(), "k2")
                    )
                ).encode()

        stub = StubTreq(Served())
        clock = Clock()
        clock.advance(NOW)
        cfg = ValidatorConfig(
            alg="HS256", jwk_url="https://central.example/jwks"
        )
        g = make_jwt_guard(cfg, client=stub, clock=clock)
        forged = hand_token(
            {"alg": "HS256", "kid": "k1"},
            claims(),
            lambda data: std_hmac.new(
                public_pem(rsa_key()), data, "sha256"
            ).digest(),
        )
        d = run(g, preq(forged))
        stub.flush()
        self.assertEqual(
            self.failureResultOf(d, GatewayError).value.status, 401
        )
        self.flushLoggedErrors()


class Accepted(SynchronousTestCase):
    def accepted(self, raw, cfg):
        result = self.successResultOf(run(guard(cfg), preq(raw)))
        self.assertEqual(result.path, "/t")

    def test_pyjwt_tokens(self):
        """pyjwt tokens of every family verify against their JWK set."""
        cases = [
            ("ES256", ec_key(), public_jwk(ec_key(), "k1")),
            ("RS256", rsa_key(), public_jwk(rsa_key(), "k1")),
            ("PS256", rsa_key(), public_jwk(rsa_key(), "k1")),
            ("EdDSA", ed_key(), public_jwk(ed_key(), "k1")),
            ("HS256", SECRET, oct_jwk(SECRET, "k1")),
        ]
        for alg, key, jwk in cases:
            self.accepted(pyjwt_token(key, alg), validator(alg, jwks(jwk)))

    def test_hand_made_tokens(self):
        """Tokens assembled by hand from the JWS spec (cryptography signs;
        ES256 as raw r||s) verify."""
        cases = [
            ("ES256", es256_signer(ec_key()), public_jwk(ec_key(), "k1")),
            ("RS256", rs256_signer(rsa_key()), public_jwk(rsa_key(), "k1")),
            ("EdDSA", eddsa_signer(ed_key()), public_jwk(ed_key(), "k1")),
            ("HS256", hs256_signer(SECRET), oct_jwk(SECRET, "k1")),
        ]
        for alg, signer, jwk in cases:
            raw = hand_token({"alg": alg, "kid": "k1"}, claims(), signer)
            self.accepted(raw, validator(alg, jwks(jwk)))

    def test_header_forms(self):
        """The Bearer prefix is optional and case-insensitive; another
        header name can be configured."""
        raw = pyjwt_token(ec_key(), "ES256")
        for scheme in ("Bearer ", "bearer ", "BEARER  ", ""):
            self.successResultOf(run(guard(EC), preq(raw, scheme=scheme)))
        cfg = attrs.evolve(EC, auth_header_name="X-Token")
        self.successResultOf(run(guard(cfg), preq(None, ("X-Token", raw))))
        self.failureResultOf(run(guard(cfg), preq(raw)), GatewayError)

    def test_cookie(self):
        """Without the header, the token is read from cookie_key; a header
        token wins over the cookie."""
        raw = pyjwt_token(ec_key(), "ES256")
        cfg = attrs.evolve(EC, cookie_key="bus_token")
        cookie = ("Cookie", f"theme=dark; bus_token={raw}")
        self.successResultOf(run(guard(cfg), preq(None, cookie)))
        other = ("Cookie", f"access_token={raw}")
        self.failureResultOf(run(guard(cfg), preq(None, other)), GatewayError)
        bad = pyjwt_token(ec_key("stranger"), "ES256")
        self.failureResultOf(run(guard(cfg), preq(bad, cookie)), GatewayError)

    def test_default_cookie(self):
        """KrakenD's default cookie name access_token is read."""
        raw = pyjwt_token(ec_key(), "ES256")
        request = preq(None, ("Cookie", f'access_token="{raw}"'))
        self.successResultOf(run(guard(EC), request))

    def test_leeway(self):
        """Expired 3s ago passes with the default 5s leeway, 6s ago does
        not; a 30s leeway lets it pass."""
        self.accepted(pyjwt_token(ec_key(), "ES256", exp=int(NOW) - 3), EC)
        late = pyjwt_token(ec_key(), "ES256", exp=int(NOW) - 6)
        self.failureResultOf(run(guard(EC), preq(late)), GatewayError)
        self.accepted(late, attrs.evolve(EC, leeway=30.0))

    def test_roles(self):
        """Any one of the listed roles gives access (nested key too)."""
        cfg = attrs.evolve(EC, roles=("fleet-admin", "fleet-reader"))
        self.accepted(pyjwt_token(ec_key(), "ES256"), cfg)
        nested = attrs.evolve(
            EC,
            roles=("ops",),
            roles_key="realm.roles",
            roles_key_is_nested=True,
        )
        self.accepted(
            pyjwt_token(ec_key(), "ES256", realm={"roles": "a ops"}), nested
        )


class Propagation(SynchronousTestCase):
    def enriched(self, raw, cfg, *headers, **kw):
        return self.successResultOf(run(guard(cfg, **kw), preq(raw, *headers)))

    def test_claims_to_headers(self):
        """Claims become headers: strings, integers, arrays, objects."""
        cfg = attrs.evolve(
            EC,
            propagate_claims=(
                ("sub", "X-Sub"),
                ("level", "X-Level"),
                ("roles", "X-Roles"),
                ("ctx", "X-Ctx"),
                ("ctx.bus", "X-Bus"),
            ),
        )
        raw = pyjwt_token(
            ec_key(),
            "ES256",
            level=3.0,
            roles=["a", "b"],
            ctx={"bus": "FW-0042"},
        )
        out = self.enriched(raw, cfg)
        self.assertEqual(out.header("X-Sub"), "central")
        self.assertEqual(out.header("X-Level"), "3")
        self.assertEqual(out.header("X-Roles"), "a,b")
        self.assertEqual(out.header("X-Ctx"), '{"bus":"FW-0042"}')
        self.assertEqual(out.header("X-Bus"), "FW-0042")

    def test_client_header_never_spoofs(self):
        """A client's header named like a propagated one is removed, also
        when the claim is missing (then the header is absent)."""
        cfg = attrs.evolve(EC, propagate_claims=(("tenant", "X-Tenant"),))
        spoof = ("x-tenant", "admin")
        out = self.enriched(pyjwt_token(ec_key(), "ES256"), cfg, spoof, spoof)
        self.assertIsNone(out.header("X-Tenant"))
        out = self.enriched(
            pyjwt_token(ec_key(), "ES256", tenant="t1"), cfg, spoof
        )
        self.assertEqual(
            [v for n, v in out.headers if n.lower() == "x-tenant"], ["t1"]
        )

    def test_underscore_spelling_never_spoofs(self):
        """X_Tenant is removed too: CGI/WSGI backends read it as X-Tenant."""
        cfg = attrs.evolve(EC, propagate_claims=(("tenant", "X-Tenant"),))
        out = self.enriched(
            pyjwt_token(ec_key(), "ES256"), cfg, ("X_Tenant", "admin")
        )
        self.assertEqual(
            [n for n, _ in out.headers if n.lower().replace("_", "-") == "x-tenant"],
            [],
        )

    def test_unsendable_claim(self):
        """A claim holding CR/LF is not sent as a header (no injection)."""
        cfg = attrs.evolve(EC, propagate_claims=(("sub", "X-Sub"),))
        out = self.enriched(
            pyjwt_token(ec_key(), "ES256", sub="a\r\nX-Admin: 1"), cfg
        )
        self.assertIsNone(out.header("X-Sub"))

    def test_jwt_params(self):
        """JWT.<claim> params are set for url_pattern placeholders."""
        g = make_jwt_guard(
            EC,
            client=None,
            clock=_clock(),
            url_patterns=("/v/{JWT.sub}?r={JWT.roles}", "/w/{JWT.nope}"),
        )
        out = self.successResultOf(run(g, preq(pyjwt_token(ec_key(), "ES256"))))
        self.assertEqual(
            dict(out.params),
            {"JWT.sub": "central", "JWT.roles": "fleet-reader"},
        )


class Debugging(SynchronousTestCase):
    def test_operation_debug(self):
        """operation_debug logs each refusal's reason, never the token."""
        events = EventLoggingObserver.createWithCleanup(
            self, globalLogPublisher
        )
        raw = pyjwt_token(ec_key(), "ES256", exp=int(NOW) - 60)
        self.failureResultOf(run(guard(EC), preq(raw)), GatewayError)
        self.assertEqual(len(events), 0)
        cfg = attrs.evolve(EC, operation_debug=True)
        self.failureResultOf(run(guard(cfg), preq(raw)), GatewayError)
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["reason"], "token expired")
        self.assertNotIn(raw.split(".")[2], repr(events[0]))


def _clock() -> Clock:
    clock = Clock()
    clock.advance(NOW)
    return clock
