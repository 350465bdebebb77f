"""Keys, JWK sets, tokens (from pyjwt and assembled by hand) and guards
for the auth tests."""

from __future__ import annotations

import base64
import functools
import json
from typing import Any, Dict, Mapping, Optional

import jwt
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from twisted.internet.task import Clock

from busd.auth.sign import public_jwk  # noqa: F401 (re-exported for the tests)
from busd.auth.config import ValidatorConfig
from busd.auth.guard import JWTGuard
from busd.auth.keys import LocalKeys, parse_jwks
from busd.pipeline.types import ProxyRequest

NOW = 1_750_000_000.0
ISS = "https://central.example"
AUD = "bus-FW-0042"
SECRET = b"s" * 32


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(obj: Any) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


@functools.lru_cache(maxsize=None)
def ec_key(name: str = "ec") -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.lru_cache(maxsize=None)
def rsa_key(name: str = "rsa") -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.lru_cache(maxsize=None)
def ed_key(name: str = "ed") -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def oct_jwk(secret: bytes, kid: str) -> Dict[str, Any]:
    return {"kty": "oct", "k": b64(secret), "kid": kid}


def public_pem(key: Any) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def claims(**over: Any) -> Dict[str, Any]:
    """Valid claims at NOW for ISS/AUD, with ``over`` applied (None drops)."""
    base: Dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "sub": "central",
        "iat": int(NOW),
        "exp": int(NOW) + 60,
        "roles": ["fleet-reader"],
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def pyjwt_token(
    key: Any, alg: str, kid: Optional[str] = "k1", **over: Any
) -> str:
    """A token made by pyjwt."""
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**over), key, algorithm=alg, headers=headers)


def hand_token(
    header: Mapping[str, Any], payload: Mapping[str, Any], signer: Any
) -> str:
    """A token assembled from the JWS spec: base64url(header) "."
    base64url(payload) "." base64url(signer(signing input))."""
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    return f"{signing_input}.{b64(signer(signing_input.encode('ascii')))}"


def es256_signer(key: ec.EllipticCurvePrivateKey) -> Any:
    """ES256 with cryptography: DER from sign(), turned into raw r || s."""

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def rs256_signer(key: rsa.RSAPrivateKey) -> Any:
    return lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def eddsa_signer(key: ed25519.Ed25519PrivateKey) -> Any:
    return key.sign


def hs256_signer(secret: bytes) -> Any:
    def sign(data: bytes) -> bytes:
        mac = hmac.HMAC(secret, hashes.SHA256())
        mac.update(data)
        return mac.finalize()

    return sign


def validator(
    alg: str, jwks: Mapping[str, Any], **over: Any
) -> ValidatorConfig:
    """A ValidatorConfig with local keys ``jwks``, ISS and AUD."""
    options: Dict[str, Any] = {
        "alg": alg,
        "jwk_local_path": "keys.json",
        "local_keys": parse_jwks(jwks, alg),
        "issuer": ISS,
        "audience": (AUD,),
    }
    options.update(over)
    return ValidatorConfig(**options)


def guard(
    cfg: ValidatorConfig, clock: Optional[Clock] = None, **kw: Any
) -> JWTGuard:
    """A guard over ``cfg``'s local keys; the clock reads NOW unless given."""
    if clock is None:
        clock = Clock()
        clock.advance(NOW)
    assert cfg.local_keys is not None
    return JWTGuard(
        cfg, LocalKeys(cfg.local_keys), clock, endpoint="GET /t", **kw
    )


def preq(
    token: Optional[str] = None, *headers: tuple, scheme: str = "Bearer "
) -> ProxyRequest:
    """A ProxyRequest carrying ``token`` in Authorization (and ``headers``)."""
    pairs = list(headers)
    if token is not None:
        pairs.insert(0, ("Authorization", scheme + token))
    return ProxyRequest(method="GET", path="/t", headers=tuple(pairs))


def jwks(*keys: Mapping[str, Any]) -> Dict[str, Any]:
    return {"keys": [dict(k) for k in keys]}
