"""Reading KrakenD's service-level ``client_tls`` (and the older root key
``allow_insecure_connections``) into a :class:`ClientTLSConfig`.

Every PEM file is read and checked here, at load time, so a missing CA
file, a key that does not match its certificate or an encrypted key is a
config error naming its JSON path, not a failed handshake later. KrakenD
only logs such files and goes on without them. Relative paths are taken
from the working directory, as KrakenD does.
"""

from __future__ import annotations

from typing import Optional, Tuple

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import (
    PrivateKeyTypes,
    PublicKeyTypes,
)

from busd._tls_model import (
    OLD_TLS_VERSIONS,
    TLS_VERSIONS,
    ClientCert,
    ClientTLSConfig,
)
from busd.config import krakend
from busd.config._syntax import q
from busd.config._walk import Loc, Node, Report, object_items

__all__ = ["read_client_tls"]

_CERT_KEYS = ("certificate", "private_key")


def _public(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def read_client_tls(root: Node) -> ClientTLSConfig:
    """``client_tls`` and ``allow_insecure_connections`` of the root
    object ``root``; either switch turns verification off (as in lura)."""
    insecure = root.boolean("allow_insecure_connections")
    node = root.child("client_tls")
    if node is None:
        # KrakenD builds a client_tls (so TLS 1.3 minimum) for the old key.
        minimum = "TLS13" if insecure else "TLS12"
        return ClientTLSConfig(
            allow_insecure_connections=insecure, min_version=minimum
        )
    insecure = node.boolean("allow_insecure_connections") or insecure
    no_system = node.boolean("disable_system_ca_pool")
    paths = node.strings("ca_certs") or ()
    ca_pem: list[bytes] = []
    single = isinstance(node.raw.get("ca_certs"), str)
    for index, path in enumerate(paths):
        loc = node.at("ca_certs") if single else node.at("ca_certs").item(index)
        ca_pem += _read_certs(node.report, loc, path)
    if no_system and not paths and not insecure:
        node.report.error(
            node.at("disable_system_ca_pool"),
            "without ca_certs no server would be trusted; list the CA"
            " certificates to trust in ca_certs",
        )
    minimum = _version(node, "min_version")
    maximum = _version(node, "max_version")
    if TLS_VERSIONS.index(minimum) > TLS_VERSIONS.index(maximum):
        node.report.error(
            node.at("min_version"),
            f"min_version {minimum} is above max_version {maximum}",
        )
        minimum = maximum
    config = ClientTLSConfig(
        allow_insecure_connections=insecure,
        ca_certs=tuple(paths),
        ca_pem=tuple(ca_pem),
        disable_system_ca_pool=no_system,
        client_certs=_read_client_certs(node),
        min_version=minimum,
        max_version=maximum,
    )
    node.finish(krakend.CLIENT_TLS_KEYS, krakend.UNSUPPORTED_CLIENT_TLS_KEYS)
    return config


def _version(node: Node, key: str) -> str:
    """``min_version`` / ``max_version``; KrakenD's default is TLS13."""
    value = node.string(key, "TLS13")
    if value in TLS_VERSIONS:
        return value
    if value in OLD_TLS_VERSIONS:
        problem = f"{value} is not supported: busgw speaks TLS 1.2 and 1.3"
    else:
        problem = f"unknown TLS version {q(value)}"
    node.report.error(
        node.at(key), f"{problem} (use: {', '.join(TLS_VERSIONS)})"
    )
    return "TLS13"


def _read_client_certs(node: Node) -> Tuple[ClientCert, ...]:
    """``client_certs``: ``[{"certificate": ..., "private_key": ...}]``.
    OpenSSL presents one client certificate, so only the first is used."""
    items = node.array("client_certs")
    if not items:
        return ()
    loc = node.at("client_certs")
    certs: list[ClientCert] = []
    for index, item in object_items(node.report, loc, items):
        cert_path = item.string("certificate", required="a PEM file path")
        key_path = item.string("private_key", required="a PEM file path")
        item.finish(_CERT_KEYS)
        if index > 0:
            item.report.warn(
                item.loc,
                "busgw presents only the first client certificate (ignored)",
            )
            continue
        if not cert_path or not key_path:
            continue
        chain = _read_certs(item.report, item.at("certificate"), cert_path)
        key = _read_key(item.report, item.at("private_key"), key_path)
        if not chain or key is None:
            continue
        leaf = x509.load_pem_x509_certificate(chain[0])
        if _public(leaf.public_key()) != _public(key.public_key()):
            item.report.error(
                item.at("private_key"),
                f"{key_path} is not the private key of {cert_path}",
            )
            continue
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        certs.append(
            ClientCert(
                certificate=cert_path,
                private_key=key_path,
                chain_pem=chain,
                key_pem=pem,
            )
        )
    return tuple(certs)


def _read_file(report: Report, loc: Loc, path: str) -> Optional[bytes]:
    if not path:
        report.error(loc, "expected a file path, got an empty string")
        return None
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        report.error(loc, f"cannot read {path}: {exc.strerror or exc}")
        return None


def _read_certs(report: Report, loc: Loc, path: str) -> Tuple[bytes, ...]:
    """Every certificate of the PEM file at ``path``, each as PEM."""
    data = _read_file(report, loc, path)
    if data is None:
        return ()
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        report.error(loc, f"{path} holds no PEM certificate")
        return ()
    return tuple(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _read_key(report: Report, loc: Loc, path: str) -> Optional[PrivateKeyTypes]:
    data = _read_file(report, loc, path)
    if data is None:
        return None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        # A passphrase would have to be typed in or stored beside it.
        report.error(loc, f"{path} is encrypted; busgw needs it unencrypted")
        return None
    except (ValueError, UnsupportedAlgorithm):
        report.error(loc, f"{path} holds no PEM private key")
        return None
    return key

