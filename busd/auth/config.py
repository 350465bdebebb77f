"""The ``auth/validator`` options (KRAKEND.md 3.12) and busgw's
``busgw/auth`` namespace, read once at config load into frozen values.

Where an endpoint stands is resolved here too: its own
``auth/validator``, else the service default
(``extra_config."busgw/auth".validator``), unless it opts out with
``extra_config."busgw/auth": {"public": true}``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Optional, Sequence, Tuple

import attrs

from busd.auth._options import (
    read_header,
    read_propagate,
    read_seconds,
    read_url,
)
from busd.auth.keys import ALGORITHMS, JWKSError, KeySet, load_jwks_file
from busd.config._syntax import q
from busd.config._walk import Node

__all__ = [
    "ValidatorConfig",
    "VALIDATOR_KEYS",
    "UNSUPPORTED_VALIDATOR_KEYS",
    "read_validator",
    "read_service_auth",
    "resolve_endpoint_auth",
]

VALIDATOR_KEYS = frozenset(
    {
        "alg",
        "jwk_url",
        "jwk_local_path",
        "disable_jwk_security",
        "cache",
        "cache_duration",
        "failed_jwk_key_cooldown",
        "key_identify_strategy",
        "audience",
        "issuer",
        "leeway",
        "roles_key",
        "roles_key_is_nested",
        "roles",
        "scopes_key",
        "scopes",
        "scopes_matcher",
        "propagate_claims",
        "cookie_key",
        "auth_header_name",
        "operation_debug",
    }
)
_NOT_SUPPORTED = "not supported by busgw (ignored)"
UNSUPPORTED_VALIDATOR_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "jwk_fingerprints": _NOT_SUPPORTED,
        "jwk_local_ca": _NOT_SUPPORTED,
        "cipher_suites": _NOT_SUPPORTED,
        "secret_url": "encrypted JWK files are " + _NOT_SUPPORTED,
        "cypher_key": "encrypted JWK files are " + _NOT_SUPPORTED,
        "propagate_claims_preserve_array": _NOT_SUPPORTED
        + "; arrays are joined with ','",
    }
)


@attrs.frozen(kw_only=True)
class ValidatorConfig:
    """One endpoint's JWT validation, every default resolved.

    Durations are seconds. ``local_keys`` is the ``jwk_local_path`` set,
    read and checked at load; ``propagate_claims`` pairs a claim with a
    canonical header name.
    """

    alg: str
    jwk_url: str = ""
    jwk_local_path: str = ""
    local_keys: Optional[KeySet] = None
    disable_jwk_security: bool = False
    cache_duration: float = 900.0
    failed_jwk_key_cooldown: float = 10.0
    audience: Tuple[str, ...] = ()
    issuer: str = ""
    leeway: float = 5.0
    roles_key: str = "roles"
    roles_key_is_nested: bool = False
    roles: Tuple[str, ...] = ()
    scopes_key: str = ""
    scopes: Tuple[str, ...] = ()
    scopes_matcher: str = "any"
    propagate_claims: Tuple[Tuple[str, str], ...] = ()
    cookie_key: str = "access_token"
    auth_header_name: str = "Authorization"
    operation_debug: bool = False


def _name(node: Node, key: str) -> str:
    """The key to read: ``key`` or its dashed KrakenD v2 spelling
    (``jwk-url``), which draws a warning."""
    if "_" not in key:
        return key
    return node.renamed(key, key.replace("_", "-"))


def read_validator(node: Node) -> Optional[ValidatorConfig]:
    """An ``auth/validator`` object (endpoint, or the service default's
    ``validator``); None when its ``alg`` is unusable (an error is
    reported, so the config does not load)."""
    alg = node.string("alg", required="one of " + ", ".join(ALGORITHMS))
    if alg and alg not in ALGORITHMS:
        node.report.error(
            node.at("alg"),
            f"unsupported alg {q(alg)} (want one of: {', '.join(ALGORITHMS)})",
        )
    get = {key: _name(node, key) for key in sorted(VALIDATOR_KEYS)}
    insecure = node.boolean(get["disable_jwk_security"])
    url = read_url(node, get["jwk_url"], insecure)
    path = node.string(get["jwk_local_path"])
    if url and path:
        node.report.error(
            node.at(get["jwk_local_path"]),
            "give jwk_url or jwk_local_path, not both",
        )
    elif not url and not path:
        node.report.error(node.loc, "missing jwk_url or jwk_local_path")
    node.boolean(get["cache"])  # keys are always cached (cache_duration)
    strategy = node.string(get["key_identify_strategy"], "kid")
    if strategy != "kid":
        node.report.error(
            node.at(get["key_identify_strategy"]),
            f'only "kid" is supported, got {q(strategy)}',
        )
    matcher = node.string(get["scopes_matcher"], "any")
    if matcher not in ("any", "all"):
        node.report.error(
            node.at(get["scopes_matcher"]),
            f'want "any" or "all", got {q(matcher)}',
        )
    config = ValidatorConfig(
        alg=alg,
        jwk_url=url,
        jwk_local_path=path,
        disable_jwk_security=insecure,
        cache_duration=read_seconds(node, get["cache_duration"], 900.0),
        failed_jwk_key_cooldown=node.duration(
            get["failed_jwk_key_cooldown"], 10.0
        ),
        audience=node.strings(get["audience"]) or (),
        issuer=node.string(get["issuer"]),
        leeway=node.duration(get["leeway"], 5.0),
        roles_key=node.string(get["roles_key"]) or "roles",
        roles_key_is_nested=node.boolean(get["roles_key_is_nested"]),
        roles=node.strings(get["roles"]) or (),
        scopes_key=node.string(get["scopes_key"]),
        scopes=node.strings(get["scopes"]) or (),
        scopes_matcher=matcher if matcher in ("any", "all") else "any",
        propagate_claims=read_propagate(node, get["propagate_claims"]),
        cookie_key=node.string(get["cookie_key"]) or "access_token",
        auth_header_name=read_header(
            node, get["auth_header_name"], "Authorization"
        ),
        operation_debug=node.boolean(get["operation_debug"]),
    )
    node.finish(VALIDATOR_KEYS, UNSUPPORTED_VALIDATOR_KEYS)
    if alg not in ALGORITHMS:
        return None
    if path:
        try:
            keys = load_jwks_file(path, alg)
        except JWKSError as exc:
            node.report.error(node.at(get["jwk_local_path"]), str(exc))
        else:
            config = attrs.evolve(config, local_keys=keys)
    return config


def read_service_auth(node: Optional[Node]) -> Optional[ValidatorConfig]:
    """Service ``extra_config."busgw/auth"``: its ``validator`` is the
    default of every endpoint."""
    if node is None:
        return None
    child = node.child("validator")
    node.finish(("validator",))
    return read_validator(child) if child is not None else None


def resolve_endpoint_auth(
    endpoint: Node,
    validator: Optional[Node],
    busgw: Optional[Node],
    default: Optional[ValidatorConfig],
    *,
    input_headers: Sequence[str],
) -> Optional[ValidatorConfig]:
    """The validator an endpoint runs: its own ``auth/validator``, else the
    service default, or none when ``busgw/auth.public`` is true."""
    public = False
    if busgw is not None:
        public = busgw.boolean("public")
        if "validator" in busgw.raw:
            busgw.take("validator")
            busgw.report.warn(
                busgw.at("validator"),
                'an endpoint\'s validator goes in extra_config."auth/validator"'
                " (ignored here)",
            )
        busgw.finish(("public",))
    if validator is not None:
        if public:
            assert busgw is not None  # public is only read from it
            busgw.report.error(
                busgw.at("public"),
                'a public endpoint cannot have "auth/validator"; remove one',
            )
        auth = read_validator(validator)
    else:
        auth = None if public else default
    if auth is not None and "*" not in input_headers:
        for claim, header in auth.propagate_claims:
            if header not in input_headers:
                endpoint.report.warn(
                    endpoint.at("input_headers"),
                    f"propagate_claims sets {header} (from {claim}), which"
                    " reaches backends only if input_headers lists it",
                )
    return auth
