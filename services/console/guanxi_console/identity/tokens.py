"""Verifying the provider's JSON Web Tokens with pyjwt against its published keys (JWKS): the part of
the flow the real client and the in-memory provider of the fast tests share."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import jwt

from .port import TokenInvalid

# Asymmetric signatures only: never "none", never a shared-secret HMAC an attacker could forge from the client secret.
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
_AT_HASH = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
LEEWAY_SECONDS = 30


class UnknownKey(TokenInvalid):
    """The token names a key the JWKS does not hold (the provider may have rotated its keys)."""


def header_of(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenInvalid(f"not a JWT: {exc}") from exc
    return header


def is_jwt(token: str) -> bool:
    try:
        jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return False
    return True


def signing_key(jwks: dict[str, Any], header: dict[str, Any]) -> Any:
    """The key of the JWKS that signed a token with this header (by ``kid``; the only signing key when
    the token names none). A key published for one algorithm signs with no other."""
    raw = jwks.get("keys") if isinstance(jwks, dict) else None
    candidates = [k for k in raw if isinstance(k, dict) and k.get("use", "sig") == "sig"] if isinstance(raw, list) else []
    kid = header.get("kid")
    if kid:
        candidates = [k for k in candidates if k.get("kid") == kid]
    candidates = [k for k in candidates if k.get("alg") in (None, header.get("alg"))]
    if len(candidates) != 1:
        raise UnknownKey(f"no signing key {kid!r} in the provider's JWKS" if kid else "the token names no key (kid)")
    try:
        return jwt.PyJWK(candidates[0], str(header.get("alg"))).key
    except jwt.PyJWTError as exc:
        raise TokenInvalid(f"the provider's key {kid!r} cannot be used: {exc}") from exc


def decode(token: str, jwks: dict[str, Any], *, issuer: str, audience: str | None, algorithms: tuple[str, ...],
           require: tuple[str, ...]) -> dict[str, Any]:
    """The claims of a token signed by one of the JWKS's keys with an allowed asymmetric algorithm, from
    ``issuer``, for ``audience`` (not checked when None), not expired (30 s leeway)."""
    header = header_of(token)
    allowed = [a for a in algorithms if a in ASYMMETRIC]
    if header.get("alg") not in allowed:
        raise TokenInvalid(f"algorithm {header.get('alg')!r} is not accepted ({', '.join(allowed)})")
    key = signing_key(jwks, header)
    options: Any = {"require": list(require), "verify_aud": audience is not None}
    try:
        claims: dict[str, Any] = jwt.decode(token, key, algorithms=allowed, issuer=issuer, audience=audience,
                                            leeway=LEEWAY_SECONDS, options=options)
    except jwt.PyJWTError as exc:
        raise TokenInvalid(f"{type(exc).__name__}: {exc}") from exc
    return claims


def verify_id_token(id_token: str, access_token: str, jwks: dict[str, Any], *, issuer: str, client_id: str,
                    algorithms: tuple[str, ...]) -> dict[str, Any]:
    """OpenID Connect Core 3.1.3.7: signature, ``iss``, ``aud`` contains our client id (and ``azp`` is
    ours when there are several audiences), ``exp``/``iat``; ``at_hash`` binds the access token when present."""
    claims = decode(id_token, jwks, issuer=issuer, audience=client_id, algorithms=algorithms,
                    require=("iss", "sub", "aud", "exp", "iat"))
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise TokenInvalid(f"the ID token was issued to {azp!r}, not to this console")
    at_hash = claims.get("at_hash")
    if at_hash is not None:
        digest = _AT_HASH.get(str(header_of(id_token).get("alg", ""))[-3:])
        if digest is None:
            raise TokenInvalid("at_hash with an unsupported algorithm")
        half = digest(access_token.encode("ascii")).digest()
        expected = base64.urlsafe_b64encode(half[: len(half) // 2]).rstrip(b"=").decode("ascii")
        if not isinstance(at_hash, str) or not hmac.compare_digest(at_hash, expected):
            raise TokenInvalid("the ID token's at_hash does not match the access token")
    return claims
