"""Complaint KPIs of a period (KP-1, CP-5, CP-6): the cases received in it, computed by the domain.

The formulas and their targets: ``docs/kpis.md``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..domain import kpis
from .deps import Deps


async def complaint_kpis(deps: Deps, start: datetime, end: datetime) -> dict[str, Any]:
    kpis.check_period(start, end)
    return kpis.compute(await deps.cases.received_between(start, end), deps.clock.now(), end=end,
                        first_contact=timedelta(hours=deps.first_contact_hours))
