"""Signing in through the organisation's OpenID Connect provider, the pure parts: the PKCE pair (S256),
the sign-in waiting for the provider's answer (``PendingSignIn``, kept on the server), the authorization
request, the checks of the answer that comes back to the callback (state, ``error=``, issuer), the person
the tokens' claims describe (the claims the gateway reads: ``sub``, the roles claim, ``team``), when the
session ends, and what each failure says to the person.

No I/O here: the provider's HTTP endpoints and the token signatures are ``identity/``'s business."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

from .labels import N_

# A sign-in must come back from the provider within this time (the person types a password, maybe a second factor).
PENDING_TTL = timedelta(minutes=10)
# The roles a person may hold in the console (the gateway grants the same ones; `integration` is for machines).
STAFF_ROLES = ("agent", "supervisor", "admin", "auditor")
# Claims naming the person, in order of preference.
NAME_CLAIMS = ("name", "preferred_username", "email")
MAX_DETAIL = 200

FailureCode = Literal["denied", "provider_error", "bad_state", "bad_response", "refused", "bad_token", "unreachable",
                      "no_role", "not_configured"]


class SignInFailed(Exception):
    """The sign-in through the provider did not complete: the person sees ``FAILURES[code]``, nobody is signed in."""

    def __init__(self, code: FailureCode, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code: FailureCode = code
        self.detail = detail[:MAX_DETAIL]


@dataclass(frozen=True)
class Failure:
    status: int
    title: str  # msgid
    message: str  # msgid
    retry: bool = True  # offer "sign in again"


FAILURES: dict[FailureCode, Failure] = {
    "denied": Failure(403, N_("Sign-in cancelled"), N_("The sign-in was cancelled or your organisation's account may not "
                                                       "use Guanxi. Nobody is signed in.")),
    "provider_error": Failure(502, N_("Sign-in failed"), N_("Your organisation's identity provider could not sign you "
                                                            "in. Nobody is signed in; please try again.")),
    "bad_state": Failure(400, N_("Sign-in expired"), N_("This sign-in was not started in this browser, was already used "
                                                        "or took too long. Nobody is signed in; please start again.")),
    "bad_response": Failure(400, N_("Sign-in failed"), N_("The answer from the identity provider was incomplete. Nobody "
                                                          "is signed in; please start again.")),
    "refused": Failure(400, N_("Sign-in refused"), N_("The identity provider refused to complete this sign-in (it may "
                                                      "have been used already or taken too long). Nobody is signed in; "
                                                      "please start again.")),
    "bad_token": Failure(400, N_("Sign-in refused"), N_("The identity provider's answer could not be verified, so it was "
                                                        "refused. Nobody is signed in. If this happens again, please "
                                                        "tell an administrator.")),
    "unreachable": Failure(503, N_("Please try again shortly"), N_("Your organisation's identity provider cannot be "
                                                                   "reached right now. Please try again shortly.")),
    "no_role": Failure(403, N_("No access to Guanxi"), N_("Your account has no role in Guanxi (agent, supervisor, admin "
                                                          "or auditor). Ask an administrator to give you one."),
                       retry=False),
    "not_configured": Failure(503, N_("Single sign-on"), N_("Single sign-on (OpenID Connect) is not configured. An "
                                                            "administrator sets CONSOLE_OIDC_ISSUER and "
                                                            "CONSOLE_OIDC_CLIENT_ID."), retry=False),
}


def failure(code: FailureCode) -> Failure:
    return FAILURES[code]


def failure_for_provider_error(error: str) -> FailureCode:
    """What the provider's ``error=`` on the callback means to the person."""
    return "denied" if error in ("access_denied", "unauthorized_client", "consent_required") else "provider_error"


# ------------------------------------------------------------------------------------------ PKCE


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)), without padding."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def pkce_pair() -> tuple[str, str]:
    """(verifier, challenge): 64 random bytes as 86 unreserved characters (RFC 7636 wants 43–128)."""
    verifier = _b64url(secrets.token_bytes(64))
    return verifier, pkce_challenge(verifier)


# ------------------------------------------------------------------------------------------ the pending sign-in


@dataclass
class PendingSignIn:
    """A sign-in sent to the provider, waiting for its answer. Kept on the server only (the console's
    store), under ``pending_key(browser, state)``: the browser holds a random id in a cookie, the
    provider carries ``state``; the nonce and the PKCE verifier never leave the console."""

    state: str
    nonce: str
    verifier: str
    next: str  # where to go once signed in (a local path)
    locale: str
    created_at: datetime

    def expired(self, now: datetime) -> bool:
        return now - self.created_at >= PENDING_TTL


def new_pending(next_path: str, locale: str, now: datetime) -> PendingSignIn:
    verifier, _ = pkce_pair()
    return PendingSignIn(state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32), verifier=verifier,
                         next=next_path, locale=locale, created_at=now)


def pending_key(browser: str, state: str) -> str:
    """What the store keeps a pending sign-in under: a digest of the browser's cookie and the state, so
    that an answer is accepted only in the browser that started the sign-in, and only once."""
    return hashlib.sha256(f"oidc\x00{browser}\x00{state}".encode()).hexdigest()


def authorization_url(endpoint: str, *, client_id: str, redirect_uri: str, scopes: list[str], pending: PendingSignIn) -> str:
    """Where the browser goes to sign in (the authorization code flow with PKCE S256)."""
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": " ".join(scopes),
             "state": pending.state, "nonce": pending.nonce, "code_challenge": pkce_challenge(pending.verifier),
             "code_challenge_method": "S256", "ui_locales": pending.locale}
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)


# ------------------------------------------------------------------------------------------ the provider's answer


def check_answer(params: dict[str, str], pending: PendingSignIn | None, now: datetime, issuer: str) -> str:
    """The authorization code of the callback's query, once it is shown to answer ``pending``; else
    ``SignInFailed``. The provider's own ``error=`` wins (the person cancelled); then the state must
    belong to a sign-in this browser started in the last ten minutes; then the answer must come from
    our issuer (RFC 9207 ``iss``, when the provider sends it) and carry a code."""
    error = params.get("error")
    if error:
        raise SignInFailed(failure_for_provider_error(error), f"{error}: {params.get('error_description', '')}".strip(": "))
    if pending is None or not params.get("state"):
        raise SignInFailed("bad_state", "no sign-in in this browser has this state")
    if not hmac.compare_digest(pending.state.encode(), params["state"].encode()):
        raise SignInFailed("bad_state", "the state does not match")
    if pending.expired(now):
        raise SignInFailed("bad_state", "the sign-in took too long")
    iss = params.get("iss")
    if iss is not None and iss.rstrip("/") != issuer.rstrip("/"):
        raise SignInFailed("bad_response", f"answer from another issuer: {iss}")
    code = params.get("code")
    if not code:
        raise SignInFailed("bad_response", "no authorization code")
    return code


def check_nonce(claims: dict[str, Any], nonce: str) -> None:
    """The ID token must carry the nonce of this sign-in (no replay of another sign-in's token)."""
    got = claims.get("nonce")
    if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
        raise SignInFailed("bad_token", "the ID token's nonce does not match this sign-in")


# ------------------------------------------------------------------------------------------ who signed in


@dataclass(frozen=True)
class Person:
    subject: str
    name: str
    roles: list[str]
    team: str | None


def claim_at(claims: dict[str, Any], path: str) -> Any:
    """A claim by its dotted path (``realm_access.roles``), like the gateway's roles claim."""
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def roles_in(claims: dict[str, Any], roles_claim: str) -> list[str]:
    """The console's roles among the claim's values (a list, or a space/comma separated string), in the
    order of ``STAFF_ROLES``; the gateway reads the same claim (GATEWAY_JWT_ROLES_CLAIM)."""
    value = claim_at(claims, roles_claim)
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, list):
        return []
    held = {v for v in value if isinstance(v, str)}
    return [r for r in STAFF_ROLES if r in held]


def person_from_claims(id_claims: dict[str, Any], access_claims: dict[str, Any] | None, roles_claim: str) -> Person:
    """The person of a verified ID token. Roles and team come from the access token when it is a JWT of
    the provider (what the gateway will read), else from the ID token; its subject must be the ID
    token's. No console role: ``SignInFailed("no_role")``."""
    subject = id_claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise SignInFailed("bad_token", "the ID token has no subject")
    if access_claims is not None and str(access_claims.get("sub", subject)) != subject:
        raise SignInFailed("bad_token", "the access token is someone else's")
    source = access_claims if access_claims is not None and claim_at(access_claims, roles_claim) is not None else id_claims
    roles = roles_in(source, roles_claim)
    if not roles:
        raise SignInFailed("no_role", f"no agent/supervisor/admin/auditor in the claim {roles_claim!r}")
    team = source.get("team") if isinstance(source.get("team"), str) else id_claims.get("team")
    name = next((str(id_claims[c]) for c in NAME_CLAIMS if isinstance(id_claims.get(c), str) and id_claims[c].strip()),
                subject)
    return Person(subject=subject, name=name.strip()[:120], roles=roles, team=team if isinstance(team, str) and team else None)


def token_expiry(now: datetime, expires_in: Any, access_claims: dict[str, Any] | None, id_claims: dict[str, Any]) -> datetime:
    """When the provider's access token stops being accepted, so the session ends with it: the token's
    own ``exp`` when it is a JWT, else the token endpoint's ``expires_in``, else the ID token's ``exp``."""
    if access_claims is not None and isinstance(access_claims.get("exp"), int | float):
        return datetime.fromtimestamp(float(access_claims["exp"]), now.tzinfo)
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        return now + timedelta(seconds=float(expires_in))
    if isinstance(expires_in, str) and expires_in.isdigit() and int(expires_in) > 0:
        return now + timedelta(seconds=int(expires_in))
    exp = id_claims.get("exp")
    if isinstance(exp, int | float):
        return datetime.fromtimestamp(float(exp), now.tzinfo)
    raise SignInFailed("bad_token", "no expiry for the access token")


def landing(next_path: str, roles: list[str]) -> str:
    """Where a person goes once signed in: back where they were, or the queue (the account page for a
    role without a queue)."""
    if next_path == "/queue" and not any(r in roles for r in ("agent", "supervisor", "admin")):
        return "/me"
    return next_path


def end_session_url(endpoint: str, *, id_token: str | None, client_id: str, post_logout_redirect_uri: str) -> str:
    """RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0)."""
    query = {"client_id": client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
    if id_token:
        query["id_token_hint"] = id_token
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)
