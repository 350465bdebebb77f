"""Reading auth/validator and busgw/auth: defaults, every bad value with
its JSON path, dashed v2 names, and where each endpoint stands."""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from busd.config import parse_config
from tests.auth._support import ec_key, jwks, public_jwk, rsa_key
from tests.config._support import endpoint as ep
from tests.config._support import load, problems
from tests.config._support import service as svc

V = "endpoints[0].extra_config.auth/validator"
URL = "https://central.example/jwks.json"


def with_validator(**options):
    return svc(ep("/a", extra_config={"auth/validator": options}))


class ValidatorTests(SynchronousTestCase):
    def jwks_file(self, *keys):
        path = self.mktemp()
        with open(path, "w") as handle:
            json.dump(jwks(*keys), handle)
        return path

    def test_defaults(self):
        """Only alg and a key source given: KrakenD's defaults, busgw's 5s
        leeway and 15 min cache."""
        auth = (
            load(self, with_validator(alg="ES256", jwk_url=URL))
            .config.endpoints[0]
            .auth
        )
        self.assertEqual(auth.alg, "ES256")
        self.assertEqual(auth.jwk_url, URL)
        self.assertEqual(auth.cache_duration, 900.0)
        self.assertEqual(auth.failed_jwk_key_cooldown, 10.0)
        self.assertEqual(auth.leeway, 5.0)
        self.assertEqual(auth.roles_key, "roles")
        self.assertEqual(auth.cookie_key, "access_token")
        self.assertEqual(auth.auth_header_name, "Authorization")
        self.assertEqual(auth.scopes_matcher, "any")
        self.assertIsNone(auth.local_keys)

    def test_every_option(self):
        """Every option is read into its typed field."""
        path = self.jwks_file(public_jwk(ec_key(), "k1"))
        raw = svc(
            ep(
                "/a",
                input_headers=["X-Sub"],
                extra_config={
                    "auth/validator": {
                        "alg": "ES256",
                        "jwk_local_path": path,
                        "cache": True,
                        "cache_duration": 60,
                        "failed_jwk_key_cooldown": "30s",
                        "audience": ["bus", "fleet"],
                        "issuer": "central",
                        "leeway": "1m",
                        "roles_key": "realm.roles",
                        "roles_key_is_nested": True,
                        "roles": ["ops"],
                        "scopes_key": "scope",
                        "scopes": ["read"],
                        "scopes_matcher": "all",
                        "propagate_claims": [["sub", "x-sub"]],
                        "cookie_key": "tok",
                        "auth_header_name": "x-token",
                        "operation_debug": True,
                        "key_identify_strategy": "kid",
                        "disable_jwk_security": True,
                    }
                },
            )
        )
        auth = load(self, raw).config.endpoints[0].auth
        self.assertEqual(auth.local_keys.find("k1").kid, "k1")
        self.assertEqual(auth.cache_duration, 60.0)
        self.assertEqual(auth.failed_jwk_key_cooldown, 30.0)
        self.assertEqual(auth.audience, ("bus", "fleet"))
        self.assertEqual(auth.leeway, 60.0)
        self.assertEqual(auth.roles, ("ops",))
        self.assertTrue(auth.roles_key_is_nested)
        self.assertEqual(auth.scopes_matcher, "all")
        self.assertEqual(auth.propagate_claims, (("sub", "X-Sub"),))
        self.assertEqual(auth.auth_header_name, "X-Token")
        self.assertTrue(auth.operation_debug)

    def test_alg_required_and_known(self):
        """alg is required; none and unknown names are errors."""
        self.assertIn(
            (
                "error",
                V + ".alg",
                "missing required key (one of EdDSA, ES256, ES384, ES512,"
                " RS256, RS384, RS512, PS256, PS384, PS512, HS256, HS384,"
                " HS512)",
            ),
            problems(with_validator(jwk_url=URL)),
        )
        for alg in ("none", "ES256K", "es256"):
            found = problems(with_validator(alg=alg, jwk_url=URL))
            self.assertEqual(
                [(p[0], p[1]) for p in found], [("error", V + ".alg")]
            )

    def test_http_jwk_url(self):
        """http jwk_url without disable_jwk_security is an error (KrakenD
        starts and answers 401); with it, it is accepted."""
        found = problems(with_validator(alg="ES256", jwk_url="http://c/jwks"))
        self.assertEqual(found[0][:2], ("error", V + ".jwk_url"))
        self.assertIn("must be https://", found[0][2])
        load(
            self,
            with_validator(
                alg="ES256", jwk_url="http://c/j", disable_jwk_security=True
            ),
        )

    def test_https_with_insecure_flag(self):
        """disable_jwk_security with https warns that TLS stays verified."""
        found = problems(
            with_validator(alg="ES256", jwk_url=URL, disable_jwk_security=True)
        )
        self.assertEqual(found[0][:2], ("warning", V + ".jwk_url"))

    def test_key_source(self):
        """Neither or both of jwk_url and jwk_local_path are errors; a URL
        must be http(s)."""
        path = self.jwks_file(public_jwk(ec_key(), "k1"))
        self.assertEqual(
            problems(with_validator(alg="ES256")),
            [("error", V, "missing jwk_url or jwk_local_path")],
        )
        both = problems(
            with_validator(alg="ES256", jwk_url=URL, jwk_local_path=path)
        )
        self.assertEqual(both[0][:2], ("error", V + ".jwk_local_path"))
        ftp = problems(with_validator(alg="ES256", jwk_url="ftp://c/j"))
        self.assertEqual(ftp[0][:2], ("error", V + ".jwk_url"))

    def test_local_jwks_checked_at_load(self):
        """An unreadable JWK file, or one without a key for alg, is an error
        naming jwk_local_path."""
        missing = problems(
            with_validator(alg="ES256", jwk_local_path="/nonexistent.json")
        )
        self.assertEqual(missing[0][:2], ("error", V + ".jwk_local_path"))
        path = self.jwks_file(public_jwk(rsa_key(), "k1"))
        found = problems(with_validator(alg="HS256", jwk_local_path=path))
        self.assertEqual(found[0][:2], ("error", V + ".jwk_local_path"))
        self.assertIn("kty 'RSA' does not fit HS256", found[0][2])

    def test_bad_values(self):
        """Bad values are errors at their own paths."""
        cases = [
            ({"scopes_matcher": "some"}, ".scopes_matcher"),
            ({"propagate_claims": [["sub"]]}, ".propagate_claims[0]"),
            (
                {"propagate_claims": [["sub", "bad header"]]},
                ".propagate_claims[0][1]",
            ),
            ({"cache_duration": 0}, ".cache_duration"),
            ({"cache_duration": "soon"}, ".cache_duration"),
            ({"leeway": 5}, ".leeway"),
            ({"key_identify_strategy": "x5t"}, ".key_identify_strategy"),
            ({"audience": [1]}, ".audience[0]"),
            ({"roles_key_is_nested": "maybe"}, ".roles_key_is_nested"),
        ]
        for options, where in cases:
            found = problems(
                with_validator(alg="ES256", jwk_url=URL, **options)
            )
            self.assertEqual(
                [p[:2] for p in found if p[0] == "error"],
                [("error", V + where)],
                options,
            )

    def test_dashed_v2_names(self):
        """jwk-url and propagate-claims are read, each with a warning."""
        raw = with_validator(
            **{
                "alg": "ES256",
                "jwk-url": URL,
                "propagate-claims": [["sub", "X-Sub"]],
            }
        )
        result = parse_config(raw)
        auth = result.config.endpoints[0].auth
        self.assertEqual(auth.jwk_url, URL)
        self.assertEqual(auth.propagate_claims, (("sub", "X-Sub"),))
        paths = [(p.severity, p.path) for p in result.warnings]
        self.assertIn(("warning", V + ".jwk-url"), paths)
        self.assertIn(("warning", V + ".propagate-claims"), paths)

    def test_unknown_and_unsupported(self):
        """Unknown keys and KrakenD options busgw lacks are warnings."""
        found = problems(
            with_validator(
                alg="ES256", jwk_url=URL, jwk_fingerprints=["x"], colour="red"
            )
        )
        self.assertEqual(
            [p[:2] for p in found],
            [("warning", V + ".jwk_fingerprints"), ("warning", V + ".colour")],
        )

    def test_propagated_header_not_forwarded(self):
        """A propagated header missing from input_headers draws a warning,
        since (as in KrakenD) it would not reach the backends."""
        found = problems(
            with_validator(
                alg="ES256", jwk_url=URL, propagate_claims=[["sub", "X-Sub"]]
            )
        )
        self.assertEqual(
            found[0][:2], ("warning", "endpoints[0].input_headers")
        )


class ServiceDefaultTests(SynchronousTestCase):
    def raw(self, *endpoints):
        return svc(
            *endpoints,
            extra_config={
                "busgw/auth": {"validator": {"alg": "ES256", "jwk_url": URL}}
            },
        )

    def test_default_protects_every_endpoint(self):
        """The service validator applies to endpoints without their own."""
        config = load(self, self.raw(ep("/a"), ep("/b"))).config
        self.assertEqual([e.auth.jwk_url for e in config.endpoints], [URL, URL])

    def test_endpoint_own_validator_wins(self):
        """An endpoint's auth/validator replaces the default entirely."""
        own = {"alg": "EdDSA", "jwk_url": URL + "?own", "roles": ["x"]}
        config = load(
            self, self.raw(ep("/a", extra_config={"auth/validator": own}))
        ).config
        self.assertEqual(config.endpoints[0].auth.alg, "EdDSA")
        self.assertEqual(config.endpoints[0].auth.roles, ("x",))

    def test_public_opt_out(self):
        """busgw/auth.public: true leaves an endpoint unprotected."""
        public = ep("/open", extra_config={"busgw/auth": {"public": True}})
        config = load(self, self.raw(ep("/a"), public)).config
        self.assertIsNotNone(config.endpoints[0].auth)
        self.assertIsNone(config.endpoints[1].auth)

    def test_public_with_validator(self):
        """An endpoint both public and with its own validator is an error."""
        both = ep(
            "/a",
            extra_config={
                "busgw/auth": {"public": True},
                "auth/validator": {"alg": "ES256", "jwk_url": URL},
            },
        )
        found = problems(self.raw(both))
        self.assertEqual(
            found[0][:2],
            ("error", "endpoints[0].extra_config.busgw/auth.public"),
        )

    def test_no_default(self):
        """Without busgw/auth, endpoints are public as in KrakenD."""
        self.assertIsNone(load(self, svc(ep("/a"))).config.endpoints[0].auth)

    def test_default_errors(self):
        """A bad service validator is reported at its own path; unknown
        busgw/auth keys are warnings."""
        raw = svc(
            ep("/a"),
            extra_config={"busgw/auth": {"validator": {"alg": "x"}, "y": 1}},
        )
        found = problems(raw)
        self.assertIn(
            ("error", "extra_config.busgw/auth.validator.alg"),
            [p[:2] for p in found],
        )
        self.assertIn(
            ("warning", "extra_config.busgw/auth.y"), [p[:2] for p in found]
        )

    def test_validator_in_endpoint_busgw_auth(self):
        """A validator under an endpoint's busgw/auth is ignored, with a
        warning naming the right place."""
        raw = self.raw(ep("/a", extra_config={"busgw/auth": {"validator": {}}}))
        found = problems(raw)
        self.assertEqual(
            found,
            [
                (
                    "warning",
                    "endpoints[0].extra_config.busgw/auth.validator",
                    "an endpoint's validator goes in"
                    ' extra_config."auth/validator" (ignored here)',
                )
            ],
        )

    def test_old_namespace_name(self):
        """KrakenD's long validator namespace name is read too."""
        raw = svc(
            ep(
                "/a",
                extra_config={
                    "github.com/devopsfaith/krakend-jose/validator": {
                        "alg": "RS256",
                        "jwk_url": URL,
                    }
                },
            )
        )
        self.assertEqual(load(self, raw).config.endpoints[0].auth.alg, "RS256")
