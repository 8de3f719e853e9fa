"""Print a signed development token (local mode only): ``make token ROLE=agent SUBJECT=alice``."""

from __future__ import annotations

import argparse
import sys
import time

import jwt
from guanxi_shared.auth import Role

from .settings import GatewaySettings


def issue_token(settings: GatewaySettings, subject: str, roles: list[str], ttl_seconds: int = 8 * 3600,
                team: str | None = None) -> str:
    now = int(time.time())
    claims = {"sub": subject, "roles": roles, "iss": settings.jwt_issuer, "aud": settings.jwt_audience,
              "iat": now, "exp": now + ttl_seconds}
    if team:
        claims["team"] = team
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", required=True, choices=[r.value for r in Role if r is not Role.service])
    parser.add_argument("--subject", required=True)
    parser.add_argument("--team")
    parser.add_argument("--ttl", type=int, default=8 * 3600, help="seconds")
    args = parser.parse_args(argv)
    settings = GatewaySettings()
    if settings.jwks_url:
        print("token: the gateway validates an external identity provider's tokens (GATEWAY_JWKS_URL is set); "
              "ask that provider for a token", file=sys.stderr)
        return 2
    print(f"# {args.role} token for {args.subject}, valid {args.ttl // 3600}h; use: Authorization: Bearer <token>",
          file=sys.stderr)
    print(issue_token(settings, args.subject, [args.role], args.ttl, args.team))
    return 0


if __name__ == "__main__":
    sys.exit(main())
