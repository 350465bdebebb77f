"""The dashboard's routes through a GatewayApp and StubTreq: the three
files, their headers, revalidation, the redirect, ``dashboard: false``
and the default validator."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Tuple

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from busd.app import GatewayApp
from busd.auth.config import ValidatorConfig
from busd.central.dashboard import CSP, DashboardPart, load_files
from busd.config._central import CentralRoleConfig
from busd.config.model import GatewayConfig
from busd.testing import JSONBackend


def serve(central: CentralRoleConfig, auth: Any = None) -> StubTreq:
    clock = Clock()
    role = SimpleNamespace(config=central, clock=clock, hub=None)
    app = GatewayApp(
        GatewayConfig(central=central, default_auth=auth),
        StubTreq(JSONBackend({})),
        clock,
    )
    DashboardPart(role).install(app)
    return StubTreq(app.resource())


class DashboardTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.stub = serve(CentralRoleConfig(state_dir="/nonexistent"))

    def get(self, path: str, **kw: Any) -> Tuple[Any, bytes]:
        d = self.stub.get("http://central" + path, **kw)
        self.stub.flush()
        response = self.successResultOf(d)
        return response, self.successResultOf(response.content())

    def test_files(self) -> None:
        """The page, script and style sheet are served with their types and the CSP."""
        files = load_files()
        for path, name, kind in [
            ("/dashboard/", "", b"text/html; charset=utf-8"),
            ("/dashboard/app.js", "app.js", b"text/javascript; charset=utf-8"),
            ("/dashboard/style.css", "style.css", b"text/css; charset=utf-8"),
        ]:
            response, body = self.get(path)
            headers = response.headers
            self.assertEqual(response.code, 200, path)
            self.assertEqual(body, files[name][0])
            self.assertEqual(headers.getRawHeaders(b"content-type"), [kind])
            self.assertEqual(headers.getRawHeaders(b"cache-control"), [b"no-cache"])
            self.assertEqual(headers.getRawHeaders(b"content-security-policy"), [CSP])
            self.assertEqual(headers.getRawHeaders(b"x-content-type-options"), [b"nosniff"])

    def test_page_is_self_contained(self) -> None:
        """The page loads nothing from elsewhere and has no inline script or style."""
        files = load_files()
        page = files[""][0]
        for text in (page, files["app.js"][0], files["style.css"][0]):
            self.assertNotIn(b"http://", text)
            self.assertNotIn(b"https://", text)
            self.assertNotIn(b"@import", text)
        self.assertIn(b'<script src="app.js" defer></script>', page)
        self.assertNotIn(b"<style", page)
        self.assertNotIn(b"style=", page)
        self.assertNotIn(b"onclick", page)

    def test_not_modified(self) -> None:
        """A matching If-None-Match gets a 304 with no body."""
        response, _ = self.get("/dashboard/app.js")
        etag = response.headers.getRawHeaders(b"etag")[0]
        response, body = self.get(
            "/dashboard/app.js", headers={b"If-None-Match": [b'W/"x", ' + etag]}
        )
        self.assertEqual((response.code, body), (304, b""))

    def test_redirect_to_slash(self) -> None:
        """/dashboard redirects to dashboard/, so the page's relative URLs work."""
        response, _ = self.get("/dashboard", allow_redirects=False)
        self.assertEqual(response.code, 302)
        self.assertEqual(response.headers.getRawHeaders(b"location"), [b"dashboard/"])

    def test_turned_off(self) -> None:
        """dashboard: false leaves the routes out."""
        self.stub = serve(CentralRoleConfig(state_dir="/nonexistent", dashboard=False))
        response, _ = self.get("/dashboard/")
        self.assertEqual(response.code, 404)

    def test_guarded(self) -> None:
        """With a service validator the page needs a token."""
        auth = ValidatorConfig(alg="RS256", jwk_url="https://keys.invalid/jwks.json")
        self.stub = serve(CentralRoleConfig(state_dir="/nonexistent"), auth)
        response, _ = self.get("/dashboard/")
        self.assertEqual(response.code, 401)

