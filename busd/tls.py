"""TLS for busgw: the outbound ``client_tls`` policy, and inbound help.

Outbound: KrakenD's service-level ``client_tls`` (plus its older root key
``allow_insecure_connections``) is read by :func:`read_client_tls` (in
``busd.config._tls``) into a frozen :class:`ClientTLSConfig`, with every
PEM file already read and checked. :func:`make_tls_policy` turns it into
the ``IPolicyForHTTPS`` that every outbound HTTPS call of the shared
client uses (backends now; JWKS fetches and the central later): the
server's certificate must chain to the system CAs and/or ``ca_certs``, and
its name must match the URL's host (service-identity, through Twisted's
``optionsForClientTLS``); a client certificate is presented when
configured (mTLS). ``allow_insecure_connections`` turns every check off
and logs a warning each time a policy is built (at start-up and at each
config reload).

Inbound HTTPS is Twisted's ``ssl:`` endpoint string (``--listen``); this
module only checks it fully before binding (:func:`check_server_tls`) and
words its errors (:func:`describe_listen_error`).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
# Not re-exported by twisted.internet.ssl, but what trustRoot= takes.
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    TLSVersion,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.web.client import HostnameCachingHTTPSPolicy
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from busd._tls_model import TLS_VERSIONS, ClientCert, ClientTLSConfig
from busd.config._tls import read_client_tls

__all__ = [
    "ClientCert",
    "ClientTLSConfig",
    "read_client_tls",
    "make_tls_policy",
    "describe_listen_error",
    "check_server_tls",
    "TLS_VERSIONS",
    "INSECURE_WARNING",
]

_log = Logger()
_VERSION = {"TLS12": TLSVersion.TLSv1_2, "TLS13": TLSVersion.TLSv1_3}
# Hosts whose connection creator (and so SSL context, with the CA bundle
# parsed once) is kept: more than a config's backends, JWKS and central.
_CACHED_HOSTS = 64
INSECURE_WARNING = (
    "client_tls: allow_insecure_connections is on: the certificates of"
    " HTTPS backends are NOT verified, so anyone on the path can read and"
    " change the traffic. Use ca_certs instead."
)


def make_tls_policy(cfg: ClientTLSConfig) -> IPolicyForHTTPS:
    """The HTTPS policy for ``cfg``, for ``Agent(contextFactory=...)``.

    Connection creators are cached per host name (bounded), so the
    system CA bundle is not parsed again for every new connection."""
    if cfg.allow_insecure_connections:
        _log.warn(INSECURE_WARNING)
    return HostnameCachingHTTPSPolicy(_Policy(cfg), cacheSize=_CACHED_HOSTS)


@implementer(IPolicyForHTTPS)
class _Policy:
    """Builds one connection creator per host from a ClientTLSConfig."""

    def __init__(self, cfg: ClientTLSConfig) -> None:
        self._insecure = cfg.allow_insecure_connections
        self._trust = _trust_root(cfg)
        self._options: Dict[str, Any] = {
            "raiseMinimumTo": _VERSION[cfg.min_version],
            "lowerMaximumSecurityTo": _VERSION[cfg.max_version],
        }
        if cfg.client_certs:
            # OpenSSL offers one client certificate; the reader warned
            # about the others. cryptography objects, as pyOpenSSL
            # deprecates its own X509 there.
            first = cfg.client_certs[0]
            chain = [x509.load_pem_x509_certificate(p) for p in first.chain_pem]
            self._options.update(
                privateKey=serialization.load_pem_private_key(
                    first.key_pem, password=None
                ),
                certificate=chain[0],
                extraCertChain=chain[1:],
            )

    def creatorForNetloc(
        self, hostname: bytes, port: int
    ) -> IOpenSSLClientConnectionCreator:
        host = hostname.decode("ascii")
        if self._insecure:
            options = CertificateOptions(verify=False, **self._options)
            return _Unverified(options, host)
        return optionsForClientTLS(
            host,
            trustRoot=self._trust,
            extraCertificateOptions=dict(self._options),
        )


def _trust_root(cfg: ClientTLSConfig) -> IOpenSSLTrustRoot:
    """System CAs, ``ca_certs``, or both (KrakenD adds ``ca_certs`` to
    the system pool unless ``disable_system_ca_pool``)."""
    cas = [_x509(pem) for pem in cfg.ca_pem]
    if cfg.disable_system_ca_pool:
        return trustRootFromCertificates([Certificate(ca) for ca in cas])
    if not cas:
        return platformTrust()
    return _SystemAndCAs(cas)


@implementer(IOpenSSLTrustRoot)
class _SystemAndCAs:
    """OpenSSL's default verify paths plus some CA certificates.

    Twisted offers each on its own (``platformTrust``,
    ``trustRootFromCertificates``) but not both; this does what each of
    theirs does, on the same context."""

    def __init__(self, cas: Sequence[crypto.X509]) -> None:
        self._cas = list(cas)

    def _addCACertsToContext(self, context: SSL.Context) -> None:
        context.set_default_verify_paths()
        store = context.get_cert_store()
        assert store is not None
        for ca in self._cas:
            store.add_cert(ca)


@implementer(IOpenSSLClientConnectionCreator)
class _Unverified:
    """A client connection that verifies nothing but still sends SNI, so
    a name-based virtual host picks the right certificate."""

    def __init__(self, options: CertificateOptions, hostname: str) -> None:
        self._options = options
        is_ip = isIPAddress(hostname) or isIPv6Address(hostname)
        self._sni: Optional[bytes] = None if is_ip else hostname.encode()

    def clientConnectionForTLS(
        self, tlsProtocol: TLSMemoryBIOProtocol
    ) -> SSL.Connection:
        connection = self._options.clientConnectionForTLS(tlsProtocol)
        if self._sni is not None:
            connection.set_tlsext_host_name(self._sni)
        return connection


def _x509(pem: bytes) -> crypto.X509:
    return crypto.load_certificate(crypto.FILETYPE_PEM, pem)


def check_server_tls(endpoint: object) -> None:
    """Build an ``ssl:`` endpoint's TLS context now: Twisted builds it at
    the first connection, so a late-read file (``dhParameters``) would
    otherwise fail every handshake instead of the start-up."""
    # Twisted keeps the context factory in a private attribute.
    factory = getattr(endpoint, "_sslContextFactory", None)
    if factory is not None and hasattr(factory, "getContext"):
        factory.getContext()


def describe_listen_error(exc: BaseException) -> str:
    """Words for an error raised while parsing a ``--listen`` endpoint
    string (``ssl:`` reads its key files then): the file and the reason
    for an unreadable file, a hint for a file that is not PEM."""
    if isinstance(exc, OSError) and exc.filename is not None:
        reason = exc.strerror or str(exc)
        return f"cannot read {exc.filename}: {reason}"
    if isinstance(exc, (SSL.Error, crypto.Error)):
        return (
            "privateKey and certKey must be PEM files holding an unencrypted"
            f" private key and its certificate ({_openssl_reason(exc)})"
        )
    return str(exc) or type(exc).__name__


def _openssl_reason(exc: BaseException) -> str:
    """The last reason in a pyOpenSSL error list, or the error itself."""
    reasons: object = exc.args[0] if exc.args else None
    if isinstance(reasons, list) and reasons and isinstance(reasons[-1], tuple):
        return str(reasons[-1][-1])
    return str(exc)
