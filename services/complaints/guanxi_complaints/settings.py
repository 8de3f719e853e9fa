"""Settings of the complaints service (environment variables prefixed `COMPLAINTS_`)."""

from __future__ import annotations

from typing import ClassVar

from guanxi_shared.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class ComplaintsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="COMPLAINTS_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "complaints"
    http_port: int = 8102
