"""Fuzzing the token parser and validator with hypothesis: whatever a
stranger sends, the guard answers 401 or 403 (or lets a truly valid token
through), never raises anything else and never logs a failure."""

from __future__ import annotations

import json

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from busd.auth.config import ValidatorConfig
from busd.auth.guard import make_jwt_guard
from busd.auth.keys import JWKSError, KeySet, parse_jwks
from busd.errors import GatewayError
from tests.auth._support import (
    NOW,
    b64,
    b64json,
    ec_key,
    es256_signer,
    guard,
    hand_token,
    jwks,
    preq,
    public_jwk,
    pyjwt_token,
    validator,
)

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
CONFIG = attrs.evolve(
    validator("ES256", jwks(public_jwk(ec_key(), "k1"))),
    roles=("fleet-reader",),
    scopes_key="scope",
    scopes=("read",),
    propagate_claims=(("sub", "X-Sub"), ("ctx.bus", "X-Bus")),
)
VALID = pyjwt_token(ec_key(), "ES256", scope="read")
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
claim_sets = st.fixed_dictionaries(
    {},
    optional={
        name: json_values
        for name in (
            "iss",
            "aud",
            "exp",
            "nbf",
            "iat",
            "sub",
            "roles",
            "scope",
            "ctx",
        )
    },
)


@st.composite
def mutated(draw):
    """A valid token with a few characters replaced, removed or added."""
    token = list(VALID)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["replace", "delete", "insert"]))
        index = draw(st.integers(0, len(token) - 1))
        char = draw(st.characters(codec="utf-8"))
        if kind == "replace":
            token[index] = char
        elif kind == "delete":
            del token[index]
        else:
            token.insert(index, char)
        if not token:
            token = ["."]
    return "".join(token)


class GuardFuzz(SynchronousTestCase):
    def setUp(self):
        self.events = EventLoggingObserver.createWithCleanup(
            self, globalLogPublisher
        )
        self.guard = guard(CONFIG)

    def tearDown(self):
        bad = [
            e
            for e in self.events
            if "log_failure" in e
            or e["log_level"] in (LogLevel.error, LogLevel.critical)
        ]
        self.assertEqual(bad, [])

    def outcome(self, request, valid_ok=False):
        d = maybeDeferred(self.guard, None, request)
        results = []
        d.addBoth(results.append)
        self.assertEqual(len(results), 1, "the guard must answer at once")
        result = results[0]
        if valid_ok and not hasattr(result, "value"):
            return
        self.assertTrue(hasattr(result, "value"), "a forged token was accepted")
        if not isinstance(result.value, GatewayError):
            result.raiseException()
        self.assertIn(result.value.status, (401, 403))

    def test_baseline(self):
        """The token being mutated is valid, so mutations are meaningful."""
        self.successResultOf(maybeDeferred(self.guard, None, preq(VALID)))

    @FUZZ
    @given(st.text(max_size=300))
    def test_random_text(self, text):
        """Random text as the Authorization header."""
        self.outcome(preq(text))

    @FUZZ
    @given(st.binary(max_size=300))
    def test_random_bytes(self, data):
        """Random bytes (as twisted.web hands them, latin-1) as the token,
        in the header and in the cookie."""
        text = data.decode("latin-1")
        self.outcome(preq(text, scheme=""))
        self.outcome(preq(None, ("Cookie", "access_token=" + text)))

    @FUZZ
    @given(mutated())
    def test_mutated_tokens(self, token):
        """A valid token with characters changed never passes."""
        if token != VALID:
            self.outcome(preq(token))

    @FUZZ
    @given(
        st.lists(
            st.text(alphabet="AQgw-_ABCxyz01=", max_size=40),
            min_size=1,
            max_size=6,
        )
    )
    def test_random_segments(self, parts):
        """Dot-joined base64url-looking segments."""
        self.outcome(preq(".".join(parts)))

    @FUZZ
    @given(json_values, json_values)
    def test_random_json_segments(self, header, payload):
        """Any JSON as header and payload, with a zero signature."""
        raw = f"{b64(json.dumps(header).encode())}.{b64json(payload)}"
        self.outcome(preq(raw + "." + b64(b"\x00" * 64)))

    @FUZZ
    @given(claim_sets, st.sampled_from(["k1", "k2", None]))
    def test_signed_random_claims(self, claims, kid):
        """Properly signed tokens with random claims: valid ones pass, the
        rest are refused with 401/403, and claims of any type are safe to
        propagate."""
        header = {"alg": "ES256"}
        if kid:
            header["kid"] = kid
        raw = hand_token(header, claims, es256_signer(ec_key()))
        self.outcome(preq(raw, ("X-Sub", "spoof")), valid_ok=True)


class JWKS(Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.body = b"{}"

    def render_GET(self, request):
        return self.body


class RemoteFuzz(SynchronousTestCase):
    @FUZZ
    @given(
        st.binary(max_size=200)
        | json_values.map(lambda v: json.dumps(v).encode())
    )
    def test_random_jwks_answers(self, body):
        """Whatever the key server answers, tokens get 401 and only a
        warning is logged."""
        events = []
        globalLogPublisher.addObserver(events.append)
        try:
            server = JWKS()
            server.body = body
            stub = StubTreq(server)
            clock = Clock()
            clock.advance(NOW)
            cfg = ValidatorConfig(alg="ES256", jwk_url="https://c.example/jwks")
            g = make_jwt_guard(cfg, client=stub, clock=clock)
            d = maybeDeferred(g, None, preq(VALID))
            stub.flush()
            self.assertEqual(
                self.failureResultOf(d, GatewayError).value.status, 401
            )
            self.assertEqual(clock.getDelayedCalls(), [])
        finally:
            globalLogPublisher.removeObserver(events.append)
        self.assertFalse([e for e in events if "log_failure" in e])

    @FUZZ
    @given(json_values)
    def test_parse_jwks(self, data):
        """parse_jwks on any JSON returns a key set or raises JWKSError."""
        try:
            result = parse_jwks(data, "ES256")
        except JWKSError:
            return
        self.assertIsInstance(result, KeySet)
