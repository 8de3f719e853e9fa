"""Use cases of the notifications service, as plain async functions over ``Deps``, one module per
capability: ``sending`` (trigger events → messages on their channels, and the dispatcher),
``customers`` (what we learn and keep about customers), ``templates``, and ``reading`` (delivery
log, inbox, KPIs)."""

from .deps import Deps

__all__ = ["Deps"]
