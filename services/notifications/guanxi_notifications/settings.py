"""Settings of the notifications service (environment variables prefixed `NOTIFICATIONS_`)."""

from __future__ import annotations

from typing import ClassVar

from guanxi_shared.settings import ServiceSettings
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict


class NotificationsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "notifications"
    http_port: int = 8104

    # Where contact details come from (asked at sending time, for a stated purpose).
    customer_base_url: str = "http://127.0.0.1:8101"
    contact_timeout_seconds: float = Field(5.0, gt=0)

    # Email over SMTP (local mode: the sink `make run` starts on 1025).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = Field(10.0, gt=0)
    email_from: str = "Guanxi <no-reply@guanxi.local>"

    # SMS and app push through HTTP webhook providers (unset URL = channel not available).
    sms_webhook_url: str | None = None
    push_webhook_url: str | None = None
    webhook_secret: SecretStr = SecretStr("guanxi-local-webhook-secret")
    webhook_timeout_seconds: float = Field(5.0, gt=0)
    # Quick in-call retries of a provider's 5xx before the durable retry takes over.
    webhook_inline_attempts: int = Field(3, ge=1, le=10)
    webhook_inline_backoff_seconds: float = Field(0.2, ge=0)

    # Durable delivery retries (by the dispatcher clock): delays before attempts 2, 3, ...
    max_attempts: int = Field(4, ge=1, le=20)
    retry_backoff_seconds: list[float] = Field(default_factory=lambda: [60.0, 300.0, 1800.0])
    # A claim ("sending") older than this is assumed crashed and tried again (at-least-once edge).
    sending_lease_seconds: float = Field(300.0, gt=0)
    # Held messages wait for the end of quiet hours or a cap window, retries for minutes: a few seconds
    # late is nothing, while each pass is a query over the stored messages.
    dispatch_interval_seconds: float = Field(5.0, gt=0)
    # Each outcome publishes its own events at once (through the store's outbox); the poll is the safety net.
    outbox_poll_seconds: float = Field(5.0, gt=0)

    # Protection against harassment (CR-3).
    quiet_hours_start: str = "21:00"
    quiet_hours_end: str = "09:00"
    default_timezone: str = "Asia/Shanghai"
    default_language: str = "zh"
    cap_window_hours: float = Field(168.0, gt=0)  # 7 days
    cap_survey: int = Field(2, ge=0)
    cap_care: int = Field(2, ge=0)
    cap_marketing: int = Field(2, ge=0)

    def cap_for(self, category: str) -> int | None:
        """Messages allowed per customer per window; service messages are never capped."""
        return {"survey": self.cap_survey, "care": self.cap_care, "marketing": self.cap_marketing}.get(category)
