"""The JWT endpoint guard: find the token, check it, pass on its claims.

Built once per protected endpoint by :func:`make_jwt_guard`. It refuses
with a :class:`~busd.errors.GatewayError` the router renders as JSON:
401 ``{"error": "missing token" | "invalid token", "status": 401}`` with
``WWW-Authenticate: Bearer realm="busgw"`` (plus ``error="invalid_token"``
when a token was given), or 403 with ``error="insufficient_scope"``. The
reason (never the token) is logged only with ``operation_debug``.

On success the request goes on with ``propagate_claims`` headers (the
client's own header of each name is always removed first, so it cannot be
spoofed) and ``JWT.<claim>`` params for ``url_pattern`` placeholders.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Protocol, Tuple

import attrs
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from busd.auth.config import ValidatorConfig
from busd.auth.keys import Key, KeyUnavailable, LocalKeys
from busd.auth.remote import RemoteKeys
from busd.auth.verify import (
    Forbidden,
    Token,
    TokenError,
    check_access,
    check_alg,
    check_claims,
    check_key,
    check_signature,
    claim,
    claim_text,
    parse_token,
)
from busd.errors import GatewayError
from busd.pipeline.types import ProxyRequest

__all__ = ["JWTGuard", "KeySource", "make_jwt_guard", "extract_token", "REALM"]

_log = Logger()
REALM = 'Bearer realm="busgw"'
_JWT_PARAM = re.compile(r"\{(JWT\.[^{}]+)\}")
# Control characters cannot travel in a header value (CR/LF would split it).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class KeySource(Protocol):
    """Where a guard finds the key for a token's ``kid``."""

    def lookup(self, kid: Optional[str]) -> "Deferred[Key]": ...


def extract_token(
    preq: ProxyRequest, header_name: str, cookie_key: str
) -> Optional[str]:
    """The token from header ``header_name`` (an optional, case-insensitive
    ``Bearer `` prefix), else from cookie ``cookie_key``; None if neither
    holds one."""
    value = (preq.header(header_name) or "").strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    if value:
        return value
    for name, header in preq.headers:
        if name.lower() != "cookie":
            continue
        for pair in header.split(";"):
            key, _, cookie = pair.strip().partition("=")
            if key == cookie_key:
                cookie = cookie.strip()
                if len(cookie) >= 2 and cookie[0] == cookie[-1] == '"':
                    cookie = cookie[1:-1]
                if cookie:
                    return cookie
    return None


class JWTGuard:
    """A :data:`~busd.guards.Guard` checking tokens against one
    :class:`ValidatorConfig`."""

    def __init__(
        self,
        config: ValidatorConfig,
        keys: KeySource,
        clock: IReactorTime,
        *,
        endpoint: str = "",
        jwt_params: Tuple[str, ...] = (),
    ):
        self.config = config
        self._keys = keys
        self._clock = clock
        self._endpoint = endpoint
        self._jwt_params = jwt_params
        self._dropped = frozenset(
            _header_key(h) for _, h in config.propagate_claims
        )

    def __call__(
        self, request: Any, preq: ProxyRequest
    ) -> "Deferred[ProxyRequest]":
        cfg = self.config
        raw = extract_token(preq, cfg.auth_header_name, cfg.cookie_key)
        if raw is None:
            return fail(self._refuse(401, "missing token", missing=True))
        try:
            token = parse_token(raw)
            check_alg(token.header, cfg.alg)
        except TokenError as exc:
            return fail(self._refuse(401, str(exc)))
        d = self._keys.lookup(token.kid).addCallback(self._check, token, preq)
        return d.addErrback(self._refused)

    def _check(
        self, key: Key, token: Token, preq: ProxyRequest
    ) -> ProxyRequest:
        cfg = self.config
        check_key(key, cfg.alg)
        check_signature(token, key, cfg.alg)
        check_claims(
            token.claims,
            now=self._clock.seconds(),
            leeway=cfg.leeway,
            issuer=cfg.issuer,
            audience=cfg.audience,
        )
        check_access(
            token.claims,
            roles_key=cfg.roles_key,
            roles_nested=cfg.roles_key_is_nested,
            roles=cfg.roles,
            scopes_key=cfg.scopes_key,
            scopes=cfg.scopes,
            scopes_all=cfg.scopes_matcher == "all",
        )
        return self._enrich(preq, token.claims)

    def _refused(self, failure: Failure) -> Failure:
        err = failure.value
        if failure.check(CancelledError, GatewayError):
            return failure
        if isinstance(err, Forbidden):
            return Failure(self._refuse(403, str(err)))
        if isinstance(err, (TokenError, KeyUnavailable)):
            return Failure(self._refuse(401, str(err)))
        # A bug, not a bad token: logged loudly, and still a refusal.
        _log.failure(
            "JWT validation crashed on {endpoint}",
            failure,
            endpoint=self._endpoint,
        )
        return Failure(self._refuse(401, "internal error"))

    def _refuse(
        self, status: int, reason: str, missing: bool = False
    ) -> GatewayError:
        if self.config.operation_debug:
            _log.info(
                "JWT refused on {endpoint}: {status} {reason}",
                endpoint=self._endpoint,
                status=status,
                reason=reason,
            )
        if status == 403:
            return GatewayError(
                "insufficient scope",
                status=403,
                code="insufficient_scope",
                headers={
                    "WWW-Authenticate": REALM + ', error="insufficient_scope"'
                },
            )
        if missing:
            # RFC 6750 3.1: no error code when no credentials were sent.
            return GatewayError(
                "missing token",
                status=401,
                code="invalid_token",
                headers={"WWW-Authenticate": REALM},
            )
        return GatewayError(
            "invalid token",
            status=401,
            code="invalid_token",
            headers={"WWW-Authenticate": REALM + ', error="invalid_token"'},
        )

    def _enrich(self, preq: ProxyRequest, claims: Any) -> ProxyRequest:
        """Claims as headers and ``JWT.<claim>`` params."""
        changes: Dict[str, Any] = {}
        if self._dropped:
            values: Dict[str, str] = {}
            for name, header in self.config.propagate_claims:
                text = _header_text(claim(claims, name, True))
                if text is None:
                    values.pop(header, None)
                else:
                    values[header] = text
            kept: List[Tuple[str, str]] = [
                (n, v)
                for n, v in preq.headers
                if _header_key(n) not in self._dropped
            ]
            changes["headers"] = tuple(kept) + tuple(values.items())
        if self._jwt_params:
            params = {
                k: v for k, v in preq.params.items() if not k.startswith("JWT.")
            }
            for param in self._jwt_params:
                text = claim_text(claim(claims, param[4:], True))
                if text is not None:
                    params[param] = text
            changes["params"] = params
        return attrs.evolve(preq, **changes) if changes else preq


def _header_text(value: Any) -> Optional[str]:
    """A claim as a header value (its UTF-8 bytes, held latin-1 decoded as
    every header in a ProxyRequest); None when absent or unsendable."""
    text = claim_text(value)
    if text is None or _CONTROL.search(text):
        return None
    return text.encode("utf-8").decode("latin-1")


def make_jwt_guard(
    config: ValidatorConfig,
    *,
    client: Any,
    clock: IReactorTime,
    endpoint: str = "",
    url_patterns: Tuple[str, ...] = (),
    shared: Optional[Dict[Any, Any]] = None,
) -> JWTGuard:
    """The guard for one endpoint. ``shared`` holds the :class:`RemoteKeys`
    per ``jwk_url`` (one per app), so endpoints sharing a key server share
    one cache and one fetch."""
    keys: KeySource
    if config.local_keys is not None:
        keys = LocalKeys(config.local_keys)
    else:
        ident = (
            config.jwk_url,
            config.alg,
            config.cache_duration,
            config.failed_jwk_key_cooldown,
        )
        registry = shared if shared is not None else {}
        if ident not in registry:
            registry[ident] = RemoteKeys(
                config.jwk_url,
                config.alg,
                client,
                clock,
                cache_duration=config.cache_duration,
                cooldown=config.failed_jwk_key_cooldown,
            )
        keys = registry[ident]
    params: List[str] = []
    for pattern in url_patterns:
        for name in _JWT_PARAM.findall(pattern):
            if name not in params:
                params.append(name)
    return JWTGuard(
        config, keys, clock, endpoint=endpoint, jwt_params=tuple(params)
    )


def _header_key(name: str) -> str:
    """A header name as CGI/WSGI backends see it: ``X_Tenant`` and
    ``X-Tenant`` both become ``HTTP_X_TENANT``, so a client must not be
    able to send either spelling of a propagated claim's header."""
    return name.lower().replace("_", "-")
