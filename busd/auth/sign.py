"""Keys and tokens for the fleet: the central signs, buses verify.

``busgw keys generate`` writes a private key (PKCS8 PEM, mode 0600) that
stays with the central and the public JWK set that every bus gets;
``busgw token`` and the central's own requests sign with
:func:`make_token`. Nothing here reads a clock: callers pass ``now``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

__all__ = [
    "GENERATE_ALGS",
    "KID_PATTERN",
    "PrivateKey",
    "generate_key",
    "private_pem",
    "public_jwk",
    "public_jwks",
    "write_keypair",
    "load_private_key",
    "alg_for_key",
    "sign_claims",
    "make_token",
]

PrivateKey = Union[
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    rsa.RSAPrivateKey,
]
#: What ``busgw keys generate`` makes: small keys, fast on a Pi.
GENERATE_ALGS = ("ES256", "EdDSA")
#: A kid names files too: no path separators, no leading dot.
KID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
# Claims the token command sets from its own options.
_RESERVED = ("iss", "sub", "aud", "exp", "iat", "nbf", "jti", "roles")


def generate_key(alg: str) -> PrivateKey:
    """A new private key for ``alg`` (ES256: P-256, EdDSA: Ed25519)."""
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"cannot generate {alg!r} keys (want ES256 or EdDSA)")


def private_pem(key: PrivateKey) -> bytes:
    """``key`` as an unencrypted PKCS8 PEM (protected by its file mode)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def alg_for_key(key: Any) -> str:
    """The JWS ``alg`` a private key signs with."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        try:
            return _EC_ALGS[key.curve.name]
        except KeyError:
            raise ValueError(f"unsupported curve {key.curve.name}") from None
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return "EdDSA"
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    raise ValueError(f"unsupported key type {type(key).__name__}")


def public_jwk(key: PrivateKey, kid: str, **extra: Any) -> Dict[str, Any]:
    """The public JWK of private ``key`` with ``kid`` and any ``extra``
    members (``alg``, ``use``); never the private part."""
    public = key.public_key()
    jwk: Dict[str, Any]
    if isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    jwk["kid"] = kid
    jwk.update(extra)
    return jwk


def public_jwks(key: PrivateKey, kid: str) -> Dict[str, Any]:
    """The public JWK set of ``key``: one key with ``kid``, ``alg`` and
    ``use: sig``."""
    return {"keys": [public_jwk(key, kid, alg=alg_for_key(key), use="sig")]}


def write_keypair(
    out_dir: str, kid: str, alg: str, *, force: bool = False
) -> Tuple[str, str]:
    """Generate a key and write ``OUT/KID.key.pem`` (mode 0600, created
    with that mode) and ``OUT/KID.jwks.json``; returns both paths.

    Raises FileExistsError when either file exists and ``force`` is false
    (nothing is written then), ValueError for a bad ``kid`` or ``alg``.
    """
    if not KID_PATTERN.fullmatch(kid):
        raise ValueError(f"invalid kid {kid!r} (letters, digits, . _ -)")
    key = generate_key(alg)
    key_path = os.path.join(out_dir, f"{kid}.key.pem")
    jwks_path = os.path.join(out_dir, f"{kid}.jwks.json")
    if not force:
        for path in (key_path, jwks_path):
            if os.path.lexists(path):
                raise FileExistsError(
                    f"{path} exists (use --force to replace it)"
                )
    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    _write(key_path, private_pem(key), 0o600, force)
    body = json.dumps(public_jwks(key, kid), indent=2).encode() + b"\n"
    _write(jwks_path, body, 0o644, force)
    return key_path, jwks_path


def _write(path: str, data: bytes, mode: int, force: bool) -> None:
    """Write ``data`` to a file born with ``mode``: O_EXCL (never through
    a planted link), or a fresh temporary file renamed over the old one,
    so an old file's looser mode is never inherited."""
    if force:
        fd, tmp = tempfile.mkstemp(
            dir=os.path.dirname(path) or ".", prefix=".busgw-"
        )
    else:
        tmp = ""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if tmp:
            os.replace(tmp, path)
    except BaseException:
        if tmp:
            os.unlink(tmp)
        raise


def load_private_key(path: str) -> PrivateKey:
    """Read an unencrypted PEM private key; raises ValueError."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ValueError(
            f"{path} is not an unencrypted PEM private key"
        ) from None
    alg_for_key(key)
    return key  # type: ignore[return-value]  # alg_for_key checked the type


def sign_claims(
    key: PrivateKey,
    kid: str,
    claims: Mapping[str, Any],
    alg: Optional[str] = None,
) -> str:
    """A compact JWS of ``claims`` with header ``{alg, kid, typ: JWT}``."""
    return jwt.encode(
        dict(claims),
        key,
        algorithm=alg or alg_for_key(key),
        headers={"kid": kid},
    )


def make_token(
    key: PrivateKey,
    kid: str,
    *,
    issuer: str,
    subject: str,
    audience: Union[str, Sequence[str]],
    now: float,
    ttl: float = 60.0,
    roles: Sequence[str] = (),
    extra: Optional[Mapping[str, Any]] = None,
) -> str:
    """A short-lived token: ``iss``, ``sub``, ``aud``, ``iat`` = ``now``,
    ``exp`` = ``now + ttl``, a random ``jti``, ``roles`` when given, then
    ``extra`` claims (which may not replace those)."""
    clash = sorted(set(extra or ()) & set(_RESERVED))
    if clash:
        raise ValueError(f"claims set by options: {', '.join(clash)}")
    aud = audience if isinstance(audience, str) else list(audience)
    if not isinstance(aud, str) and len(aud) == 1:
        aud = aud[0]
    claims: Dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": aud,
        "iat": int(now),
        "exp": int(now + ttl),
        "jti": secrets.token_urlsafe(12),
    }
    if roles:
        claims["roles"] = list(roles)
    claims.update(extra or {})
    return sign_claims(key, kid, claims)
