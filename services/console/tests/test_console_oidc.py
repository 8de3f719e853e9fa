"""Single sign-on through the organisation's OpenID Connect provider, fast: the flow's pure parts (the
PKCE pair, the state and nonce checks, the person from the claims, what a failure says), the token
checks on real RS256 signatures, the provider client on a mocked transport, and the pages with the
in-memory provider (``identity.fake``). The real browser against a provider on a port: tests/console."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from console_testkit import CSRF, audit
from guanxi_console.app import build, main
from guanxi_console.domain import oidc
from guanxi_console.domain.oidc import FAILURES, PendingSignIn, SignInFailed
from guanxi_console.gateway import InMemoryGateway
from guanxi_console.identity import HttpIdentityProvider, ProviderRefused, ProviderUnavailable, TokenInvalid
from guanxi_console.identity import tokens as tokens_
from guanxi_console.identity.fake import InMemoryIdentityProvider, new_rsa_key, public_jwk
from guanxi_console.settings import ConsoleSettings
from guanxi_console.store import InMemoryConsoleStore
from guanxi_shared.clock import ManualClock
from guanxi_shared.testing import serving

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
ISSUER = "https://id.example.test"
CLIENT = "guanxi-console"
SECRET = "s3cr:t"  # noqa: S105 - a test client's secret


def pending(**over: Any) -> PendingSignIn:
    base = {"state": "s" * 43, "nonce": "n" * 43, "verifier": "v" * 86, "next": "/queue", "locale": "zh-CN",
            "created_at": NOW}
    return PendingSignIn(**(base | over))


def failed(call: Any, *args: Any, **kwargs: Any) -> SignInFailed:
    with pytest.raises(SignInFailed) as caught:
        call(*args, **kwargs)
    return caught.value


# ------------------------------------------------------------------------------------------ the pure parts


def test_the_pkce_pair_is_s256_of_a_fresh_verifier() -> None:
    # RFC 7636 appendix B.
    assert oidc.pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    verifier, challenge = oidc.pkce_pair()
    assert 43 <= len(verifier) <= 128 and re.fullmatch(r"[A-Za-z0-9\-._~]+", verifier)
    assert challenge == oidc.pkce_challenge(verifier) and "=" not in challenge
    assert oidc.pkce_pair()[0] != verifier
    one, two = oidc.new_pending("/queue", "en", NOW), oidc.new_pending("/queue", "en", NOW)
    assert len({one.state, one.nonce, one.verifier, two.state, two.nonce, two.verifier}) == 6


def test_the_authorization_request_carries_state_nonce_and_the_challenge_never_the_verifier() -> None:
    p = pending()
    url = oidc.authorization_url("https://id.example.test/auth?realm=x", client_id=CLIENT,
                                 redirect_uri="https://crm.example.com/signin/oidc/callback",
                                 scopes=["openid", "profile"], pending=p)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith("https://id.example.test/auth?realm=x&")
    assert query == {"realm": "x", "response_type": "code", "client_id": CLIENT, "scope": "openid profile",
                     "redirect_uri": "https://crm.example.com/signin/oidc/callback", "state": p.state, "nonce": p.nonce,
                     "code_challenge": oidc.pkce_challenge(p.verifier), "code_challenge_method": "S256", "ui_locales": "zh-CN"}
    assert p.verifier not in url
    assert oidc.pending_key("browser-1", p.state) != oidc.pending_key("browser-2", p.state)
    assert p.state not in oidc.pending_key("browser-1", p.state)


def test_the_answer_must_belong_to_a_sign_in_of_this_browser() -> None:
    p = pending()
    ok = {"code": "c-1", "state": p.state, "iss": ISSUER}
    assert oidc.check_answer(ok, p, NOW + timedelta(minutes=9), ISSUER) == "c-1"
    assert oidc.check_answer({"code": "c-1", "state": p.state}, p, NOW, ISSUER + "/") == "c-1"  # iss is optional
    assert failed(oidc.check_answer, {"error": "access_denied", "state": p.state}, p, NOW, ISSUER).code == "denied"
    other = failed(oidc.check_answer, {"error": "server_error", "error_description": "boom"}, None, NOW, ISSUER)
    assert other.code == "provider_error" and other.detail == "server_error: boom"
    assert failed(oidc.check_answer, ok, None, NOW, ISSUER).code == "bad_state"  # no such sign-in (tampered state)
    assert failed(oidc.check_answer, ok | {"state": "x" + p.state[1:]}, p, NOW, ISSUER).code == "bad_state"
    assert failed(oidc.check_answer, {"code": "c-1"}, p, NOW, ISSUER).code == "bad_state"
    assert failed(oidc.check_answer, ok, p, NOW + timedelta(minutes=10), ISSUER).code == "bad_state"  # too late
    assert failed(oidc.check_answer, ok | {"iss": "https://evil.example"}, p, NOW, ISSUER).code == "bad_response"
    assert failed(oidc.check_answer, {"state": p.state}, p, NOW, ISSUER).code == "bad_response"
    assert len(failed(oidc.check_answer, {"error": "x", "error_description": "d" * 500}, p, NOW, ISSUER).detail) == 200


def test_the_nonce_must_be_this_sign_ins() -> None:
    oidc.check_nonce({"nonce": "n-1"}, "n-1")
    for claims in ({"nonce": "n-2"}, {}, {"nonce": 1}):
        assert failed(oidc.check_nonce, claims, "n-1").code == "bad_token"


def test_the_person_comes_from_the_claims_the_gateway_reads() -> None:
    id_claims = {"sub": "u-1", "name": "韩梅 Mei", "roles": ["agent"], "team": "team-east"}
    person = oidc.person_from_claims(id_claims, None, "roles")
    assert person == oidc.Person("u-1", "韩梅 Mei", ["agent"], "team-east")
    # The access token (what the gateway verifies) wins for roles and team; a dotted claim path; unknown
    # roles and machine roles are not the console's.
    access = {"sub": "u-1", "realm_access": {"roles": ["offline_access", "supervisor", "integration", "agent"]},
              "team": "team-west"}
    person = oidc.person_from_claims({"sub": "u-1", "preferred_username": "mei"}, access, "realm_access.roles")
    assert person.roles == ["agent", "supervisor"] and person.team == "team-west" and person.name == "mei"
    assert oidc.person_from_claims({"sub": "u-1", "roles": "auditor, admin"}, {"sub": "u-1"}, "roles").roles == ["admin",
                                                                                                                "auditor"]
    assert oidc.person_from_claims({"sub": "u-1", "email": "m@example.com", "roles": ["agent"]}, None, "roles").name == \
        "m@example.com"
    assert oidc.person_from_claims({"sub": "u-1", "name": " ", "roles": ["agent"]}, None, "roles").name == "u-1"
    assert failed(oidc.person_from_claims, {"sub": "u-1", "roles": ["offline_access"]}, None, "roles").code == "no_role"
    assert failed(oidc.person_from_claims, {"sub": "u-1"}, {"sub": "u-2", "roles": ["agent"]}, "roles").code == "bad_token"
    assert failed(oidc.person_from_claims, {"roles": ["agent"]}, None, "roles").code == "bad_token"


def test_the_session_ends_with_the_access_token() -> None:
    exp = int((NOW + timedelta(minutes=5)).timestamp())
    assert oidc.token_expiry(NOW, 3600, {"exp": exp}, {}) == NOW + timedelta(minutes=5)
    assert oidc.token_expiry(NOW, 900, None, {"exp": exp}) == NOW + timedelta(minutes=15)
    assert oidc.token_expiry(NOW, "600", None, {"exp": exp}) == NOW + timedelta(minutes=10)
    assert oidc.token_expiry(NOW, None, None, {"exp": exp}) == NOW + timedelta(minutes=5)
    assert failed(oidc.token_expiry, NOW, None, None, {}).code == "bad_token"
    assert oidc.landing("/queue", ["auditor"]) == "/me" and oidc.landing("/queue", ["agent"]) == "/queue"
    assert oidc.landing("/customers/c1", ["auditor"]) == "/customers/c1"


def test_every_failure_says_what_happened_and_the_way_back() -> None:
    assert set(FAILURES) == set(oidc.FailureCode.__args__)  # type: ignore[attr-defined]
    assert oidc.failure_for_provider_error("access_denied") == "denied"
    assert oidc.failure_for_provider_error("login_required") == "provider_error"
    assert FAILURES["unreachable"].status == 503 and FAILURES["denied"].status == 403
    assert FAILURES["bad_state"].retry and not FAILURES["no_role"].retry


def test_settings_derive_the_redirect_uri_and_refuse_half_a_configuration() -> None:
    settings = ConsoleSettings(environment="local", public_url="https://crm.example.com/", oidc_issuer=ISSUER,
                               oidc_client_id=CLIENT, oidc_scopes="openid profile email groups")
    assert settings.oidc_redirect_uri == "https://crm.example.com/signin/oidc/callback"
    assert settings.oidc_post_logout_uri == "https://crm.example.com/signin/oidc/signed-out"
    assert settings.oidc_scope_list == ["openid", "profile", "email", "groups"]
    assert ConsoleSettings(environment="local").oidc_scope_list == ["openid", "profile", "email"]
    with pytest.raises(ValueError, match="CONSOLE_OIDC_CLIENT_ID"):
        ConsoleSettings(environment="local", oidc_issuer=ISSUER)
    with pytest.raises(ValueError, match="include openid"):
        ConsoleSettings(environment="local", oidc_issuer=ISSUER, oidc_client_id=CLIENT, oidc_scopes="profile")
    with pytest.raises(ValueError, match="CONSOLE_OIDC_ISSUER and CONSOLE_OIDC_CLIENT_ID must be set outside") as refused:
        ConsoleSettings(environment="production", internal_secret="i" * 40, session_secret="s" * 40)
    assert "SESSION_SECRET" not in str(refused.value)


def test_production_without_the_provider_refuses_to_start_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in {"GUANXI_ENV": "production", "GUANXI_INTERNAL_SECRET": "i" * 40,
                        "CONSOLE_SESSION_SECRET": "s" * 40, "CONSOLE_OIDC_ISSUER": ISSUER}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CONSOLE_OIDC_CLIENT_ID", raising=False)
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("guanxi-console cannot start: CONSOLE_OIDC_CLIENT_ID must be set")


# ------------------------------------------------------------------------------------------ the tokens


def _sign(key: Any, claims: dict[str, Any], kid: str = "k1", alg: str = "RS256") -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def _at_hash(access_token: str) -> str:
    import hashlib

    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def test_the_id_token_is_verified_against_the_providers_keys() -> None:
    key, other = new_rsa_key(), new_rsa_key()
    jwks = {"keys": [public_jwk(key, "k1")]}
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": CLIENT, "sub": "u-1", "iat": now, "exp": now + 300, "nonce": "n"}

    def verify(token: str, access: str = "at") -> dict[str, Any]:
        return tokens_.verify_id_token(token, access, jwks, issuer=ISSUER, client_id=CLIENT, algorithms=("RS256", "ES256"))

    assert verify(_sign(key, claims))["sub"] == "u-1"
    assert verify(_sign(key, claims | {"aud": [CLIENT, "x"], "azp": CLIENT}))["sub"] == "u-1"
    assert verify(_sign(key, claims | {"at_hash": _at_hash("the-access-token")}), "the-access-token")["sub"] == "u-1"
    refused = {
        "another key": _sign(other, claims),
        "another audience": _sign(key, claims | {"aud": "someone-else"}),
        "another issuer": _sign(key, claims | {"iss": "https://evil.example"}),
        "expired": _sign(key, claims | {"exp": now - 120}),
        "no expiry": _sign(key, {k: v for k, v in claims.items() if k != "exp"}),
        "several audiences, not ours": _sign(key, claims | {"aud": [CLIENT, "x"], "azp": "x"}),
        "another access token": _sign(key, claims | {"at_hash": _at_hash("another")}),
        "a shared secret": jwt.encode(claims, "s" * 32, algorithm="HS256", headers={"kid": "k1"}),
        "unsigned": jwt.encode(claims, "", algorithm="none", headers={"kid": "k1"}),
        "not a JWT": "opaque",
    }
    for what, token in refused.items():
        with pytest.raises(TokenInvalid):
            verify(token)
            pytest.fail(what)
    with pytest.raises(tokens_.UnknownKey):
        verify(_sign(key, claims, kid="k2"))


# ------------------------------------------------------------------------------------------ the provider client


@dataclass
class MockProvider:
    """The provider's HTTP endpoints on httpx's MockTransport: what HttpIdentityProvider sends, counted."""

    key: Any
    kid: str = "k1"
    down: bool = False
    token_status: int = 200
    seen: list[httpx.Request] | None = None
    methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post")
    issuer: str = ISSUER

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert self.seen is not None
        self.seen.append(request)
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={
                "issuer": self.issuer, "authorization_endpoint": f"{ISSUER}/authorize", "token_endpoint": f"{ISSUER}/token",
                "jwks_uri": f"{ISSUER}/jwks", "end_session_endpoint": f"{ISSUER}/logout",
                "token_endpoint_auth_methods_supported": list(self.methods),
                "id_token_signing_alg_values_supported": ["RS256"]})
        if path == "/jwks":
            return httpx.Response(200, json={"keys": [public_jwk(self.key, self.kid)]})
        if path == "/token":
            if self.token_status != 200:
                return httpx.Response(self.token_status, json={"error": "invalid_grant", "error_description": "PKCE"})
            answer = {"token_type": "Bearer", "access_token": "at", "id_token": "it", "expires_in": 300}
            return httpx.Response(200, json=answer)
        return httpx.Response(404)


def _client(mock: MockProvider, secret: str | None = None) -> tuple[HttpIdentityProvider, list[float]]:
    mock.seen = []
    settings = ConsoleSettings(environment="local", public_url="https://crm.example.com", oidc_issuer=ISSUER,
                               oidc_client_id=CLIENT, oidc_client_secret=secret)
    now = [1000.0]
    client = httpx.AsyncClient(transport=httpx.MockTransport(mock.handler))
    return HttpIdentityProvider(settings, client=client, clock=lambda: now[0]), now


async def test_discovery_is_cached_and_must_name_the_configured_issuer() -> None:
    mock = MockProvider(new_rsa_key())
    provider, now = _client(mock)
    first = await provider.metadata()
    assert first.token_endpoint == f"{ISSUER}/token" and first.end_session_endpoint == f"{ISSUER}/logout"
    await provider.metadata()
    assert len(mock.seen or []) == 1
    now[0] += 3601
    mock.down = True
    assert await provider.metadata() == first  # a stale copy serves while the provider is down
    fresh, _ = _client(MockProvider(new_rsa_key(), down=True))
    with pytest.raises(ProviderUnavailable):
        await fresh.metadata()
    mixed_up, _ = _client(MockProvider(new_rsa_key(), issuer="https://evil.example"))
    with pytest.raises(ProviderUnavailable, match="evil"):
        await mixed_up.metadata()


async def test_the_code_exchange_sends_the_verifier_and_authenticates_the_client() -> None:
    mock = MockProvider(new_rsa_key())
    public, _ = _client(mock)
    answer = await public.exchange("code-1", "verifier-1")
    assert (answer.access_token, answer.id_token, answer.expires_in) == ("at", "it", 300)
    sent = mock.seen[-1]  # type: ignore[index]
    form = {k: v[0] for k, v in parse_qs(sent.content.decode()).items()}
    assert form == {"grant_type": "authorization_code", "code": "code-1", "code_verifier": "verifier-1",
                    "redirect_uri": "https://crm.example.com/signin/oidc/callback", "client_id": CLIENT}
    assert "authorization" not in sent.headers
    confidential, _ = _client(mock, secret=SECRET)
    await confidential.exchange("code-2", "verifier-2")
    basic = base64.b64decode(mock.seen[-1].headers["authorization"].removeprefix("Basic ")).decode()  # type: ignore[index]
    assert basic == f"{CLIENT}:s3cr%3At"
    mock.methods = ("client_secret_post",)
    posting, _ = _client(mock, secret=SECRET)
    await posting.exchange("code-3", "verifier-3")
    assert "client_secret=s3cr%3At" in mock.seen[-1].content.decode()  # type: ignore[index]
    mock.token_status = 400
    with pytest.raises(ProviderRefused) as refused:
        await public.exchange("code-4", "wrong")
    assert refused.value.error == "invalid_grant"
    mock.token_status = 502
    with pytest.raises(ProviderUnavailable):
        await public.exchange("code-5", "verifier-5")


async def test_rotated_keys_are_fetched_again() -> None:
    key = new_rsa_key()
    mock = MockProvider(key)
    provider, now = _client(mock)
    t = int(time.time())
    claims = {"iss": ISSUER, "aud": CLIENT, "sub": "u-1", "iat": t, "exp": t + 300}
    assert (await provider.verify_id_token(_sign(key, claims), "at"))["sub"] == "u-1"
    mock.key, mock.kid = new_rsa_key(), "k2"
    now[0] += 60
    assert (await provider.verify_id_token(_sign(mock.key, claims, kid="k2"), "at"))["sub"] == "u-1"
    access = _sign(mock.key, {"iss": ISSUER, "aud": "guanxi-api", "sub": "u-1", "exp": t + 300, "roles": ["agent"]}, kid="k2")
    assert (await provider.access_token_claims(access) or {})["roles"] == ["agent"]
    assert await provider.access_token_claims("opaque-token") is None
    assert await provider.access_token_claims(_sign(new_rsa_key(), {"sub": "u-1"}, kid="k2")) is None


# ------------------------------------------------------------------------------------------ the pages


@dataclass
class Sso:
    client: httpx.AsyncClient
    idp: InMemoryIdentityProvider
    gateway: InMemoryGateway
    store: InMemoryConsoleStore
    clock: ManualClock

    async def start(self, next_path: str | None = None) -> str:
        started = await self.client.get("/signin/oidc", params={"next": next_path} if next_path else None)
        assert started.status_code == 303, started.text
        return started.headers["location"]

    async def callback(self, url: str) -> httpx.Response:
        parts = urlsplit(url)
        assert parts.path == "/signin/oidc/callback"
        return await self.client.get(f"{parts.path}?{parts.query}")

    async def sign_in(self, user: str = "mei", next_path: str | None = None) -> httpx.Response:
        return await self.callback(self.idp.authorize(await self.start(next_path), user))


@pytest.fixture
async def sso() -> AsyncIterator[Sso]:
    clock = ManualClock(datetime.now(UTC))
    idp = InMemoryIdentityProvider(issuer=ISSUER, client_id=CLIENT)
    gateway, store = InMemoryGateway(clock.now()), InMemoryConsoleStore()
    settings = ConsoleSettings(environment="local", public_url="http://console", oidc_issuer=ISSUER, oidc_client_id=CLIENT)
    app = build(settings, clock=clock, gateway=gateway, store=store, identity=idp, tracing=False)
    async with serving(app, "http://console") as client:
        yield Sso(client, idp, gateway, store, clock)


def refusal(page: httpx.Response, status: int, words: str) -> None:
    assert page.status_code == status, page.text
    assert words in page.text, page.text
    assert "gx_session=" not in page.headers.get("set-cookie", "")
    assert audit(page.text) == []


async def test_single_sign_on_opens_a_session_with_the_providers_token(sso: Sso) -> None:
    page = await sso.client.get("/signin")
    assert 'href="/signin/oidc"' in page.text
    location = await sso.start()
    assert location.startswith(f"{ISSUER}/authorize?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["redirect_uri"] == "http://console/signin/oidc/callback" and query["code_challenge_method"] == "S256"
    # The verifier and the nonce stay on the server; the browser holds a random id of itself.
    (held,) = sso.store.pending_docs()
    assert held["verifier"] not in location and held["state"] == query["state"] and held["nonce"] == query["nonce"]
    assert held["verifier"] not in repr(sso.client.cookies.jar)

    landed = await sso.callback(sso.idp.authorize(location))
    assert landed.status_code == 303 and landed.headers["location"] == "/queue"
    assert sso.store.pending_docs() == []  # used up
    (doc,) = sso.store.session_docs()
    assert (doc["subject"], doc["name"], doc["roles"], doc["team"]) == ("sso-mei", "韩梅 Mei", ["agent"], "team-east")
    claims = jwt.decode(doc["token"], options={"verify_signature": False})
    assert claims["iss"] == ISSUER and claims["aud"] == "guanxi-api"  # the provider's token: the console minted nothing
    assert doc["token_expires_at"] == datetime.fromtimestamp(claims["exp"], UTC)
    queue = await sso.client.get("/queue")
    assert queue.status_code == 200 and "韩梅 Mei" in queue.text and doc["token"] not in queue.text
    assert sso.gateway.calls[-1][2] == "sso-mei"  # the gateway was called with the provider's token
    assert f"form-action 'self' {ISSUER}" in queue.headers["content-security-policy"]


async def test_the_person_returns_where_they_were_and_an_auditor_to_the_account_page(sso: Sso) -> None:
    sso.idp.users["audrey"] = {"sub": "sso-audrey", "name": "Audrey", "roles": ["auditor"]}
    landed = await sso.sign_in("audrey")
    assert landed.headers["location"] == "/me"
    page = await sso.client.get("/signin", params={"next": "/customers/c-1"})
    assert 'href="/signin/oidc?next=/customers/c-1"' in page.text
    again = await sso.sign_in("mei", "/customers/c-1")
    assert again.headers["location"] == "/customers/c-1"
    assert [d["subject"] for d in sso.store.session_docs()] == ["sso-mei"]  # the previous session ended
    assert (await sso.start("https://evil.example/x")) and sso.store.pending_docs()[-1]["next"] == "/queue"


async def test_a_tampered_state_a_replayed_answer_or_another_browser_is_refused(sso: Sso) -> None:
    answer = sso.idp.authorize(await sso.start())
    code = parse_qs(urlsplit(answer).query)["code"][0]
    tampered = answer.replace("state=", "state=x")
    refusal(await sso.callback(tampered), 400, "请重新开始")
    assert sso.idp.exchanges == 0 and sso.store.session_docs() == []
    assert (await sso.callback(answer)).status_code == 303  # the genuine answer still works
    replayed = await sso.callback(answer)
    refusal(replayed, 400, 'href="/signin"')
    assert sso.idp.exchanges == 1 and code not in replayed.text
    # The same answer in another browser (no gx_signin cookie): refused before the code is exchanged.
    answer = sso.idp.authorize(await sso.start())
    sso.client.cookies.delete("gx_signin")
    refusal(await sso.callback(answer), 400, "请重新开始")
    assert sso.idp.exchanges == 1


async def test_a_wrong_verifier_is_refused_by_the_provider(sso: Sso) -> None:
    answer = sso.idp.authorize(await sso.start())
    for doc in sso.store._pending.values():
        doc["verifier"] = oidc.pkce_pair()[0]
    page = await sso.callback(answer)
    refusal(page, 400, "身份提供方拒绝")
    assert "invalid_grant" in page.text and sso.store.session_docs() == []


@pytest.mark.parametrize("spoil", [
    {"id_token_overrides": {"aud": "another-client"}},
    {"id_token_overrides": {"nonce": "another-sign-in"}},
    {"id_token_overrides": {"iss": "https://evil.example"}},
    {"id_token_overrides": {"exp": int(time.time()) - 300}},
    {"sign_with": "another key"},
])
async def test_a_token_that_does_not_verify_is_refused(sso: Sso, spoil: dict[str, Any]) -> None:
    for name, value in spoil.items():
        setattr(sso.idp, name, new_rsa_key() if value == "another key" else value)
    page = await sso.sign_in()
    refusal(page, 400, "无法验证")
    assert sso.store.session_docs() == []


async def test_the_provider_saying_no_and_a_person_without_a_role(sso: Sso) -> None:
    location = await sso.start()
    refusal(await sso.callback(sso.idp.deny(location)), 403, "登录已取消")
    assert sso.idp.exchanges == 0
    csrf = CSRF.search((await sso.client.get("/signin")).text).group(1)  # type: ignore[union-attr]
    await sso.client.post("/lang", data={"locale": "en", "csrf_token": csrf, "next": "/signin"})
    location = await sso.start()
    page = await sso.callback(sso.idp.deny(location))
    refusal(page, 403, "The sign-in was cancelled")
    assert '<a href="/signin">Sign in again</a>' in page.text
    refusal(await sso.sign_in("lu"), 403, "Your account has no role in Guanxi")


async def test_an_unreachable_provider_is_said_so(sso: Sso) -> None:
    sso.idp.reachable = False
    refusal(await sso.client.get("/signin/oidc"), 503, "身份提供方暂时无法连接")
    sso.idp.reachable = True
    answer = sso.idp.authorize(await sso.start())
    sso.idp.reachable = False
    refusal(await sso.callback(answer), 503, "身份提供方暂时无法连接")


async def test_the_session_ends_with_the_token_and_sign_out_goes_to_the_provider(sso: Sso) -> None:
    sso.idp.token_ttl = 300
    await sso.sign_in()
    sso.clock.advance(timedelta(minutes=6))
    expired = await sso.client.get("/queue")
    assert expired.status_code == 303 and expired.headers["location"].startswith("/signin?reason=expired")
    assert sso.store.session_docs() == []

    sso.idp.token_ttl = 3600
    await sso.sign_in()
    (doc,) = sso.store.session_docs()
    csrf = CSRF.search((await sso.client.get("/queue")).text).group(1)  # type: ignore[union-attr]
    out = await sso.client.post("/signout", data={"csrf_token": csrf})
    assert out.status_code == 303 and sso.store.session_docs() == []
    target = urlsplit(out.headers["location"])
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{ISSUER}/logout"
    assert query == {"id_token_hint": doc["id_token"], "client_id": CLIENT,
                     "post_logout_redirect_uri": "http://console/signin/oidc/signed-out"}
    back = await sso.client.get("/signin/oidc/signed-out")
    assert back.headers["location"] == "/signin?reason=signed_out"
    # Without an end-session endpoint the console's own sign-in page follows.
    sso.idp.end_session = False
    await sso.sign_in()
    csrf = CSRF.search((await sso.client.get("/queue")).text).group(1)  # type: ignore[union-attr]
    out = await sso.client.post("/signout", data={"csrf_token": csrf})
    assert out.headers["location"] == "/signin?reason=signed_out"


async def test_the_sweep_forgets_sign_ins_never_answered(sso: Sso) -> None:
    from guanxi_console import handlers

    await sso.start()
    app_deps = handlers.Deps(settings=ConsoleSettings(environment="local"), gateway=sso.gateway, store=sso.store,
                             clock=sso.clock)
    assert await handlers.sweep_sessions(app_deps) == 0
    sso.clock.advance(timedelta(minutes=11))
    assert await handlers.sweep_sessions(app_deps) == 1 and sso.store.pending_docs() == []


def test_json_of_the_fake_jwks_is_public_only() -> None:
    jwk = public_jwk(new_rsa_key(), "k1")
    assert {"kty", "n", "e", "kid", "use", "alg"} <= set(jwk) and not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
    assert json.loads(json.dumps(jwk)) == jwk
