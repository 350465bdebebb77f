"""Checking one JWS compact token, step by step, each step refusing alone.

The order is the one that does the least work for a stranger's bytes:
size (:data:`MAX_TOKEN_BYTES`) and shape first (:func:`parse_token`:
three base64url segments, JSON objects, no duplicate names), then the
header's ``alg`` against the one configured (:func:`check_alg`, before
any key is looked up), then the key's family (:func:`check_key`), the
signature with pyjwt (:func:`check_signature`), and the registered claims
(:func:`check_claims`). Roles and scopes (:func:`check_access`) refuse
with :class:`Forbidden` (403), everything else with :class:`TokenError`
(401). Messages are for logs: they never quote the token or a key.
"""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple

import attrs
from jwt import PyJWS

from busd.auth.keys import Key, key_problem

__all__ = [
    "MAX_TOKEN_BYTES",
    "TokenError",
    "Forbidden",
    "Token",
    "parse_token",
    "check_alg",
    "check_key",
    "check_signature",
    "check_claims",
    "check_access",
    "claim",
    "claim_text",
]

#: Tokens longer than this are refused before anything is decoded.
MAX_TOKEN_BYTES = 8 * 1024
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_MISSING = object()


class TokenError(Exception):
    """The token is missing, malformed or invalid: answer 401."""


class Forbidden(Exception):
    """The token is valid but lacks a role or scope: answer 403."""


@attrs.frozen
class Token:
    """A token whose shape is valid; nothing about it is trusted yet."""

    raw: str = attrs.field(repr=False)
    header: Mapping[str, Any]
    claims: Mapping[str, Any]

    @property
    def kid(self) -> Optional[str]:
        return self.header.get("kid")


def parse_token(raw: str) -> Token:
    """Split and decode ``raw``; raises :class:`TokenError` for a token
    over 8 KiB, not three segments, non-canonical base64url, or a header
    or payload that is not a JSON object."""
    if len(raw) > MAX_TOKEN_BYTES:
        raise TokenError(f"token larger than {MAX_TOKEN_BYTES} bytes")
    if not raw.isascii():
        raise TokenError("token is not ASCII")
    parts = raw.split(".")
    if len(parts) != 3:
        raise TokenError(f"token has {len(parts)} segment(s), want 3")
    names = ("header", "payload", "signature")
    for name, part in zip(names, parts):
        if not _SEGMENT.fullmatch(part):
            raise TokenError(f"{name} is not base64url")
    header = _json_object(_b64decode(parts[0], "header"), "header")
    claims = _json_object(_b64decode(parts[1], "payload"), "payload")
    _b64decode(parts[2], "signature")
    if not isinstance(header.get("alg"), str):
        raise TokenError("header has no alg")
    if "kid" in header and not isinstance(header["kid"], str):
        raise TokenError("kid is not a string")
    if "crit" in header or "b64" in header:
        # No JWS extension is understood, so none may be critical (RFC 7515
        # 4.1.11); b64 (RFC 7797) changes what is signed.
        raise TokenError("header uses JWS extensions (crit/b64)")
    return Token(raw=raw, header=header, claims=claims)


def _b64decode(part: str, name: str) -> bytes:
    if len(part) % 4 == 1:
        raise TokenError(f"{name} is not base64url")
    data = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    # One token, one encoding: unused trailing bits must be zero.
    if base64.urlsafe_b64encode(data).rstrip(b"=") != part.encode("ascii"):
        raise TokenError(f"{name} is not canonical base64url")
    return data


def _json_object(data: bytes, name: str) -> Mapping[str, Any]:
    def pairs(items: List[Tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            raise ValueError("duplicate member name")
        return obj

    def constant(token: str) -> Any:
        raise ValueError(f"{token} is not JSON")

    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=pairs,
            parse_constant=constant,
        )
    except (ValueError, RecursionError):  # UnicodeDecodeError included
        raise TokenError(f"{name} is not JSON") from None
    if not isinstance(value, dict):
        raise TokenError(f"{name} is not a JSON object")
    return value


def check_alg(header: Mapping[str, Any], alg: str) -> None:
    """The header's ``alg`` must be exactly the configured one; ``none``
    is refused by name whatever the configuration says."""
    given = header.get("alg")
    if not isinstance(given, str) or given.lower() == "none":
        raise TokenError('alg "none" is never accepted')
    if given != alg:
        raise TokenError(f"alg {given!r} is not the configured {alg}")


def check_key(key: Key, alg: str) -> None:
    """``key`` must be of the algorithm's family: an HS256 token is never
    checked with an RSA or EC public key taken as an HMAC secret."""
    problem = key_problem({"kty": key.kty, "crv": key.crv, "alg": key.alg}, alg)
    if problem is not None:
        raise TokenError(f"key {key.kid!r} cannot check {alg}: {problem}")


def check_signature(token: Token, key: Key, alg: str) -> None:
    """Verify the signature with pyjwt, allowing only ``alg``."""
    try:
        PyJWS(algorithms=[alg]).decode_complete(
            token.raw,
            key=key.key,
            algorithms=[alg],
            options={
                "verify_signature": True,
                "enforce_minimum_key_length": True,
            },
        )
    except Exception as exc:  # pyjwt and cryptography raise several kinds
        raise TokenError(f"bad signature ({type(exc).__name__})") from None


def _number(claims: Mapping[str, Any], name: str) -> Optional[float]:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenError(f"{name} is not a number")
    return value


def check_claims(
    claims: Mapping[str, Any],
    *,
    now: float,
    leeway: float,
    issuer: str = "",
    audience: Sequence[str] = (),
) -> None:
    """``exp``, ``nbf`` and ``iat`` (when present) within ``leeway``
    seconds of ``now``; ``iss`` equal to ``issuer``; every ``audience``
    present in ``aud``."""
    exp = _number(claims, "exp")
    if exp is not None and now >= exp + leeway:
        raise TokenError("token expired")
    nbf = _number(claims, "nbf")
    if nbf is not None and now + leeway < nbf:
        raise TokenError("token not valid yet (nbf)")
    iat = _number(claims, "iat")
    if iat is not None and now + leeway < iat:
        raise TokenError("token issued in the future (iat)")
    if issuer and claims.get("iss") != issuer:
        raise TokenError("wrong or missing iss")
    if audience:
        aud = claims.get("aud")
        given = [aud] if isinstance(aud, str) else aud
        if not isinstance(given, list) or not all(
            isinstance(a, str) for a in given
        ):
            raise TokenError("missing or invalid aud")
        lacking = [a for a in audience if a not in given]
        if lacking:
            raise TokenError(f"aud lacks {', '.join(lacking)}")


def claim(claims: Mapping[str, Any], name: str, nested: bool) -> Any:
    """The value of claim ``name``, None when absent. With ``nested``, a
    dotted name is a path into objects (``realm_access.roles``), except
    for names starting with ``http`` (URI claim names), as KrakenD."""
    if (
        name in claims
        or not nested
        or "." not in name
        or name.startswith("http")
    ):
        return claims.get(name)
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _words(value: Any) -> List[str]:
    """A roles/scopes claim as a list: an array (non-strings ignored) or a
    space-separated string."""
    if isinstance(value, str):
        return value.split(" ")
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def check_access(
    claims: Mapping[str, Any],
    *,
    roles_key: str,
    roles_nested: bool,
    roles: Iterable[str],
    scopes_key: str,
    scopes: Sequence[str],
    scopes_all: bool,
) -> None:
    """Any of ``roles`` (when given), then the ``scopes`` (any or all,
    when both key and scopes are given); raises :class:`Forbidden`."""
    wanted = list(roles)
    if wanted:
        held = _words(claim(claims, roles_key, roles_nested))
        if not any(role in held for role in wanted):
            raise Forbidden("no required role")
    if scopes_key and scopes:
        present = _words(claim(claims, scopes_key, True))
        found = [s in present for s in scopes]
        if not (all(found) if scopes_all else any(found)):
            raise Forbidden("missing scope")


def claim_text(value: Any) -> Optional[str]:
    """A claim as header or URL text, as KrakenD renders it: strings as
    is, integral numbers without decimals, arrays joined with ``,``,
    objects as JSON. None for an absent (or null) claim."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return _scalar(value, "{:f}")
    if isinstance(value, list):
        return ",".join(_element(v) for v in value)
    return json.dumps(
        value, separators=(",", ":"), sort_keys=True, ensure_ascii=False
    )


def _scalar(value: Any, float_format: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and abs(value - round(value)) <= 1e-6:
        return str(int(round(value)))
    return float_format.format(value) if math.isfinite(value) else repr(value)


def _element(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, (bool, int, float)):
        return _scalar(value, "{!r}")
    return json.dumps(
        value, separators=(",", ":"), sort_keys=True, ensure_ascii=False
    )
