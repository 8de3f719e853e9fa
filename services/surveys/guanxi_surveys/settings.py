"""Settings of the surveys service (environment variables prefixed `SURVEYS_`)."""

from __future__ import annotations

from typing import ClassVar

from guanxi_shared.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class SurveysSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SURVEYS_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "surveys"
    http_port: int = 8103
