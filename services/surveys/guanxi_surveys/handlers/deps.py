"""``Deps``: what every use case of the surveys service is given."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from guanxi_shared.clock import Clock
from guanxi_shared.scheduling import DueWatch

from .. import domain
from ..settings import SurveysSettings
from ..store import SurveyStore


@dataclass
class Deps:
    store: SurveyStore
    settings: SurveysSettings
    clock: Clock
    policy: domain.SendPolicy
    # When the scheduler's queries can find something (send, remind or expire times written here).
    due: DueWatch

    @classmethod
    def create(cls, store: SurveyStore, settings: SurveysSettings, clock: Clock) -> Deps:
        policy = domain.SendPolicy(
            domain.QuietHours(domain.parse_hhmm(settings.quiet_start), domain.parse_hhmm(settings.quiet_end)),
            domain.working_day_checker(settings.calendar_country),
        )
        return cls(store, settings, clock, policy, DueWatch(timedelta(seconds=settings.scheduler_rescan_seconds)))

    def window_days(self, kind: str) -> tuple[float, float]:
        s = self.settings
        if kind == "post_purchase":
            return s.post_purchase_min_days, s.post_purchase_max_days
        return s.post_resolution_min_days, s.post_resolution_max_days
