"""Settings of the customer service (environment variables prefixed `CUSTOMER_`).

Structured options (key ring, tier rules, response targets) are read as JSON, e.g.
``CUSTOMER_MASTER_KEYS='{"2026-01": "<base64 of 32 bytes>"}'``.
"""

from __future__ import annotations

import base64
import binascii
from decimal import Decimal
from typing import ClassVar

from guanxi_shared.settings import ServiceSettings
from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

# Fixed development keys so `make run` works out of the box; refused outside local mode.
DEV_MASTER_KEY_ID = "dev-1"
DEV_MASTER_KEY = base64.b64encode(b"guanxi-local-dev-master-key-32b!").decode()
DEV_BLIND_INDEX_KEY = base64.b64encode(b"guanxi-local-dev-blind-index-32b!"[:32]).decode()


class TierRule(BaseModel):
    """A member level reached by purchase frequency and/or amount (CI-3, CR-1)."""

    level: str = Field(min_length=1, max_length=32)
    min_purchases: int = Field(default=0, ge=0)
    min_amount: Decimal = Field(default=Decimal(0), ge=0)
    # "any": either threshold suffices; "all": both are needed.
    match: str = Field(default="any", pattern="^(any|all)$")


def default_tier_rules() -> list[TierRule]:
    return [
        TierRule(level="silver", min_purchases=3, min_amount=Decimal("1000"), match="any"),
        TierRule(level="gold", min_purchases=10, min_amount=Decimal("10000"), match="any"),
        TierRule(level="platinum", min_purchases=30, min_amount=Decimal("50000"), match="all"),
    ]


class ResponseTargets(BaseModel):
    """Minutes allowed to answer an inbound contact (CC-3)."""

    consultation: int = Field(default=30, gt=0)
    urgent: int = Field(default=60, gt=0)
    email: int = Field(default=240, gt=0)
    default: int = Field(default=24 * 60, gt=0)


def _key_bytes(name: str, value: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{name} is not valid base64") from exc
    if len(raw) != 32:
        raise ValueError(f"{name} must decode to 32 bytes, got {len(raw)}")
    return raw


class CustomerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CUSTOMER_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "customer"
    http_port: int = 8101

    # PII vault: key id -> base64 32-byte master key (KEK); the current one wraps new data keys,
    # older ones stay only until `POST /api/v1/customers/keys:rewrap` has re-wrapped every data key.
    master_keys: dict[str, SecretStr] = Field(default_factory=lambda: {DEV_MASTER_KEY_ID: SecretStr(DEV_MASTER_KEY)})
    master_key_id: str = DEV_MASTER_KEY_ID
    blind_index_key: SecretStr = SecretStr(DEV_BLIND_INDEX_KEY)

    # Classification.
    tier_rules: list[TierRule] = Field(default_factory=default_tier_rules)
    base_level: str = "standard"
    returning_min_purchases: int = Field(default=2, ge=1)
    loyal_min_purchases: int = Field(default=5, ge=2)
    churn_days: int = Field(default=180, ge=1, description="no purchase or contact for this long flags churn risk")

    # Response clocks.
    response_targets: ResponseTargets = Field(default_factory=lambda: ResponseTargets())

    # Care schedule.
    care_scan_seconds: float = Field(default=60.0, gt=0, description="how often the care planner looks for occasions")
    scheduler_interval_seconds: float = Field(default=1.0, gt=0, description="how often due jobs are fired")
    scheduler_rescan_seconds: float = Field(default=60.0, gt=0, description=(
        "the job query runs when a job scheduled here is due, after a pass that fired some, or at least this "
        "often (jobs another instance or an earlier process scheduled)"))
    birthday_hour: int = Field(default=9, ge=0, le=23, description="local hour of the birthday greeting")
    revisit_levels: list[str] = Field(default_factory=lambda: ["gold", "platinum"])
    revisit_days: int = Field(default=90, ge=1)
    profile_stale_days: int = Field(default=365, ge=1)

    page_limit_max: int = Field(default=200, ge=1)

    @model_validator(mode="after")
    def _keys(self) -> CustomerSettings:
        if self.master_key_id not in self.master_keys:
            raise ValueError(f"CUSTOMER_MASTER_KEY_ID {self.master_key_id!r} is not in CUSTOMER_MASTER_KEYS")
        for kid, key in self.master_keys.items():
            _key_bytes(f"master key {kid!r}", key.get_secret_value())
        _key_bytes("CUSTOMER_BLIND_INDEX_KEY", self.blind_index_key.get_secret_value())
        if self.environment != "local":
            if any(k.get_secret_value() == DEV_MASTER_KEY for k in self.master_keys.values()):
                raise ValueError("CUSTOMER_MASTER_KEYS must be configured outside local mode (the development key is refused)")
            if self.blind_index_key.get_secret_value() == DEV_BLIND_INDEX_KEY:
                raise ValueError("CUSTOMER_BLIND_INDEX_KEY must be configured outside local mode")
        levels = [r.level for r in self.tier_rules]
        if len(set(levels)) != len(levels) or self.base_level in levels:
            raise ValueError("tier rule levels must be distinct and differ from the base level")
        if self.loyal_min_purchases <= self.returning_min_purchases:
            raise ValueError("CUSTOMER_LOYAL_MIN_PURCHASES must exceed CUSTOMER_RETURNING_MIN_PURCHASES")
        return self

    def master_key_bytes(self) -> dict[str, bytes]:
        return {kid: _key_bytes(kid, k.get_secret_value()) for kid, k in self.master_keys.items()}

    def blind_index_key_bytes(self) -> bytes:
        return _key_bytes("CUSTOMER_BLIND_INDEX_KEY", self.blind_index_key.get_secret_value())
