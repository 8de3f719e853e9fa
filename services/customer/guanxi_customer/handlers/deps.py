"""``Deps``: what every use case of the customer service is given."""

from __future__ import annotations

from dataclasses import dataclass

from guanxi_shared.clock import Clock

from ..domain import Vault
from ..settings import CustomerSettings
from ..store import CustomerStore


@dataclass
class Deps:
    store: CustomerStore
    vault: Vault
    settings: CustomerSettings
    clock: Clock
