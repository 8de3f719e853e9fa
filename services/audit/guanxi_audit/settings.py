"""Settings of the audit service (environment variables prefixed `AUDIT_`)."""

from __future__ import annotations

from typing import ClassVar

from guanxi_shared.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class AuditSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIT_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "audit"
    http_port: int = 8105
