"""Settings of the gateway service (environment variables prefixed `GATEWAY_`)."""

from __future__ import annotations

from typing import ClassVar

from guanxi_shared.settings import DEV_SECRET, ServiceSettings
from pydantic import Field, SecretStr, model_validator
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
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"],
                                      description="accepted algorithms of JWKS-validated tokens")
    jwt_roles_claim: str = Field("roles", description="dotted path of the roles claim, e.g. realm_access.roles")
    jwt_leeway_seconds: int = Field(30, ge=0, le=600)

    # Where the owning services answer (same /api/v1 paths as the gateway).
    customer_url: str = "http://127.0.0.1:8101"
    complaints_url: str = "http://127.0.0.1:8102"
    surveys_url: str = "http://127.0.0.1:8103"
    notifications_url: str = "http://127.0.0.1:8104"
    audit_url: str = "http://127.0.0.1:8105"
    upstream_connect_timeout: float = Field(2.0, gt=0)
    upstream_timeout: float = Field(15.0, gt=0, description="seconds to wait for an upstream answer")
    kpi_timeout: float = Field(5.0, gt=0, description="seconds each service gets to answer a KPI request")

    # Protection.
    rate_limit_per_identity: int = Field(600, ge=1, description="requests per minute per authenticated subject")
    rate_limit_per_ip: int = Field(1200, ge=1, description="requests per minute per client address")
    rate_limit_burst_seconds: float = Field(10.0, gt=0, description="bucket depth, in seconds of the rate")
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_page_size: int = Field(100, ge=1)
    idempotency_ttl_hours: int = Field(24, ge=1)
    idempotency_lease_seconds: float = Field(
        30.0, gt=0, description="a key still pending after this is taken over by a retry (its gateway died); "
                                "keep it above upstream_timeout")
    cors_origins: list[str] = Field(default_factory=list, description="empty: CORS off")
    trusted_proxies: int = Field(0, ge=0, description="X-Forwarded-For hops to trust for the client address")
    access_record_flush_ms: int = Field(
        50, ge=0, le=10_000, description="access records are sent to Kafka in batches at most this late")

    @model_validator(mode="after")
    def _production_secret(self) -> GatewaySettings:
        if self.environment != "local" and not self.jwks_url and self.jwt_secret.get_secret_value() == DEV_SECRET:
            raise ValueError("outside local mode set GATEWAY_JWKS_URL (or at least GATEWAY_JWT_SECRET)")
        return self

    def upstreams(self) -> dict[str, str]:
        return {"customer": self.customer_url, "complaints": self.complaints_url, "surveys": self.surveys_url,
                "notifications": self.notifications_url, "audit": self.audit_url}
