"""The keys of the demo fleet: the central's signing key as its config
names it, which every bus trusts, and each bus's own key, which the
central trusts for its events (its ``bus.jwks.json`` is in the fleet
file)."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import attrs

from busd.demo.fleet_config import BusPlan

__all__ = ["CentralKey", "central_block", "central_key", "generate_keys"]


@attrs.frozen
class CentralKey:
    """The central's signing key as its config names it: the buses
    trust ``jwks`` for tokens with ``issuer`` and ``audience_for(id)``."""

    key: str
    kid: str
    issuer: str = "central"
    audience: str = "bus-{id}"

    @property
    def jwks(self) -> str:
        from busd.bus.key import jwks_path

        return jwks_path(self.key)

    def audience_for(self, bus_id: str) -> str:
        return self.audience.replace("{id}", bus_id)


def central_block(raw: Any, environ: Mapping[str, str]) -> Mapping[str, Any]:
    """The ``busgw/central`` block of the central config ``raw`` (decoded
    JSON), its placeholders filled from ``environ``; empty if none."""
    from busd.config._walk import Report
    from busd.config.env import apply_environment

    filled = apply_environment(Report(), raw, environ)
    return (filled.get("extra_config") or {}).get("busgw/central") or {}


def central_key(raw: Any, environ: Mapping[str, str]) -> CentralKey:
    """The ``busgw/central.signing`` of the central config ``raw`` (decoded
    JSON), its placeholders filled from ``environ``. Raises ValueError
    when it has none: the buses would refuse its unsigned polls."""
    signing = central_block(raw, environ).get("signing")
    if not isinstance(signing, dict) or not signing.get("key"):
        raise ValueError(
            'the central config has no "busgw/central".signing.key: the'
            " demo buses accept only the central's signed polls"
        )
    return CentralKey(
        key=os.path.abspath(str(signing["key"])),
        kid=str(signing.get("kid") or "central"),
        issuer=str(signing.get("issuer") or "central"),
        audience=str(signing.get("audience") or "bus-{id}"),
    )


def generate_keys(central: CentralKey, plans: Sequence[BusPlan]) -> None:
    """Make the central's key and each bus's key (each with its public
    JWK set beside it) unless they exist. Blocking: call before the
    reactor serves anything."""
    from busd.bus.key import load_or_generate_key

    load_or_generate_key(central.key, True, central.kid)
    for plan in plans:
        load_or_generate_key(plan.key, True, plan.id)
