"""Settings of the complaints service (environment variables prefixed `COMPLAINTS_`).

Lists and maps (extra holidays, working days, per-severity targets, teams by category) are read as
JSON from the environment, e.g. ``COMPLAINTS_EXTRA_WORKING_DAYS='["2027-02-20"]'``.
"""

from __future__ import annotations

from datetime import date, time
from typing import ClassVar

from guanxi_shared.settings import DEV_SECRET, ServiceSettings
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict


class ComplaintsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="COMPLAINTS_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "complaints"
    http_port: int = 8102

    # Working-day calendar (CP-2): the country's public holidays and make-up working days (调休),
    # then the company's own additions, which win over the country calendar.
    calendar_country: str = "CN"
    calendar_subdivision: str | None = None
    timezone: str = "Asia/Shanghai"
    business_day_end: time = time(18, 0)
    extra_holidays: list[date] = Field(default_factory=list)
    extra_working_days: list[date] = Field(default_factory=list)

    # Deadlines (CP-2, CC-3).
    acknowledge_hours: float = Field(24.0, gt=0)
    acknowledge_minutes_by_severity: dict[str, int] = Field(default_factory=lambda: {"urgent": 60})
    preliminary_opinion_working_days: int = Field(3, ge=1, le=60)
    investigation_working_days: int = Field(5, ge=1, le=60)
    formal_answer_working_days: int = Field(15, ge=1, le=120)
    auto_acknowledge: bool = True
    pause_while_waiting_on_customer: bool = False

    # Indicators: a formal answer later than this after receipt is not a first-contact resolution.
    first_contact_hours: float = Field(24.0, gt=0)

    # Watching deadlines (CP-4, CP-5).
    deadline_lead_minutes: int = Field(240, ge=0)
    unowned_grace_minutes: int = Field(120, ge=0)
    follow_up_window_days: float = Field(7.0, gt=0)
    # Deadlines are minutes to days away, so a few seconds' delay in noticing one changes nothing, and
    # each pass is a query over the cases that the store may answer by reading all of them
    # (``MongoCaseStore.due_for_check``).
    watcher_interval_seconds: float = Field(10.0, gt=0)
    # Every write publishes its own events (the store writes through ``Outbox``); the poll only catches
    # what a crash or a broker outage left behind, and each pass is a query over every case.
    outbox_poll_seconds: float = Field(5.0, gt=0)

    # Crisis early warning (CP-7).
    crisis_window_minutes: int = Field(60, ge=1)
    crisis_bucket_minutes: int = Field(5, ge=1)
    crisis_baseline_windows: int = Field(24, ge=1, le=24 * 30)
    crisis_min_count: int = Field(10, ge=1)
    crisis_ratio: float = Field(3.0, gt=0)
    low_score_window_minutes: int = Field(1440, ge=1)
    low_score_run: int = Field(3, ge=1)
    low_score_opens_case: bool = False

    # HTTP lists.
    max_page_size: int = Field(200, ge=1, le=1000)

    # Routing at intake: the team of a new case by its category (JSON map), else the default team.
    team_by_category: dict[str, str] = Field(default_factory=dict)
    default_team: str = Field("general", min_length=1, max_length=128)

    # The customer's status page: the acknowledgement carries ``<status_link_base>/<token>``, a token
    # signed with ``status_link_secret`` (separate from the internal secret so links can be rotated alone)
    # and valid for ``status_link_days`` after it was issued.
    status_link_secret: SecretStr = SecretStr(DEV_SECRET + "-complaint-status")
    status_link_base: str = "http://127.0.0.1:8106/c"
    status_link_days: float = Field(180.0, gt=0)

    @model_validator(mode="after")
    def _check_status_link_secret(self) -> ComplaintsSettings:
        if self.environment != "local" and self.status_link_secret.get_secret_value().startswith(DEV_SECRET):
            raise ValueError("COMPLAINTS_STATUS_LINK_SECRET must be set outside local mode")
        return self
