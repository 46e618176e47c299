"""A real OpenID Connect provider for the test suite: Ory Hydra (``scripts/ensure-hydra.sh``) on free local ports.

Hydra issues, signs and checks everything OAuth2/OIDC (authorization code with PKCE enforced, client credentials,
JWT access tokens, rotating keys); by design it keeps no user accounts and hands sign-in and consent to a
"login and consent app". ``LoginApp`` is that app for the tests: static users with passwords and groups, a real
HTML form, and Hydra's admin API to accept the login and the consent (granting the requested scopes and audience,
with the user's name, e-mail and groups as claims). ``Browser`` drives a sign-in the way a browser would: it
follows redirects, keeps cookies, posts the form, and stops at the application's callback with the code.
"""

from __future__ import annotations

import hmac
import html
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx

REPO = Path(__file__).resolve().parent.parent

API_AUDIENCE = "leadpipe-api"
OTHER_AUDIENCE = "other-api"
CONSOLE_CLIENT = "leadpipe-console"
CONSOLE_SECRET = "console-secret-for-tests-only"
MACHINE_CLIENT = "leadpipe-machine"
MACHINE_SECRET = "machine-secret-for-tests-only"
ACCESS_TOKEN_KEYS = "hydra.jwt.access-token"
ID_TOKEN_KEYS = "hydra.openid.id-token"


@dataclass(frozen=True)
class User:
    username: str
    password: str = field(repr=False)
    name: str
    email: str
    groups: tuple[str, ...]


USERS = {
    u.username: u
    for u in (
        User("ana", "ana-password", "Ana Garcia", "ana@staff.example", ("privacy-office",)),
        User("sam", "sam-password", "Sam Sales", "sam@staff.example", ("sales-team",)),
        User("rita", "rita-password", "Rita Review", "rita@staff.example", ("spam-reviewers", "unmapped")),
        User("adam", "adam-password", "Adam Admin", "adam@staff.example", ("platform-admins",)),
        User("olga", "olga-password", "Olga Other", "olga@staff.example", ("marketing",)),
    )
}

#: The group -> role mapping the tests configure (``LEADPIPE_OIDC_GROUP_ROLES``).
GROUP_ROLES = {
    "privacy-office": ["dpo"],
    "sales-team": ["sales"],
    "spam-reviewers": ["reviewer"],
    "platform-admins": ["admin"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def hydra_binary() -> Path:
    """The cached Hydra build (``LEADPIPE_HYDRA_BIN`` overrides); builds it when missing."""
    given = os.environ.get("LEADPIPE_HYDRA_BIN")
    if given:
        return Path(given)
    done = subprocess.run(
        [str(REPO / "scripts" / "ensure-hydra.sh")], capture_output=True, text=True, timeout=1800, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/ensure-hydra.sh failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


class LoginApp:
    """Hydra's login and consent endpoints, backed by ``USERS``."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logins: list[str] = []  # usernames that signed in, for tests
        app = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/login":
                    self._page(200, _form(query.get("login_challenge", ""), error=None))
                elif url.path == "/consent":
                    self._redirect(app.accept_consent(query.get("consent_challenge", "")))
                else:
                    self._page(404, "not found")

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                challenge = form.get("login_challenge", "")
                user = USERS.get(form.get("username", ""))
                ok = user is not None and hmac.compare_digest(user.password, form.get("password", ""))
                if urlparse(self.path).path != "/login" or not ok or user is None:
                    self._page(200, _form(challenge, error="Wrong user name or password."))
                    return
                app.logins.append(user.username)
                self._redirect(app.accept_login(challenge, user))

            def _page(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="oidc-login-app")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def accept_login(self, challenge: str, user: User) -> str:
        answer = httpx.put(
            f"{self.admin_url}/admin/oauth2/auth/requests/login/accept",
            params={"login_challenge": challenge},
            json={"subject": f"user-{user.username}", "remember": False},
            timeout=10,
        )
        answer.raise_for_status()
        return str(answer.json()["redirect_to"])

    def accept_consent(self, challenge: str) -> str:
        request = httpx.get(
            f"{self.admin_url}/admin/oauth2/auth/requests/consent",
            params={"consent_challenge": challenge},
            timeout=10,
        )
        request.raise_for_status()
        asked = request.json()
        user = USERS[str(asked["subject"]).removeprefix("user-")]
        claims = {
            "name": user.name,
            "email": user.email,
            "preferred_username": user.username,
            "groups": list(user.groups),
        }
        answer = httpx.put(
            f"{self.admin_url}/admin/oauth2/auth/requests/consent/accept",
            params={"consent_challenge": challenge},
            json={
                "grant_scope": asked["requested_scope"],
                "grant_access_token_audience": asked["requested_access_token_audience"],
                "remember": False,
                "session": {
                    "id_token": claims,
                    "access_token": {k: claims[k] for k in ("groups", "name", "preferred_username")},
                },
            },
            timeout=10,
        )
        answer.raise_for_status()
        return str(answer.json()["redirect_to"])


def _form(challenge: str, error: str | None) -> str:
    message = f"<p role='alert'>{html.escape(error)}</p>" if error else ""
    return (
        "<!doctype html><title>Sign in</title><h1>Sign in</h1>"
        f"{message}<form method='post' action='/login'>"
        f"<input type='hidden' name='login_challenge' value='{html.escape(challenge, quote=True)}'>"
        "<label>User <input name='username'></label><label>Password <input name='password' type='password'></label>"
        "<button type='submit'>Sign in</button></form>"
    )


class Hydra:
    """One Hydra process (in-memory store) with the login app, a console client and a machine client."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.public_port, self.admin_port = free_port(), free_port()
        self.issuer = f"http://127.0.0.1:{self.public_port}"
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.login_app = LoginApp(self.admin_url)
        self.redirect_uri = f"http://127.0.0.1:{free_port()}/auth/callback"
        self._process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "hydra.log"

    def start(self, timeout_s: float = 60.0) -> None:
        self.login_app.start()
        config = self.workdir / "hydra.yml"
        config.write_text(
            "\n".join(
                [
                    "dsn: memory",
                    "serve:",
                    f"  public: {{port: {self.public_port}, host: 127.0.0.1}}",
                    f"  admin: {{port: {self.admin_port}, host: 127.0.0.1}}",
                    "urls:",
                    f"  self: {{issuer: '{self.issuer}'}}",
                    f"  login: '{self.login_app.url}/login'",
                    f"  consent: '{self.login_app.url}/consent'",
                    "secrets:",
                    "  system: ['test-system-secret-0123456789abcdef']",
                    "strategies:",
                    "  access_token: jwt",
                    "oauth2:",
                    "  allowed_top_level_claims: [groups, name, preferred_username]",
                    "  pkce: {enforced: true}",
                    "log: {level: warn, leak_sensitive_values: false}",
                    "",
                ]
            )
        )
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(self.binary), "serve", "all", "--dev", "-c", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{self.admin_url}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Hydra did not become ready:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        self._create_clients()
        self._warm_up(timeout_s)

    def _warm_up(self, timeout_s: float) -> None:
        """Hydra makes its RSA signing keys on first use (seconds on a busy machine, and it may drop the request that
        asked meanwhile): make them now, so the first test's discovery does not hit the verifier's short timeout."""
        deadline = time.monotonic() + timeout_s
        for path in ("/.well-known/openid-configuration", "/.well-known/jwks.json"):
            while True:
                try:
                    httpx.get(f"{self.issuer}{path}", timeout=timeout_s).raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self.login_app.stop()

    def _create_clients(self) -> None:
        for body in (
            {
                "client_id": CONSOLE_CLIENT,
                "client_secret": CONSOLE_SECRET,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "scope": "openid profile email offline_access",
                "redirect_uris": [self.redirect_uri],
                "audience": [API_AUDIENCE, OTHER_AUDIENCE],
                "token_endpoint_auth_method": "client_secret_basic",
                "access_token_strategy": "jwt",
            },
            {
                "client_id": MACHINE_CLIENT,
                "client_secret": MACHINE_SECRET,
                "grant_types": ["client_credentials"],
                "audience": [API_AUDIENCE, OTHER_AUDIENCE],
                "token_endpoint_auth_method": "client_secret_basic",
                "access_token_strategy": "jwt",
            },
        ):
            httpx.post(f"{self.admin_url}/admin/clients", json=body, timeout=30).raise_for_status()

    # ---- what tests do with it ---------------------------------------------------------------------------------

    def client_credentials_token(self, audience: str = API_AUDIENCE) -> str:
        answer = httpx.post(
            f"{self.issuer}/oauth2/token",
            data={"grant_type": "client_credentials", "audience": audience},
            auth=(MACHINE_CLIENT, MACHINE_SECRET),
            timeout=30,
        )
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def set_machine_token_lifespan(self, lifespan: str) -> None:
        """E.g. ``"1s"``: so a test can watch a real token expire."""
        httpx.put(
            f"{self.admin_url}/admin/clients/{MACHINE_CLIENT}/lifespans",
            json={"client_credentials_grant_access_token_lifespan": lifespan},
            timeout=10,
        ).raise_for_status()

    def rotate_keys(self, key_set: str = ACCESS_TOKEN_KEYS) -> str:
        """A new signing key in the set; Hydra signs with the newest from now on. Returns its key id."""
        time.sleep(1.1)  # Hydra orders keys by creation time in seconds: the new one must be strictly newer
        kid = f"rotated-{time.time_ns()}"
        answer = httpx.post(
            f"{self.admin_url}/admin/keys/{key_set}", json={"alg": "RS256", "kid": kid, "use": "sig"}, timeout=60
        )
        answer.raise_for_status()
        return kid


class Browser:
    """Follows a sign-in through the provider and the login form like a browser, until the app's callback."""

    def __init__(self) -> None:
        self.http = httpx.Client(follow_redirects=False, timeout=30)

    def sign_in(self, start_url: str, redirect_uri: str, username: str, password: str) -> dict[str, str]:
        """The query of the callback (``code`` and ``state``, or ``error``)."""
        response = self.http.get(start_url)
        for _ in range(20):
            if response.status_code in (301, 302, 303, 307, 308):
                location = str(response.headers["location"])
                if location.startswith(redirect_uri):
                    return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}
                response = self.http.get(httpx.URL(str(response.url)).join(location))
            elif response.status_code == 200 and (challenge := _hidden(response.text, "login_challenge")) is not None:
                response = self.http.post(
                    str(response.url.copy_with(query=None)),
                    content=urlencode({"login_challenge": challenge, "username": username, "password": password}),
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
                if response.status_code == 200:
                    raise AssertionError("the login form refused the credentials")
            else:
                raise AssertionError(
                    f"unexpected answer {response.status_code} at {response.url}: {response.text[:300]}"
                )
        raise AssertionError("too many redirects")

    def close(self) -> None:
        self.http.close()


def _hidden(page: str, name: str) -> str | None:
    marker = f"name='{name}' value='"
    start = page.find(marker)
    if start < 0:
        return None
    start += len(marker)
    return html.unescape(page[start : page.index("'", start)])


def running_hydra(workdir: Path) -> Iterator[Hydra]:
    hydra = Hydra(hydra_binary(), workdir)
    hydra.start()
    try:
        yield hydra
    finally:
        hydra.stop()
