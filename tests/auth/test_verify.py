"""Each step of busd.auth.verify refusing on its own."""

from __future__ import annotations

import jwt
from twisted.trial.unittest import SynchronousTestCase

from busd.auth.keys import Key, parse_jwks
from busd.auth.verify import (
    MAX_TOKEN_BYTES,
    Forbidden,
    TokenError,
    check_access,
    check_alg,
    check_claims,
    check_key,
    check_signature,
    claim_text,
    parse_token,
)
from tests.auth._support import (
    AUD,
    ISS,
    NOW,
    b64,
    b64json,
    claims,
    ec_key,
    es256_signer,
    hand_token,
    jwks,
    public_jwk,
    public_pem,
    pyjwt_token,
    rsa_key,
)


def ec_keyset():
    return parse_jwks(jwks(public_jwk(ec_key(), "k1")), "ES256")


class ParseTests(SynchronousTestCase):
    def refused(self, raw: str, fragment: str) -> None:
        with self.assertRaises(TokenError) as caught:
            parse_token(raw)
        self.assertIn(fragment, str(caught.exception))

    def test_valid_shape(self):
        """A pyjwt token parses into its header and claims."""
        token = parse_token(pyjwt_token(ec_key(), "ES256"))
        self.assertEqual(token.header["alg"], "ES256")
        self.assertEqual(token.kid, "k1")
        self.assertEqual(token.claims["iss"], ISS)

    def test_too_large(self):
        """A token over 8 KiB is refused before anything is decoded."""
        big = pyjwt_token(ec_key(), "ES256", pad="x" * MAX_TOKEN_BYTES)
        self.refused(big, "larger than 8192")

    def test_limit_is_inclusive(self):
        """A token of exactly 8 KiB is parsed; one byte more is refused."""
        head = b64json({"alg": "ES256"})
        for body in ("e30", b64json({"a": 1})):  # one of them fits the length
            room = MAX_TOKEN_BYTES - len(head) - len(body) - 2
            if room % 4 != 1:
                break
        raw = f"{head}.{body}.{'A' * room}"
        self.assertEqual(len(raw), MAX_TOKEN_BYTES)
        parse_token(raw)
        self.refused(raw + "A", "larger than 8192")

    def test_segments(self):
        """Two or four segments (and JWE's five) are refused."""
        head, body = b64json({"alg": "ES256"}), b64json({})
        self.refused(f"{head}.{body}", "2 segment")
        self.refused(f"{head}.{body}.AA.AA", "4 segment")
        self.refused("a.b.c.d.e", "5 segment")
        self.refused("justonestring", "1 segment")

    def test_base64_alphabet(self):
        """Standard base64 (+ /) and padding are not base64url."""
        head = b64json({"alg": "ES256"})
        self.refused(f"{head}.e30=.AAAA", "payload is not base64url")
        self.refused(f"{head}.e30.AA+/", "signature is not base64url")
        self.refused(f"{head}.e30.A", "signature is not base64url")

    def test_non_canonical_base64(self):
        """Unused trailing bits set make another spelling of the same bytes:
        refused."""
        self.refused(f"{b64json({'alg': 'ES256'})}.e31.AAAA", "canonical")

    def test_header_not_json(self):
        """A header that is not a JSON object is refused."""
        self.refused(f"{b64(b'not json')}.e30.AAAA", "header is not JSON")
        self.refused(f"{b64json([1])}.e30.AAAA", "header is not a JSON object")
        nan = b64(b'{"alg": NaN}')
        self.refused(f"{nan}.e30.AAAA", "header is not JSON")

    def test_payload_not_object(self):
        """A payload that is not a JSON object (or not UTF-8) is refused."""
        head = b64json({"alg": "ES256"})
        self.refused(
            f"{head}.{b64json('x')}.AAAA", "payload is not a JSON object"
        )
        latin = b64(b"\xff\xfe")
        self.refused(f"{head}.{latin}.AAAA", "payload is not JSON")

    def test_deep_nesting(self):
        """A deeply nested payload is refused, not a RecursionError."""
        head = b64json({"alg": "ES256"})
        deep = b64(b"[" * 5000)
        self.refused(f"{head}.{deep}.AAAA", "payload is not JSON")

    def test_duplicate_members(self):
        """A member named twice is ambiguous: refused."""
        head = b64(b'{"alg":"ES256","alg":"none"}')
        self.refused(f"{head}.e30.AAAA", "header is not JSON")

    def test_header_fields(self):
        """No alg, a non-string kid or a crit header are refused."""
        self.refused(f"{b64json({'typ': 'JWT'})}.e30.AAAA", "no alg")
        self.refused(f"{b64json({'alg': 'ES256', 'kid': 1})}.e30.AAAA", "kid")
        crit = {"alg": "ES256", "crit": ["exp"], "exp": 1}
        self.refused(f"{b64json(crit)}.e30.AAAA", "crit")

    def test_not_ascii(self):
        """Characters outside ASCII are refused."""
        self.refused("é.e30.AAAA", "ASCII")


class AlgTests(SynchronousTestCase):
    def test_none_refused(self):
        """alg "none" is refused, whatever its case, even if configured."""
        for given in ("none", "None", "NONE"):
            with self.assertRaises(TokenError) as caught:
                check_alg({"alg": given}, "ES256")
            self.assertIn("none", str(caught.exception))
        with self.assertRaises(TokenError):
            check_alg({"alg": "none"}, "none")

    def test_other_alg_refused(self):
        """An alg other than the configured one is refused (HS256 for an
        ES256 validator: algorithm confusion)."""
        with self.assertRaises(TokenError) as caught:
            check_alg({"alg": "HS256"}, "ES256")
        self.assertIn("not the configured", str(caught.exception))
        check_alg({"alg": "ES256"}, "ES256")

    def test_key_family(self):
        """An RSA or EC key is never used for an HS256 check."""
        for kty, crv in (("RSA", None), ("EC", "P-256")):
            with self.assertRaises(TokenError):
                check_key(
                    Key(kid="k", kty=kty, alg="HS256", key=b"x", crv=crv),
                    "HS256",
                )
        check_key(Key(kid="k", kty="oct", alg="HS256", key=b"x"), "HS256")
        with self.assertRaises(TokenError):
            check_key(
                Key(kid="k", kty="EC", alg="ES256", key=b"x", crv="P-384"),
                "ES256",
            )


class SignatureTests(SynchronousTestCase):
    def test_pyjwt_and_hand_made_accepted(self):
        """A pyjwt token and a hand-assembled ES256 token (raw r||s) verify."""
        key = ec_keyset().find("k1")
        for raw in (
            pyjwt_token(ec_key(), "ES256"),
            hand_token(
                {"alg": "ES256", "kid": "k1"}, claims(), es256_signer(ec_key())
            ),
        ):
            check_signature(parse_token(raw), key, "ES256")

    def test_bad_signature(self):
        """A token signed by another key, or altered, is refused."""
        key = ec_keyset().find("k1")
        other = pyjwt_token(ec_key("other"), "ES256")
        with self.assertRaises(TokenError):
            check_signature(parse_token(other), key, "ES256")
        good = pyjwt_token(ec_key(), "ES256")
        head, _, sig = good.split(".")
        altered = f"{head}.{b64json(claims(sub='root'))}.{sig}"
        with self.assertRaises(TokenError):
            check_signature(parse_token(altered), key, "ES256")

    def test_public_key_as_hmac_secret(self):
        """An HS256 token made with the public key PEM as secret does not
        verify even if it reached the signature step."""
        pem = public_pem(rsa_key())
        forged = hand_token(
            {"alg": "HS256", "kid": "k1"},
            claims(),
            lambda data: __import__("hmac").new(pem, data, "sha256").digest(),
        )
        rsa_keys = parse_jwks(jwks(public_jwk(rsa_key(), "k1")), "RS256")
        with self.assertRaises(TokenError):
            check_signature(parse_token(forged), rsa_keys.find("k1"), "RS256")


class ClaimTests(SynchronousTestCase):
    def check(self, **over):
        check_claims(
            claims(**over), now=NOW, leeway=5.0, issuer=ISS, audience=(AUD,)
        )

    def refused(self, fragment, **over):
        with self.assertRaises(TokenError) as caught:
            self.check(**over)
        self.assertIn(fragment, str(caught.exception))

    def test_valid(self):
        """Valid claims pass."""
        self.check()

    def test_expired(self):
        """exp in the past beyond the leeway is refused; within it passes."""
        self.refused("expired", exp=int(NOW) - 6)
        self.check(exp=int(NOW) - 4)

    def test_nbf(self):
        """nbf in the future beyond the leeway is refused; within it passes."""
        self.refused("nbf", nbf=int(NOW) + 6)
        self.check(nbf=int(NOW) + 4)

    def test_iat(self):
        """iat in the future beyond the leeway is refused."""
        self.refused("iat", iat=int(NOW) + 6)

    def test_times_must_be_numbers(self):
        """A string or boolean exp is refused."""
        self.refused("exp is not a number", exp="tomorrow")
        self.refused("exp is not a number", exp=True)

    def test_issuer(self):
        """A wrong or missing iss is refused."""
        self.refused("iss", iss="https://evil.example")
        self.refused("iss", iss=None)

    def test_audience(self):
        """A wrong, missing or malformed aud is refused; a list holding it
        passes."""
        self.refused("aud", aud="other-bus")
        self.refused("aud", aud=None)
        self.refused("aud", aud=[1])
        self.check(aud=["other", AUD])

    def test_every_audience(self):
        """Every configured audience must be present, not just one."""
        with self.assertRaises(TokenError):
            check_claims(
                claims(aud=[AUD]), now=NOW, leeway=5, audience=(AUD, "fleet")
            )
        check_claims(
            claims(aud=[AUD, "fleet"]),
            now=NOW,
            leeway=5,
            audience=(AUD, "fleet"),
        )


class AccessTests(SynchronousTestCase):
    def access(self, token_claims, **kw):
        options = dict(
            roles_key="roles",
            roles_nested=False,
            roles=(),
            scopes_key="",
            scopes=(),
            scopes_all=False,
        )
        options.update(kw)
        check_access(token_claims, **options)

    def test_roles_any(self):
        """Any listed role passes (array or space-separated); none is 403."""
        self.access({"roles": ["a", "b"]}, roles=("x", "b"))
        self.access({"roles": "a b"}, roles=("b",))
        with self.assertRaises(Forbidden):
            self.access({"roles": ["a"]}, roles=("b",))
        with self.assertRaises(Forbidden):
            self.access({}, roles=("b",))

    def test_roles_nested(self):
        """A nested roles key is a dot path, only when asked."""
        nested = {"realm_access": {"roles": ["ops"]}}
        self.access(
            nested,
            roles_key="realm_access.roles",
            roles_nested=True,
            roles=("ops",),
        )
        with self.assertRaises(Forbidden):
            self.access(nested, roles_key="realm_access.roles", roles=("ops",))

    def test_scopes(self):
        """scopes_matcher any needs one scope, all needs every one."""
        c = {"scope": "read write"}
        self.access(c, scopes_key="scope", scopes=("read", "admin"))
        with self.assertRaises(Forbidden):
            self.access(
                c, scopes_key="scope", scopes=("read", "admin"), scopes_all=True
            )
        self.access(
            c, scopes_key="scope", scopes=("read", "write"), scopes_all=True
        )
        with self.assertRaises(Forbidden):
            self.access(c, scopes_key="scope", scopes=("admin",))


class ClaimTextTests(SynchronousTestCase):
    def test_rendering(self):
        """Claims render as KrakenD does."""
        self.assertEqual(claim_text("a b"), "a b")
        self.assertEqual(claim_text(42), "42")
        self.assertEqual(claim_text(42.0), "42")
        self.assertEqual(claim_text(1.5), "1.500000")
        self.assertEqual(claim_text(["a", 1, 2.0]), "a,1,2")
        self.assertEqual(claim_text({"b": 1, "a": [1]}), '{"a":[1],"b":1}')
        self.assertEqual(claim_text(True), "true")
        self.assertIsNone(claim_text(None))
        self.assertEqual(claim_text(float("inf")), "inf")

    def test_pyjwt_still_refuses_none(self):
        """pyjwt itself never accepts an unsigned token with a key."""
        raw = jwt.encode(claims(), None, algorithm="none")
        with self.assertRaises(TokenError):
            check_signature(parse_token(raw), ec_keyset().find("k1"), "ES256")
