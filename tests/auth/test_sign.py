"""busgw keys generate and busgw token: file modes, refusing to overwrite,
and tokens the validator accepts."""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat

from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from busd.auth.config import ValidatorConfig
from busd.auth.guard import JWTGuard
from busd.auth.keys import LocalKeys, load_jwks_file
from busd.auth.sign import (
    alg_for_key,
    load_private_key,
    make_token,
    write_keypair,
)
from busd.auth.verify import parse_token
from busd.cli import main
from tests.auth._support import preq


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exit:
            code = exit.code
    return code, out.getvalue(), err.getvalue()


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class KeysGenerateTests(SynchronousTestCase):
    def setUp(self):
        self.out = self.mktemp()

    def test_writes_private_and_public(self):
        """ES256 and EdDSA: a 0600 PKCS8 PEM and a JWKS the validator loads,
        holding kid, alg and use=sig but no private part."""
        for alg in ("ES256", "EdDSA"):
            kid = f"central-{alg.lower()}"
            code, out, err = run(
                "keys",
                "generate",
                "--alg",
                alg,
                "--kid",
                kid,
                "--out",
                self.out,
            )
            self.assertEqual(code, 0, err)
            key_path = os.path.join(self.out, f"{kid}.key.pem")
            jwks_path = os.path.join(self.out, f"{kid}.jwks.json")
            self.assertEqual(mode(key_path), 0o600)
            with open(key_path, "rb") as handle:
                self.assertTrue(
                    handle.read().startswith(b"-----BEGIN PRIVATE KEY-----")
                )
            self.assertEqual(alg_for_key(load_private_key(key_path)), alg)
            with open(jwks_path) as handle:
                (jwk,) = json.load(handle)["keys"]
            self.assertEqual(
                (jwk["kid"], jwk["alg"], jwk["use"]), (kid, alg, "sig")
            )
            self.assertNotIn("d", jwk)
            self.assertEqual(load_jwks_file(jwks_path, alg).find(kid).kid, kid)
            self.assertIn(key_path, out)

    def test_private_key_mode_despite_umask(self):
        """The key is 0600 even under a permissive umask."""
        old = os.umask(0)
        try:
            key_path, _ = write_keypair(self.out, "k", "ES256")
        finally:
            os.umask(old)
        self.assertEqual(mode(key_path), 0o600)

    def test_refuses_overwrite(self):
        """Existing files are kept unless --force; with --force the new key
        is 0600 even where the old file was world-readable."""
        run("keys", "generate", "--kid", "k", "--out", self.out)
        key_path = os.path.join(self.out, "k.key.pem")
        with open(key_path, "rb") as handle:
            first = handle.read()
        code, _, err = run("keys", "generate", "--kid", "k", "--out", self.out)
        self.assertEqual(code, 1)
        self.assertIn("--force", err)
        with open(key_path, "rb") as handle:
            self.assertEqual(handle.read(), first)
        os.chmod(key_path, 0o644)
        code, _, err = run(
            "keys", "generate", "--kid", "k", "--out", self.out, "--force"
        )
        self.assertEqual(code, 0, err)
        self.assertEqual(mode(key_path), 0o600)
        with open(key_path, "rb") as handle:
            self.assertNotEqual(handle.read(), first)
        self.assertEqual(
            sorted(os.listdir(self.out)), ["k.jwks.json", "k.key.pem"]
        )

    def test_bad_kid_and_alg(self):
        """A kid that is not a plain file name, or an alg other than ES256
        and EdDSA, is refused."""
        code, _, err = run(
            "keys", "generate", "--kid", "../x", "--out", self.out
        )
        self.assertEqual(code, 1)
        self.assertIn("invalid kid", err)
        code, _, _ = run(
            "keys",
            "generate",
            "--alg",
            "RS256",
            "--kid",
            "k",
            "--out",
            self.out,
        )
        self.assertEqual(code, 2)
        self.assertFalse(os.path.exists(os.path.join(self.out, "k.key.pem")))


class TokenTests(SynchronousTestCase):
    def setUp(self):
        self.out = self.mktemp()
        self.key_path, self.jwks_path = write_keypair(self.out, "c1", "ES256")

    def run_token(self, *extra, key=None):
        """``busgw token`` with this key (or ``key``), kid c1 and fixed
        aud/iss/sub, then ``extra``: (exit code, stdout, stderr)."""
        return run(
            "token",
            "--key",
            key or self.key_path,
            "--kid",
            "c1",
            "--aud",
            "bus-1",
            "--iss",
            "central",
            "--sub",
            "ops",
            *extra,
        )

    def token(self, *extra):
        code, out, err = self.run_token(*extra)
        self.assertEqual(code, 0, err)
        return out.strip()

    def test_round_trip(self):
        """A token from the CLI passes a validator holding the JWKS."""
        raw = self.token(
            "--roles",
            "fleet-reader,fleet-admin",
            "--ttl",
            "2m",
            "--claim",
            "level=3",
            "--claim",
            "bus=FW-0042",
        )
        claims = parse_token(raw).claims
        self.assertEqual(claims["exp"] - claims["iat"], 120)
        self.assertEqual(claims["roles"], ["fleet-reader", "fleet-admin"])
        self.assertEqual((claims["level"], claims["bus"]), (3, "FW-0042"))
        self.assertEqual(
            parse_token(raw).header, {"alg": "ES256", "kid": "c1", "typ": "JWT"}
        )
        cfg = ValidatorConfig(
            alg="ES256",
            jwk_local_path=self.jwks_path,
            local_keys=load_jwks_file(self.jwks_path, "ES256"),
            issuer="central",
            audience=("bus-1",),
            roles=("fleet-admin",),
        )
        clock = Clock()
        clock.advance(claims["iat"])
        guard = JWTGuard(cfg, LocalKeys(cfg.local_keys), clock)
        self.successResultOf(maybeDeferred(guard, None, preq(raw)))
        clock.advance(125 + 5)
        self.failureResultOf(maybeDeferred(guard, None, preq(raw)))

    def test_reserved_claim(self):
        """--claim cannot replace a claim set by another option."""
        code, _, err = self.run_token("--claim", "exp=99999999999")
        self.assertEqual(code, 1)
        self.assertIn("exp", err)

    def test_bad_key(self):
        """A missing or non-key file is refused with a message."""
        code, _, err = self.run_token(key=self.jwks_path)
        self.assertEqual(code, 1)
        self.assertIn("not an unencrypted PEM private key", err)

    def test_make_token(self):
        """make_token (for the central) sets iat/exp from now and a jti."""
        key = load_private_key(self.key_path)
        raw = make_token(
            key,
            "c1",
            issuer="c",
            subject="s",
            audience=["a", "b"],
            now=1000.5,
            ttl=30,
        )
        claims = parse_token(raw).claims
        self.assertEqual(
            (claims["iat"], claims["exp"], claims["aud"]),
            (1000, 1030, ["a", "b"]),
        )
        self.assertTrue(claims["jti"])
