"""Use cases of the surveys service, one module per capability, as plain async functions over ``Deps``:
``triggers`` (schedule or skip a survey per purchase or resolution), ``customers`` (the view learnt from
customer events, erasure), ``scheduler`` (send, remind, expire), ``answers`` (the public answer link)
and ``reads`` (lists, reports, KPIs)."""

from ..domain import TierChange, Trigger
from .deps import Deps

__all__ = ["Deps", "TierChange", "Trigger"]
