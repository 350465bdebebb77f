"""The bus's own key, which signs its tokens for the central: read from
its PEM file, or made at first start when ``central.generate_key``."""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.logger import Logger

__all__ = ["load_or_generate_key", "jwks_path"]

_log = Logger()


def load_or_generate_key(path: str, generate: bool, kid: str) -> Any:
    """The bus's private key from ``path``. When it is missing and
    ``generate`` is set, a new ES256 key is written there first (mode 0600,
    never over an existing file), with its public JWK set (key id ``kid``)
    beside it for the central: ``bus.key.pem`` -> ``bus.jwks.json``.
    Blocking: run it off the reactor thread."""
    from busd.auth.sign import (
        generate_key,
        load_private_key,
        private_pem,
        public_jwks,
    )

    if generate and not os.path.exists(path):
        key = generate_key("ES256")
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private_pem(key))
            handle.flush()
            os.fsync(handle.fileno())
        with open(jwks_path(path), "w") as handle:
            json.dump(public_jwks(key, kid), handle, indent=2)
            handle.write("\n")
        _log.info(
            "generated the signing key {path}; its public JWK set for the"
            " other side (central or buses) is {jwks}",
            path=path,
            jwks=jwks_path(path),
        )
        return key
    return load_private_key(path)


def jwks_path(key_path: str) -> str:
    """Where the public JWKS of a generated key is written."""
    if key_path.endswith(".key.pem"):
        return key_path[: -len(".key.pem")] + ".jwks.json"
    return key_path + ".jwks.json"
