"""JWT validation (KrakenD's ``auth/validator``) and the fleet's keys.

``config`` reads the validator options, ``keys`` parses JWK sets and
``remote`` fetches them, ``verify`` checks one token, ``guard`` is the
endpoint guard the router runs, ``sign`` makes keys and tokens (and later
the central's own request tokens) and ``commands`` is ``busgw keys`` /
``busgw token``.

This package imports nothing at import time: ``busd.config`` imports
``busd.auth.config`` while it is itself being imported.
"""

__all__: list[str] = []
