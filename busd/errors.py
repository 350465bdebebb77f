"""Errors of busgw: configuration problems and gateway (request) errors.

Only the router (``busd.app``) turns a :class:`GatewayError` into an HTTP
answer; everywhere else they travel as exceptions or as data (a partial
response is data, not an exception).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional

import attrs

__all__ = [
    "ConfigProblem",
    "ConfigError",
    "GatewayError",
    "BadRequest",
    "BackendError",
    "BackendStatusError",
    "BackendTimeout",
    "BodyTooLarge",
    "DecodeError",
]


@attrs.frozen
class ConfigProblem:
    """One problem found in a config file.

    ``path`` is the JSON path of the offending value, such as
    ``endpoints[3].backend[0].url_pattern``; ``severity`` is ``"error"`` or
    ``"warning"``.
    """

    path: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = self.path or "(root)"
        return f"{self.severity}: {where}: {self.message}"


class ConfigError(Exception):
    """A config that cannot be served; carries every problem found."""

    def __init__(self, problems: Iterable[ConfigProblem], source: str = ""):
        self.problems = tuple(problems)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.source}: " if self.source else ""
        errors = [p for p in self.problems if p.severity == "error"]
        lines = [f"{head}{len(errors)} problem(s) in the config"]
        lines.extend(str(p) for p in self.problems)
        return "\n".join(lines)


class GatewayError(Exception):
    """An error the gateway answers for, with an HTTP status and a code."""

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str = "",
        *,
        status: Optional[int] = None,
        code: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
    ):
        super().__init__(message or code or self.code)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        #: Response headers the answer must carry (WWW-Authenticate,
        #: Retry-After, Allow...).
        self.headers: Mapping[str, str] = dict(headers or {})

    @property
    def message(self) -> str:
        return str(self.args[0])


class BadRequest(GatewayError):
    status = 400
    code = "bad_request"


class BackendError(GatewayError):
    """A backend call failed (connection, status, decode, size...)."""

    status = 500
    code = "backend_error"


class BackendStatusError(BackendError):
    """A backend answered with a status other than 200/201."""

    code = "backend_status"
    #: Set for ``backend/http.return_error_code``: the endpoint answers with
    #: the backend's status when this error is the only outcome.
    expose_status: bool = False

    def __init__(
        self,
        message: str,
        *,
        backend_status: int,
        body: bytes = b"",
        content_type: str = "",
    ):
        super().__init__(message)
        self.backend_status = backend_status
        self.body = body
        self.content_type = content_type


class BackendTimeout(BackendError):
    code = "backend_timeout"


class BodyTooLarge(BackendError):
    code = "backend_body_too_large"


class DecodeError(BackendError):
    code = "backend_decode"
