"""Settings of the console (environment variables prefixed ``CONSOLE_``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from guanxi_shared.settings import DEV_SECRET, ServiceSettings
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
# `npm ci --prefix services/console` (make install) puts the pinned front-end libraries here.
DEFAULT_ASSETS = PACKAGE_DIR.parent / "node_modules"
LOCALES = ("zh-CN", "en")
OIDC_CALLBACK_PATH = "/signin/oidc/callback"
OIDC_SIGNED_OUT_PATH = "/signin/oidc/signed-out"


class ConsoleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONSOLE_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "console"
    http_port: int = 8106

    gateway_url: str = Field("http://127.0.0.1:8000", description="the gateway whose /api/v1 the console calls")
    gateway_timeout: float = Field(10.0, gt=0, description="seconds to wait for the gateway")
    public_url: str = Field("http://127.0.0.1:8106", description="where people reach the console (cookies are Secure "
                                                               "when this is https)")
    session_secret: SecretStr = Field(SecretStr(DEV_SECRET), description="keys the CSRF tokens; refused outside local mode "
                                                                         "when left at the development value")
    session_idle_minutes: int = Field(30, ge=1, le=24 * 60, description="a session unused this long ends")
    session_max_hours: int = Field(8, ge=1, le=24, description="a session ends after this long whatever happens")
    default_locale: str = Field("zh-CN", description="zh-CN | en")
    default_timezone: str = Field("Asia/Shanghai", description="IANA zone in which times are shown")
    queue_refresh_seconds: int = Field(5, ge=2, le=300, description="how often the queue refreshes itself")
    queue_page_size: int = Field(100, ge=1, le=200, description="cases read per queue list from the gateway")

    # Local mode: sign in from a roster of sample staff; the console mints gateway tokens itself with
    # the development signing key (the gateway's GATEWAY_JWT_SECRET/_ISSUER/_AUDIENCE defaults).
    dev_sign_in: bool = Field(True, description="offer the development roster (never outside local mode)")
    dev_jwt_secret: SecretStr = SecretStr(DEV_SECRET)
    dev_jwt_issuer: str = "guanxi-local"
    dev_jwt_audience: str = "guanxi-api"

    # Production: the organisation's OpenID Connect provider, authorization code flow with PKCE (S256).
    oidc_issuer: str | None = Field(None, description="the identity provider's issuer URL (discovery at "
                                                      "<issuer>/.well-known/openid-configuration)")
    oidc_client_id: str | None = Field(None, description="the console's client id at the provider (the ID token's audience)")
    oidc_client_secret: SecretStr | None = Field(None, description="confidential clients only; a public client uses PKCE alone")
    oidc_scopes: str = Field("openid profile email", description="space separated; must include openid")
    oidc_roles_claim: str = Field("roles", description="dotted path of the roles claim: the gateway's GATEWAY_JWT_ROLES_CLAIM")
    oidc_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"],
                                       description="accepted signature algorithms of the provider's tokens")
    oidc_timeout: float = Field(10.0, gt=0, description="seconds to wait for the provider (discovery, keys, token endpoint)")

    assets_dir: Path = Field(DEFAULT_ASSETS, description="node_modules holding htmx.org and echarts")

    @model_validator(mode="after")
    def _production(self) -> ConsoleSettings:
        if self.default_locale not in LOCALES:
            raise ValueError(f"CONSOLE_DEFAULT_LOCALE must be one of {', '.join(LOCALES)}")
        if self.oidc_issuer and not self.oidc_client_id:
            raise ValueError("CONSOLE_OIDC_CLIENT_ID must be set with CONSOLE_OIDC_ISSUER")
        if self.oidc_configured and "openid" not in self.oidc_scope_list:
            raise ValueError("CONSOLE_OIDC_SCOPES must include openid")
        if self.environment != "local":
            # People sign in only through the provider outside local mode: the console cannot work without it.
            missing = [name for name, value in (("CONSOLE_SESSION_SECRET", self.session_secret.get_secret_value() != DEV_SECRET),
                                                ("CONSOLE_OIDC_ISSUER", self.oidc_issuer),
                                                ("CONSOLE_OIDC_CLIENT_ID", self.oidc_client_id)) if not value]
            if missing:
                raise ValueError(f"{' and '.join(missing)} must be set outside local mode (GUANXI_ENV={self.environment}): "
                                 "people sign in through the organisation's OpenID Connect provider")
        return self

    @property
    def dev_sign_in_allowed(self) -> bool:
        """The development roster exists only in local mode, whatever CONSOLE_DEV_SIGN_IN says."""
        return self.dev_sign_in and self.environment == "local"

    @property
    def oidc_configured(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def oidc_scope_list(self) -> list[str]:
        return self.oidc_scopes.replace(",", " ").split()

    @property
    def oidc_redirect_uri(self) -> str:
        """Where the provider sends people back (register it at the provider): CONSOLE_PUBLIC_URL + the callback."""
        return self.public_url.rstrip("/") + OIDC_CALLBACK_PATH

    @property
    def oidc_post_logout_uri(self) -> str:
        """Where the provider sends people after signing them out (register it at the provider)."""
        return self.public_url.rstrip("/") + OIDC_SIGNED_OUT_PATH

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")
