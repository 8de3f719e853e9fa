"""The customer service's storage: ``CustomerStore`` (what the use cases need, ``base``), on MongoDB
(``MongoCustomerStore``) and in memory for the fast tests (``InMemoryCustomerStore``)."""

from __future__ import annotations

from .base import JOBS, OUTBOX_COLLECTIONS, CustomerStore, Recent
from .memory import InMemoryCustomerStore
from .mongo import MongoCustomerStore

__all__ = ["JOBS", "OUTBOX_COLLECTIONS", "CustomerStore", "InMemoryCustomerStore", "MongoCustomerStore", "Recent"]
