"""JWK sets: parsing them for one algorithm, and local key sets.

A validator is configured for exactly one ``alg``; :func:`parse_jwks` keeps
only the keys of a set that can verify that algorithm (the right ``kty``
and curve, a matching ``alg`` and ``use`` when the key names them, a
strong enough size), so a key of the wrong family can never be handed to
the signature check (no algorithm confusion through the key set either).

:class:`LocalKeys` serves a set read once at config load
(``jwk_local_path``); ``busd.auth.remote.RemoteKeys`` fetches ``jwk_url``.
"""

from __future__ import annotations

import json
from typing import Any, List, Mapping, Optional, Tuple

import attrs
from jwt import PyJWK
from jwt.algorithms import get_default_algorithms
from twisted.internet.defer import Deferred, fail, succeed

__all__ = [
    "ALGORITHMS",
    "Key",
    "KeySet",
    "KeyUnavailable",
    "JWKSError",
    "parse_jwks",
    "key_problem",
    "LocalKeys",
    "JWKS_MAX_BYTES",
]

#: The ``alg`` values KrakenD accepts, with the JWK ``kty`` each needs and,
#: for curves, the ``crv`` values that fit.
_FAMILY: Mapping[str, Tuple[str, Tuple[str, ...]]] = {
    "EdDSA": ("OKP", ("Ed25519", "Ed448")),
    "ES256": ("EC", ("P-256",)),
    "ES384": ("EC", ("P-384",)),
    "ES512": ("EC", ("P-521",)),
    "RS256": ("RSA", ()),
    "RS384": ("RSA", ()),
    "RS512": ("RSA", ()),
    "PS256": ("RSA", ()),
    "PS384": ("RSA", ()),
    "PS512": ("RSA", ()),
    "HS256": ("oct", ()),
    "HS384": ("oct", ()),
    "HS512": ("oct", ()),
}
ALGORITHMS: Tuple[str, ...] = tuple(_FAMILY)
#: A JWK set larger than this is refused.
JWKS_MAX_BYTES = 256 * 1024


class JWKSError(Exception):
    """A JWK set that cannot be used; the message holds no key material."""


class KeyUnavailable(Exception):
    """No key to check a token with: unknown ``kid``, or the set could not
    be loaded. The message is for logs (no key material)."""


@attrs.frozen
class Key:
    """One usable verification key; ``key`` is what pyjwt verifies with
    (never shown: an ``oct`` key is a secret)."""

    kid: Optional[str]
    kty: str
    alg: str
    key: Any = attrs.field(eq=False, repr=False)
    crv: Optional[str] = None


@attrs.frozen
class KeySet:
    """The keys of a JWK set usable with one algorithm, in set order."""

    alg: str
    keys: Tuple[Key, ...]

    def find(self, kid: Optional[str]) -> Optional[Key]:
        """The key for a token's ``kid``. A token without ``kid`` takes a
        key without one (as KrakenD), else the set's only key."""
        for key in self.keys:
            if key.kid == kid:
                return key
        if kid is None and len(self.keys) == 1:
            return self.keys[0]
        return None


def key_problem(jwk: Mapping[str, Any], alg: str) -> Optional[str]:
    """Why ``jwk`` cannot verify ``alg`` tokens, or None when it fits.

    The ``kty`` (and ``crv``) must be the algorithm's family: an RSA or EC
    public key is never used as an HMAC secret.
    """
    kty, curves = _FAMILY[alg]
    if jwk.get("kty") != kty:
        return f"kty {jwk.get('kty')!r} does not fit {alg} (want {kty!r})"
    if curves and jwk.get("crv") not in curves:
        return f"crv {jwk.get('crv')!r} does not fit {alg}"
    if "alg" in jwk and jwk["alg"] != alg:
        return f"the key is for alg {jwk['alg']!r}, not {alg}"
    if "use" in jwk and jwk["use"] != "sig":
        return f'use {jwk["use"]!r} is not "sig"'
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return 'key_ops does not list "verify"'
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        return "kid is not a string"
    return None


def parse_jwks(data: Any, alg: str) -> KeySet:
    """The keys of JWK set ``data`` (decoded JSON) usable with ``alg``.

    Raises :class:`JWKSError` when ``data`` is not a JWK set or none of its
    keys fits; keys that do not fit are skipped.
    """
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise JWKSError('not a JWK set (want {"keys": [...]})')
    keys: List[Key] = []
    skipped: List[str] = []
    algorithm = get_default_algorithms()[alg]
    for index, jwk in enumerate(data["keys"]):
        where = f"keys[{index}]"
        if not isinstance(jwk, dict):
            skipped.append(f"{where}: not an object")
            continue
        if isinstance(jwk.get("kid"), str):
            where += f" (kid {jwk['kid']!r})"
        problem = key_problem(jwk, alg)
        if problem is None:
            try:
                built = PyJWK(jwk, alg).key
            except Exception:
                # pyjwt's message may quote the whole JWK, secret included.
                problem = "invalid key parameters"
            else:
                problem = algorithm.check_key_length(built) and "key too short"
        if problem:
            skipped.append(f"{where}: {problem}")
            continue
        keys.append(
            Key(
                kid=jwk.get("kid"),
                kty=jwk["kty"],
                alg=alg,
                key=built,
                crv=jwk.get("crv"),
            )
        )
    if not keys:
        why = "; ".join(skipped) if skipped else "the set is empty"
        raise JWKSError(f"no key usable with {alg} ({why})")
    return KeySet(alg=alg, keys=tuple(keys))


def load_jwks_file(path: str, alg: str) -> KeySet:
    """Read and parse the JWK set file at ``path`` (at config load, before
    the reactor runs). Raises :class:`JWKSError`."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(JWKS_MAX_BYTES + 1)
    except OSError as exc:
        raise JWKSError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > JWKS_MAX_BYTES:
        raise JWKSError(f"{path} is larger than {JWKS_MAX_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise JWKSError(f"{path} is not JSON") from None
    return parse_jwks(data, alg)


class LocalKeys:
    """Keys read at config load; they never change."""

    def __init__(self, keys: KeySet):
        self._keys = keys

    def lookup(self, kid: Optional[str]) -> "Deferred[Key]":
        """The key for ``kid``, or a :class:`KeyUnavailable` failure."""
        key = self._keys.find(kid)
        if key is None:
            return fail(KeyUnavailable(f"unknown kid {kid!r}"))
        return succeed(key)
