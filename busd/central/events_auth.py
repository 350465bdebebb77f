"""Who sent an event: the bus's token checked against that bus's own key.

A bus signs its token with its private key (``iss`` = ``sub`` = its id,
``aud`` the central's events audience, a short ``exp``). The central reads
the token's claims *without trusting them* only to learn which bus it
claims to be, takes that bus's public key from the fleet (``key``: a JWK
set file such as the bus's ``bus.jwks.json``, or a PEM public key), and
then checks everything: the algorithm is the key's own (``none`` and HMAC
never), the signature, ``aud``, ``exp`` (required), ``nbf``/``iat`` with
``leeway``, and ``sub`` == ``iss``.

:class:`KeyCache` reads key files; it blocks (stat, read), so the ingest
part runs it on its worker thread. Parsed keys are cached per
(path, mtime, size): replacing a bus's key file takes effect at the next
event without a reload.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

import attrs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from busd.auth.keys import JWKS_MAX_BYTES, JWKSError, Key, parse_jwks
from busd.auth.verify import (
    Token,
    TokenError,
    check_alg,
    check_claims,
    check_key,
    check_signature,
)

__all__ = ["BusKeys", "KeyCache", "KeyFileError", "verify_bus_token"]

_CURVES = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_CURVE_OF = {alg: crv for crv, alg in _CURVES.items()}
_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


class KeyFileError(Exception):
    """A bus's key file cannot be used; the message says why (no key
    material in it)."""


@attrs.frozen
class BusKeys:
    """The public keys of one bus, each bound to its one algorithm."""

    keys: Tuple[Key, ...]

    def find(self, kid: Optional[str]) -> Optional[Key]:
        """The key named ``kid``; a set of one key without a kid (a PEM)
        answers any kid, and a token without kid takes a single key."""
        for key in self.keys:
            if key.kid is not None and key.kid == kid:
                return key
        if len(self.keys) == 1 and (kid is None or self.keys[0].kid is None):
            return self.keys[0]
        return None


class KeyCache:
    """Parsed key files by path, re-read when the file changes."""

    def __init__(self) -> None:
        self._cache: Dict[str, Tuple[Tuple[int, int], BusKeys]] = {}

    def get(self, path: str) -> BusKeys:
        """The keys in ``path`` (blocking); raises :class:`KeyFileError`."""
        try:
            st = os.stat(path)
        except OSError as exc:
            raise KeyFileError(f"cannot read {path}: {exc.strerror or exc}") from None
        stamp = (st.st_mtime_ns, st.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        keys = load_keys(path)
        self._cache[path] = (stamp, keys)
        return keys

    def forget(self, keep: Any) -> None:
        """Drop the cache of files no bus names any more."""
        for path in [p for p in self._cache if p not in keep]:
            del self._cache[path]


def load_keys(path: str) -> BusKeys:
    """Read a JWK set or PEM public key file; raises :class:`KeyFileError`."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(JWKS_MAX_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > JWKS_MAX_BYTES:
        raise KeyFileError(f"{path} is larger than {JWKS_MAX_BYTES} bytes")
    if raw.lstrip().startswith(b"{"):
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise KeyFileError(f"{path} is not JSON") from None
        try:
            return _from_jwks(data)
        except JWKSError as exc:
            raise KeyFileError(f"{path}: {exc}") from None
    return _from_pem(raw, path)


def _from_jwks(data: Any) -> BusKeys:
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise JWKSError('not a JWK set (want {"keys": [...]})')
    keys: List[Key] = []
    problems: List[str] = []
    for index, jwk in enumerate(data["keys"]):
        alg = _jwk_alg(jwk)
        if alg is None:
            problems.append(f"keys[{index}]: not a public signing key")
            continue
        try:
            keys.extend(parse_jwks({"keys": [jwk]}, alg).keys)
        except JWKSError as exc:
            problems.append(f"keys[{index}]: {exc}")
    if not keys:
        raise JWKSError("; ".join(problems) or "the set is empty")
    return BusKeys(tuple(keys))


def _jwk_alg(jwk: Any) -> Optional[str]:
    """The algorithm a JWK verifies: its ``alg``, else its family's
    usual one. Symmetric (``oct``) keys are never a bus's public key."""
    if not isinstance(jwk, Mapping) or jwk.get("kty") == "oct":
        return None
    alg = jwk.get("alg")
    if isinstance(alg, str):
        return None if alg.startswith("HS") or alg.lower() == "none" else alg
    kty = jwk.get("kty")
    if kty == "EC":
        return _CURVES.get(jwk.get("crv", ""))
    if kty == "OKP":
        return "EdDSA"
    if kty == "RSA":
        return "RS256"
    return None


def _from_pem(raw: bytes, path: str) -> BusKeys:
    try:
        public = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError):
        raise KeyFileError(
            f"{path} is neither a JWK set nor a PEM public key"
        ) from None
    crv: Optional[str] = None
    if isinstance(public, ec.EllipticCurvePublicKey):
        alg = _EC_ALGS.get(public.curve.name, "")
        kty, crv = "EC", _CURVE_OF.get(alg)
    elif isinstance(public, ed25519.Ed25519PublicKey):
        alg, kty, crv = "EdDSA", "OKP", "Ed25519"
    elif isinstance(public, ed448.Ed448PublicKey):
        alg, kty, crv = "EdDSA", "OKP", "Ed448"
    elif isinstance(public, rsa.RSAPublicKey):
        if public.key_size < 2048:
            raise KeyFileError(f"{path}: RSA key shorter than 2048 bits")
        alg, kty = "RS256", "RSA"
    else:
        alg = ""
    if not alg:
        raise KeyFileError(f"{path}: unsupported key type")
    return BusKeys((Key(kid=None, kty=kty, alg=alg, key=public, crv=crv),))


def verify_bus_token(
    token: Token,
    keys: BusKeys,
    *,
    now: float,
    leeway: float,
    audience: str,
) -> None:
    """Check ``token`` (claimed by bus ``token.claims['iss']``) with that
    bus's ``keys``; raises :class:`TokenError` saying why."""
    key = keys.find(token.kid)
    if key is None:
        raise TokenError(f"unknown kid {token.kid!r} for this bus")
    check_alg(token.header, key.alg)  # the key's own alg; never "none"
    check_key(key, key.alg)
    check_signature(token, key, key.alg)
    claims = token.claims
    if "exp" not in claims:
        raise TokenError("the token has no exp")
    check_claims(claims, now=now, leeway=leeway, audience=[audience])
    if claims.get("sub") != claims.get("iss"):
        raise TokenError("sub is not the sending bus")
