"""The central's per-bus tokens: audience per bus, cached for half their
life, re-signed after that or when the clock goes back."""

from __future__ import annotations

import jwt
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from busd.auth.sign import generate_key
from busd.central.tokens import BusTokens
from busd.config._central import SigningConfig


class BusTokensTests(SynchronousTestCase):
    """BusTokens.token and authorization."""

    def setUp(self) -> None:
        self.key = generate_key("ES256")
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        config = SigningConfig(
            key="unused", kid="central-1", ttl=60.0, roles=("fleet-reader",)
        )
        self.tokens = BusTokens(config, self.key, self.clock)

    def claims(self, token: str, audience: str) -> dict:
        return jwt.decode(
            token,
            self.key.public_key(),  # type: ignore[arg-type]
            algorithms=["ES256"],
            audience=audience,
            options={"verify_exp": False, "verify_iat": False},
        )

    def test_audience_per_bus(self) -> None:
        """Each bus gets a token for its own audience, signed with the kid."""
        token = self.tokens.token("FW-1")
        claims = self.claims(token, "bus-FW-1")
        self.assertEqual(
            (claims["iss"], claims["sub"], claims["roles"]),
            ("central", "central", ["fleet-reader"]),
        )
        self.assertEqual(claims["exp"] - claims["iat"], 60)
        self.assertEqual(jwt.get_unverified_header(token)["kid"], "central-1")
        self.assertRaises(
            jwt.InvalidAudienceError, self.claims, self.tokens.token("FW-2"), "bus-FW-1"
        )

    def test_cached_for_half_the_ttl(self) -> None:
        """The same token is reused until half its life is gone."""
        first = self.tokens.token("FW-1")
        self.clock.advance(29)
        self.assertEqual(self.tokens.token("FW-1"), first)
        self.clock.advance(1)
        second = self.tokens.token("FW-1")
        self.assertNotEqual(second, first)
        self.assertEqual(self.tokens.authorization("FW-1"), b"Bearer " + second.encode())

    def test_clock_back(self) -> None:
        """A clock that went back (a Pi's at boot) gets a fresh token."""
        first = self.tokens.token("FW-1")
        self.clock.rightNow -= 100
        self.assertNotEqual(self.tokens.token("FW-1"), first)

    def test_forget(self) -> None:
        """Buses that left the fleet lose their cached tokens."""
        first = self.tokens.token("FW-1")
        kept = self.tokens.token("FW-2")
        self.tokens.forget({"FW-2"})
        self.assertEqual(self.tokens.token("FW-2"), kept)
        self.assertNotEqual(self.tokens.token("FW-1"), first)
