"""A small OpenID Connect provider for the browser tests: discovery, a JWKS holding an RSA key generated
here, an authorization endpoint that signs in a fixed test user at once and sends the browser back with
a code, a token endpoint that checks the PKCE verifier (S256) and answers an RS256 ID token and access
token, and an end-session endpoint. Served by uvicorn in a thread on a free port (its own event loop:
the tests' blocking waits do not stall it)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Form, HTTPException
from fastapi.responses import JSONResponse, RedirectResponse, Response
from jwt.algorithms import RSAAlgorithm

API_AUDIENCE = "guanxi-api"  # the gateway's GATEWAY_JWT_AUDIENCE
TEST_USER = {"sub": "sso-mei", "name": "韩梅 Mei", "preferred_username": "mei", "email": "mei@example.com",
             "roles": ["agent"], "team": "team-east"}


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class Grant:
    redirect_uri: str
    challenge: str
    nonce: str


@dataclass
class SsoProvider:
    port: int
    client_id: str
    redirect_uris: list[str]
    post_logout_uris: list[str]
    user: dict[str, Any] = field(default_factory=lambda: dict(TEST_USER))
    token_ttl: int = 3600
    grants: dict[str, Grant] = field(default_factory=dict)
    exchanged: list[str] = field(default_factory=list)  # codes exchanged for tokens
    refused: list[str] = field(default_factory=list)  # why the token endpoint said no
    logouts: list[dict[str, Any]] = field(default_factory=list)  # the ID tokens behind each sign-out

    def __post_init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key())) | {"kid": "test-1", "use": "sig", "alg": "RS256"}
        self.lock = threading.Lock()

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "test-1"})

    def app(self) -> FastAPI:
        app = FastAPI(title="test identity provider")

        @app.get("/.well-known/openid-configuration")
        async def discovery() -> dict[str, Any]:
            return {"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
                    "end_session_endpoint": f"{self.issuer}/logout", "response_types_supported": ["code"],
                    "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"], "token_endpoint_auth_methods_supported": ["none"],
                    "scopes_supported": ["openid", "profile", "email"]}

        @app.get("/jwks")
        async def jwks() -> dict[str, Any]:
            return {"keys": [self.jwk]}

        @app.get("/authorize")
        async def authorize(response_type: str, client_id: str, redirect_uri: str, scope: str, state: str, nonce: str,
                            code_challenge: str, code_challenge_method: str) -> Response:
            # A redirect URI that is not registered is never redirected to (an open redirector otherwise).
            if client_id != self.client_id or redirect_uri not in self.redirect_uris:
                raise HTTPException(400, "unknown client or redirect_uri")
            if response_type != "code" or code_challenge_method != "S256" or "openid" not in scope.split():
                return RedirectResponse(f"{redirect_uri}?{urlencode({'error': 'invalid_request', 'state': state})}", 302)
            code = secrets.token_urlsafe(24)
            with self.lock:
                self.grants[code] = Grant(redirect_uri, code_challenge, nonce)
            # The test user is signed in at once (no login form).
            return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state, 'iss': self.issuer})}", 302)

        @app.post("/token")
        async def token(grant_type: Annotated[str, Form()], code: Annotated[str, Form()],
                        redirect_uri: Annotated[str, Form()], client_id: Annotated[str, Form()] = "",
                        code_verifier: Annotated[str, Form()] = "") -> Response:
            def refuse(why: str) -> Response:
                with self.lock:
                    self.refused.append(why)
                return JSONResponse({"error": "invalid_grant", "error_description": why}, status_code=400)

            with self.lock:
                grant = self.grants.pop(code, None)  # a code is used once
            if grant_type != "authorization_code" or client_id != self.client_id:
                return refuse("wrong grant type or client")
            if grant is None:
                return refuse("unknown or used code")
            if redirect_uri != grant.redirect_uri:
                return refuse("redirect_uri differs from the authorization request's")
            if not code_verifier or s256(code_verifier) != grant.challenge:
                return refuse("PKCE verification failed")
            with self.lock:
                self.exchanged.append(code)
            now = int(time.time())
            user = self.user
            access = {"iss": self.issuer, "aud": API_AUDIENCE, "sub": user["sub"], "iat": now, "exp": now + self.token_ttl,
                      "roles": user["roles"], "team": user["team"], "azp": self.client_id}
            access_token = self.sign(access)
            at_hash = base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()[:16]).rstrip(b"=").decode()
            id_token = self.sign({"iss": self.issuer, "aud": self.client_id, "sub": user["sub"], "iat": now,
                                  "exp": now + self.token_ttl, "nonce": grant.nonce, "at_hash": at_hash,
                                  **{k: v for k, v in user.items() if k != "sub"}})
            return JSONResponse({"access_token": access_token, "token_type": "Bearer", "expires_in": self.token_ttl,
                                 "id_token": id_token, "scope": "openid profile email"},
                                headers={"Cache-Control": "no-store"})

        @app.get("/logout")
        async def logout(post_logout_redirect_uri: str, id_token_hint: str = "", client_id: str = "") -> Response:
            if post_logout_redirect_uri not in self.post_logout_uris:
                raise HTTPException(400, "unregistered post_logout_redirect_uri")
            claims = jwt.decode(id_token_hint, self.key.public_key(), algorithms=["RS256"], audience=self.client_id,
                                issuer=self.issuer, options={"verify_exp": False}) if id_token_hint else {}
            with self.lock:
                self.logouts.append({"client_id": client_id, **claims})
            return RedirectResponse(post_logout_redirect_uri, 302)

        return app


@contextmanager
def serving(provider: SsoProvider) -> Iterator[SsoProvider]:
    server = uvicorn.Server(uvicorn.Config(provider.app(), host="127.0.0.1", port=provider.port, lifespan="off",
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="test-idp", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the test identity provider did not start on {provider.port}")
        time.sleep(0.05)
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(10)
