"""A throw-away PKI for TLS tests (shipped beside :mod:`busd.testing`).

:func:`make_pki` creates, with ``cryptography``, a test certificate
authority and certificates signed by it, and writes each as PEM files into
a directory:

* ``server``: for ``127.0.0.1``, ``::1`` and ``localhost`` (IP and DNS
  subjectAltNames), serverAuth;
* ``wrong_host``: a valid certificate from the same CA, but for
  ``wrong.invalid`` only, which a verifying client must refuse;
* ``client``: a clientAuth certificate for mutual TLS.

:meth:`TestPKI.issue` makes more (an expired one, another name).
:func:`ssl_listen` turns an issued certificate into a Twisted ``ssl:``
endpoint string, and :func:`server_options` into server
``CertificateOptions`` (optionally requiring a client certificate).

Validity is a fixed, wide window (2000 to 2099) unless given, so nothing
here reads the clock: OpenSSL checks validity against the system clock,
not the reactor's, so a window around "now" would need the wall clock.
Keys are P-256 ECDSA: quick to make, accepted everywhere.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from typing import Any, Optional, Sequence, Union

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import crypto
from twisted.internet.ssl import CertificateOptions

__all__ = [
    "Issued",
    "TestPKI",
    "make_pki",
    "ssl_listen",
    "server_options",
    "endpoint_quote",
    "VALID_FROM",
    "VALID_UNTIL",
]

VALID_FROM = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
VALID_UNTIL = datetime.datetime(2099, 12, 31, tzinfo=datetime.timezone.utc)
_IP = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


@attrs.frozen
class Issued:
    """A certificate, its private key, and the PEM files holding them."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey = attrs.field(repr=False)
    cert_path: str
    key_path: str

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)


@attrs.frozen
class TestPKI:
    """A test CA and the certificates :func:`make_pki` issued with it."""

    directory: str
    ca: Issued
    server: Issued
    wrong_host: Issued
    client: Issued

    def issue(
        self,
        name: str,
        *,
        dns: Sequence[str] = (),
        ips: Sequence[str] = (),
        client: bool = False,
        not_before: datetime.datetime = VALID_FROM,
        not_after: datetime.datetime = VALID_UNTIL,
    ) -> Issued:
        """Sign one more certificate with this CA, written as
        ``<name>.pem`` and ``<name>-key.pem`` in :attr:`directory`."""
        return _issue(
            self.directory,
            name,
            self.ca,
            dns=dns,
            ips=[ipaddress.ip_address(ip) for ip in ips],
            client=client,
            not_before=not_before,
            not_after=not_after,
        )


def make_pki(directory: str, *, ca_name: str = "busgw test CA") -> TestPKI:
    """Create ``directory`` if needed and fill it with a fresh CA
    (``ca.pem``, ``ca-key.pem``) and the certificates described above."""
    os.makedirs(directory, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca_cert = (
        _builder(subject, subject, ca_key, VALID_FROM, VALID_UNTIL)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .add_extension(_usage(cert_sign=True), True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
            False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca = _write(directory, "ca", ca_cert, ca_key)
    loopback = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    return TestPKI(
        directory=directory,
        ca=ca,
        server=_issue(directory, "server", ca, dns=["localhost"], ips=loopback),
        wrong_host=_issue(directory, "wrong-host", ca, dns=["wrong.invalid"]),
        client=_issue(directory, "client", ca, dns=["bus-client"], client=True),
    )


def endpoint_quote(value: str) -> str:
    """Escape ``\\``, ``:`` and ``=`` for a Twisted endpoint string."""
    for char in ("\\", ":", "="):
        value = value.replace(char, "\\" + char)
    return value


def ssl_listen(
    issued: Issued, *, port: int = 0, interface: str = "127.0.0.1"
) -> str:
    """An ``ssl:`` server endpoint string serving ``issued``'s certificate
    (port 0 = any free port) on ``interface``."""
    return (
        f"ssl:{port}:interface={endpoint_quote(interface)}"
        f":privateKey={endpoint_quote(issued.key_path)}"
        f":certKey={endpoint_quote(issued.cert_path)}"
    )


def server_options(
    issued: Issued, *, client_ca: Optional[Issued] = None
) -> CertificateOptions:
    """Server ``CertificateOptions`` for ``issued``; with ``client_ca``,
    every client must present a certificate signed by that CA (mTLS)."""
    # cryptography objects: pyOpenSSL deprecates its own X509 here (the
    # CA store below still takes one).
    key: Any = issued.key
    cert: Any = issued.cert
    if client_ca is None:
        return CertificateOptions(privateKey=key, certificate=cert)
    return CertificateOptions(
        privateKey=key,
        certificate=cert,
        verify=True,
        requireCertificate=True,
        caCerts=[crypto.X509.from_cryptography(client_ca.cert)],
    )


def _issue(
    directory: str,
    name: str,
    ca: Issued,
    *,
    dns: Sequence[str] = (),
    ips: Sequence[_IP] = (),
    client: bool = False,
    not_before: datetime.datetime = VALID_FROM,
    not_after: datetime.datetime = VALID_UNTIL,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ip) for ip in ips]
    purpose = (
        ExtendedKeyUsageOID.CLIENT_AUTH
        if client
        else ExtendedKeyUsageOID.SERVER_AUTH
    )
    builder = (
        _builder(subject, ca.cert.subject, key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(_usage(cert_sign=False), True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca.key.public_key()
            ),
            False,
        )
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(names), False
        )
    return _write(directory, name, builder.sign(ca.key, hashes.SHA256()), key)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(
    directory: str,
    name: str,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
) -> Issued:
    cert_path = os.path.join(directory, f"{name}.pem")
    key_path = os.path.join(directory, f"{name}-key.pem")
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    # A private key file readable by its owner only, as real ones should be.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(_key_pem(key))
    return Issued(cert=cert, key=key, cert_path=cert_path, key_path=key_path)
