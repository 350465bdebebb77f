"""``GET /dashboard/``: the fleet manager's page, served by the central.

Three files shipped in the package (``busd/central/static/``: the page,
its script and its style sheet) are read once when the part is made, with
:mod:`importlib.resources` so they are found inside a wheel or a zipapp
too, and answered from memory: no build step, no CDN, nothing fetched
from the Internet. The page reads ``/fleet/health``, ``/fleet/events``
and ``/fleet/stream`` with URLs relative to itself (so a reverse proxy may
mount the central under a prefix); ``/dashboard`` redirects to
``/dashboard/`` for that reason.

Every answer carries a strict Content-Security-Policy (the page's own
origin only; no inline script or style) and ``Cache-Control: no-cache``
with an ``ETag``, so browsers revalidate and get a 304 for an unchanged
file. ``"dashboard": false`` in ``busgw/central`` turns the routes off
(checked for each config generation). The routes are guarded by the
service's default validator like the fleet routes; a browser sends its
token in the validator's ``cookie_key`` cookie.
"""

from __future__ import annotations

import hashlib
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING, Any, Dict, Tuple

from twisted.web.iweb import IRequest

from busd.guards import guarded, route_guard

if TYPE_CHECKING:
    from busd.app import GatewayApp

__all__ = ["DashboardPart", "make_part", "load_files", "CSP", "PATH"]

PATH = "/dashboard/"
#: What the page may load: its own origin's script, style sheet and
#: stream; no inline code, no frames around it.
CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; "
    b"img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
    b"form-action 'none'; frame-ancestors 'none'"
)
_FILES = {
    "": ("index.html", b"text/html; charset=utf-8"),
    "app.js": ("app.js", b"text/javascript; charset=utf-8"),
    "style.css": ("style.css", b"text/css; charset=utf-8"),
}


def make_part(role: Any) -> "DashboardPart":
    """The dashboard part (its routes follow ``dashboard`` per config)."""
    return DashboardPart(role)


def load_files() -> Dict[str, Tuple[bytes, bytes, bytes]]:
    """Each served name -> (body, content type, ETag), from the package."""
    static = resources.files("busd.central").joinpath("static")
    out: Dict[str, Tuple[bytes, bytes, bytes]] = {}
    for name, (filename, content_type) in _FILES.items():
        body = static.joinpath(filename).read_bytes()
        etag = b'"%s"' % hashlib.sha256(body).hexdigest()[:20].encode("ascii")
        out[name] = (body, content_type, etag)
    return out


class DashboardPart:
    """Serves the page and its two assets from memory."""

    def __init__(self, role: Any):
        self.role = role
        self.files = load_files()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def fleet_changed(self) -> None:
        pass

    def install(self, app: "GatewayApp") -> None:
        central = app.config.central or self.role.config
        if not central.dashboard:
            return
        for name in self.files:
            route = PATH + name
            guard = route_guard(app.config.default_auth, app.guard_context, f"GET {route}")
            label = "dashboard" + (f" {name}" if name else "")
            app.add_route(
                route, ["GET"], label, guarded(guard, partial(self.render, name=name))
            )

    def render(self, request: IRequest, name: str) -> bytes:
        """Answer ``request`` with file ``name`` ("" is the page)."""
        if name == "" and not request.path.endswith(b"/"):
            # The page's relative URLs need the trailing slash.
            request.setResponseCode(302)
            request.setHeader(b"Location", b"dashboard/")
            request.setHeader(b"Content-Length", b"0")
            return b""
        body, content_type, etag = self.files[name]
        request.setHeader(b"Cache-Control", b"no-cache")
        request.setHeader(b"ETag", etag)
        request.setHeader(b"Content-Security-Policy", CSP)
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Referrer-Policy", b"no-referrer")
        request.setHeader(b"X-Frame-Options", b"DENY")
        if etag in _etags(request.getHeader(b"if-none-match")):
            request.setResponseCode(304)
            return b""
        request.setHeader(b"Content-Type", content_type)
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return body


def _etags(header: Any) -> Tuple[bytes, ...]:
    if not header:
        return ()
    return tuple(t.strip().removeprefix(b"W/") for t in header.split(b","))
