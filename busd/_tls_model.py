"""The frozen form of KrakenD's ``client_tls`` (imported by the config
model, so it imports nothing from busd; :mod:`busd.tls` is the public
face). The PEM files are read and checked when the config is loaded, so
building the TLS policy needs no file I/O and cannot fail half-way."""

from __future__ import annotations

from typing import Tuple

import attrs

__all__ = ["ClientCert", "ClientTLSConfig", "TLS_VERSIONS", "OLD_TLS_VERSIONS"]

# KrakenD's version names busgw accepts, oldest first.
TLS_VERSIONS = ("TLS12", "TLS13")
# KrakenD names busgw refuses: OpenSSL builds turn them off anyway.
OLD_TLS_VERSIONS = ("SSL3.0", "TLS10", "TLS11")


@attrs.frozen(kw_only=True)
class ClientCert:
    """One ``client_certs`` entry: the paths as given, the certificate
    chain (leaf first) and the unencrypted private key, as PEM."""

    certificate: str
    private_key: str
    chain_pem: Tuple[bytes, ...] = attrs.field(repr=False)
    key_pem: bytes = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class ClientTLSConfig:
    """The effective outbound TLS settings (KrakenD's ``client_tls``).

    ``ca_pem`` holds every certificate found in the ``ca_certs`` files.
    ``min_version`` defaults to ``TLS13`` when ``client_tls`` is given
    (KrakenD's default there) and to ``TLS12`` when it is not (Go's and
    Twisted's client default, which KrakenD then uses).
    """

    allow_insecure_connections: bool = False
    ca_certs: Tuple[str, ...] = ()
    ca_pem: Tuple[bytes, ...] = attrs.field(default=(), repr=False)
    disable_system_ca_pool: bool = False
    client_certs: Tuple[ClientCert, ...] = ()
    min_version: str = "TLS12"
    max_version: str = "TLS13"
