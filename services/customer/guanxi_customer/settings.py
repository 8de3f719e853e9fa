"""Settings of the customer service (environment variables prefixed `CUSTOMER_`)."""

from __future__ import annotations

from typing import ClassVar

from guanxi_shared.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class CustomerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CUSTOMER_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "customer"
    http_port: int = 8101
