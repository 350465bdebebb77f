"""``busgw keys generate`` and ``busgw token``: the argparse side.

``busd.cli`` adds these sub-commands with :func:`add_commands` and hands
the parsed arguments to :func:`run_command` with the wall-clock time (the
only clock read happens there).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional

from busd.auth.sign import (
    GENERATE_ALGS,
    load_private_key,
    make_token,
    write_keypair,
)
from busd.config.durations import parse_duration

__all__ = ["add_commands", "run_command", "COMMANDS"]

COMMANDS = ("keys", "token")


def add_commands(sub: Any) -> None:
    """Add ``keys`` and ``token`` to the ``busgw`` sub-parsers ``sub``."""
    keys = sub.add_parser("keys", help="make the fleet's signing keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    gen = actions.add_parser(
        "generate",
        help="write KID.key.pem (private, 0600) and KID.jwks.json (public)",
    )
    gen.add_argument("--alg", choices=GENERATE_ALGS, default="ES256")
    gen.add_argument("--kid", required=True, help="key id, also the file names")
    gen.add_argument(
        "--out", required=True, metavar="DIR", help="output folder"
    )
    gen.add_argument(
        "--force", action="store_true", help="replace existing files"
    )

    token = sub.add_parser("token", help="print a signed token (JWT)")
    token.add_argument(
        "--key", required=True, metavar="PEM", help="private key"
    )
    token.add_argument("--kid", required=True, help="key id of that key")
    token.add_argument(
        "--aud", required=True, action="append", help="audience (repeatable)"
    )
    token.add_argument("--iss", required=True, help="issuer")
    token.add_argument("--sub", required=True, help="subject")
    token.add_argument("--roles", default="", help="comma-separated roles")
    token.add_argument("--ttl", default="60s", help="lifetime, e.g. 60s, 10m")
    token.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="K=V",
        help="extra claim; V is read as JSON when it parses, else a string",
    )


def run_command(args: argparse.Namespace, now: float) -> int:
    """Run ``keys generate`` or ``token``; the exit status."""
    try:
        if args.command == "keys":
            return _generate(args)
        return _token(args, now)
    except (ValueError, OSError) as exc:
        print(f"busgw {args.command}: {exc}", file=sys.stderr)
        return 1


def _generate(args: argparse.Namespace) -> int:
    key_path, jwks_path = write_keypair(
        args.out, args.kid, args.alg, force=args.force
    )
    print(f"private key: {key_path} (keep it on the central only)")
    print(f"public JWKS: {jwks_path} (give it to the buses: jwk_local_path)")
    return 0


def _token(args: argparse.Namespace, now: float) -> int:
    ttl = parse_duration(args.ttl)
    if ttl <= 0:
        raise ValueError(f"--ttl must be positive, got {args.ttl!r}")
    key = load_private_key(args.key)
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    print(
        make_token(
            key,
            args.kid,
            issuer=args.iss,
            subject=args.sub,
            audience=args.aud,
            now=now,
            ttl=ttl,
            roles=roles,
            extra=_claims(args.claim),
        )
    )
    return 0


def _claims(items: List[str]) -> Optional[Dict[str, Any]]:
    claims: Dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--claim wants NAME=VALUE, got {item!r}")
        try:
            claims[name] = json.loads(text, parse_constant=_not_json)
        except ValueError:
            claims[name] = text
    return claims


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
