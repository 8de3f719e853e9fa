"""Settings of the gateway service (environment variables prefixed `GATEWAY_`)."""

from __future__ import annotations

from typing import ClassVar

from guanxi_shared.settings import DEV_SECRET, ServiceSettings
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "gateway"
    http_port: int = 8000

    # Local mode signs and checks its own tokens (HS256); production validates an external
    # identity provider's tokens against its JWKS.
    jwt_secret: SecretStr = SecretStr(DEV_SECRET)
    jwt_issuer: str = "guanxi-local"
    jwt_audience: str = "guanxi-api"
    jwks_url: str | None = None
