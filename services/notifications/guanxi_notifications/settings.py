"""Settings of the notifications service (environment variables prefixed `NOTIFICATIONS_`)."""

from __future__ import annotations

from typing import ClassVar

from guanxi_shared.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class NotificationsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "notifications"
    http_port: int = 8104
