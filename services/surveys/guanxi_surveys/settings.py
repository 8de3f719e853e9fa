"""Settings of the surveys service (environment variables prefixed `SURVEYS_`)."""

from __future__ import annotations

from typing import ClassVar

from guanxi_shared.settings import DEV_SECRET, ServiceSettings
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict


class SurveysSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SURVEYS_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "surveys"
    http_port: int = 8103

    # Where the customer opens the answer link: ``<link_base_url>/<token>``, by default the console's survey
    # page (``/s/{token}``), which answers through ``/api/v1/surveys/answer/{token}``.
    link_base_url: str = "http://127.0.0.1:8106/s"
    # Signs the answer-link tokens; separate from the internal secret so links can be rotated alone.
    link_secret: SecretStr = SecretStr(DEV_SECRET + "-survey-links")

    # When to send: a window after the trigger, inside which a working, non-quiet moment is chosen.
    post_purchase_min_days: float = Field(3, ge=0)
    post_purchase_max_days: float = Field(7, ge=0)
    post_resolution_min_days: float = Field(1, ge=0)
    post_resolution_max_days: float = Field(3, ge=0)
    quiet_start: str = Field("21:00", pattern=r"^\d{2}:\d{2}$")
    quiet_end: str = Field("09:00", pattern=r"^\d{2}:\d{2}$")
    default_timezone: str = "Asia/Shanghai"
    calendar_country: str = "CN"
    default_language: str = "zh"

    # Throttling: one survey per customer per cooldown; one reminder; expiry.
    cooldown_days: float = Field(30, ge=0)
    reminder_after_days: float = Field(3, gt=0)
    expire_after_days: float = Field(14, gt=0)

    # Follow-up and reports.
    low_score_threshold: int = Field(60, ge=0, le=100)
    csat_target: float = Field(85, ge=0, le=100)

    scheduler_interval_seconds: float = Field(1.0, gt=0)
    # The scheduler queries the store only when something written here is due, after a pass that
    # found work, or at least this often (what another instance or an earlier process scheduled).
    scheduler_rescan_seconds: float = Field(60.0, gt=0)
    scheduler_batch: int = Field(200, ge=1, le=5000)

    @model_validator(mode="after")
    def _check(self) -> SurveysSettings:
        if self.post_purchase_max_days < self.post_purchase_min_days:
            raise ValueError("post_purchase_max_days must not be below post_purchase_min_days")
        if self.post_resolution_max_days < self.post_resolution_min_days:
            raise ValueError("post_resolution_max_days must not be below post_resolution_min_days")
        if self.expire_after_days <= self.reminder_after_days:
            raise ValueError("expire_after_days must be after reminder_after_days")
        if self.environment != "local" and self.link_secret.get_secret_value().startswith(DEV_SECRET):
            raise ValueError("SURVEYS_LINK_SECRET must be set outside local mode")
        return self
