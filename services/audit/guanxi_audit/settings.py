"""Settings of the audit service (environment variables prefixed `AUDIT_`)."""

from __future__ import annotations

from typing import ClassVar

from guanxi_shared.settings import DEV_SECRET, ServiceSettings
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

DEV_CHECKPOINT_KEY = "guanxi-local-audit-checkpoint-key-change-me"  # refused outside local mode

# Names of payload fields whose values are personal (or free text that may hold personal data).
# On `customer.erased` these are replaced by the marker in every stored record of that customer.
DEFAULT_PERSONAL_FIELDS: tuple[str, ...] = (
    "name", "full_name", "phone", "mobile", "email", "address", "birthday", "id_number", "national_id",
    "passport", "contact", "contact_details", "description", "summary", "content", "comment", "comments",
    "notes", "text", "body", "answer", "answers", "free_text", "client_ip", "recipient", "to",
)


class AuditSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIT_", extra="ignore", populate_by_name=True)

    service_name: ClassVar[str] = "audit"
    http_port: int = 8105

    # Tamper evidence: HMAC key sealing checkpoints (and the archive anchor).
    checkpoint_key: SecretStr = SecretStr(DEV_CHECKPOINT_KEY)
    checkpoint_interval_seconds: float = Field(60.0, gt=0, description="how often the chain head is sealed")
    verify_interval_seconds: float = Field(3600.0, ge=0, description="periodic full verification; 0 = off")
    verify_page_size: int = Field(1000, ge=10, le=10_000)

    # Retention: records younger than the minimum are never removed; archiving is off unless set.
    retention_min_days: int = Field(183, ge=1, description="minimum retention (about 6 months)")
    archive_after_days: int | None = Field(None, description="move older chain prefix to the archive; None = keep")
    archive_interval_seconds: float = Field(3600.0, gt=0)

    # Erasure.
    personal_fields: list[str] = Field(default_factory=lambda: list(DEFAULT_PERSONAL_FIELDS))
    erasure_marker: str = "[erased]"

    # Violation rules (CF-3).
    bulk_pii_max_customers: int = Field(50, ge=1, description="more distinct customers than this in the window")
    bulk_pii_window_seconds: int = Field(3600, ge=1)
    # A service's read of contact details is justified by a send of that customer and purpose within this
    # many minutes after it; without one it counts toward the bulk rule once this has passed.
    send_justifies_read_minutes: float = Field(10.0, gt=0, le=24 * 60)
    bulk_pii_settle_interval_seconds: float = Field(60.0, gt=0, description="how often unjustified service reads are settled")
    role_violation_window_seconds: int = Field(3600, ge=1, description="one role violation per actor per window")
    # Path prefix → roles that may reach it; an allowed request by another role is a violation.
    role_paths: dict[str, list[str]] = Field(default_factory=lambda: {"/api/v1/audit": ["auditor"]})

    # Queries.
    query_max_limit: int = Field(500, ge=1, le=10_000)

    @model_validator(mode="after")
    def _checks(self) -> AuditSettings:
        if self.environment != "local" and self.checkpoint_key.get_secret_value() in (DEV_CHECKPOINT_KEY, DEV_SECRET):
            raise ValueError("AUDIT_CHECKPOINT_KEY must be set outside local mode")
        if self.archive_after_days is not None and self.archive_after_days < self.retention_min_days:
            raise ValueError("AUDIT_ARCHIVE_AFTER_DAYS may not be shorter than AUDIT_RETENTION_MIN_DAYS")
        return self
