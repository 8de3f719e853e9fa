"""Pure rules of the customer service: validation, masking, consent, the vault, classification and
purchase folding, response clocks, care occasions, the events it publishes and its refusals.

Nothing here does I/O; handlers load through the store, decide with these, and save through the store.
"""

from __future__ import annotations

from .care import (
    add_minutes,
    birthday_key,
    care_due,
    churn_flagged,
    churn_key,
    commitment_overdue,
    last_activity,
    next_birthday,
    occasion_current,
    profile_update_key,
    response_minutes,
    response_overdue,
    revisit_key,
    zone,
)
from .classification import (
    PURCHASE_STATE,
    Fold,
    Tenure,
    applied_orders,
    fold_purchase,
    levels_in_order,
    member_level,
    order_key,
    plan_fold,
    purchase_state,
    tenure,
)
from .errors import (
    ClearReadRefused,
    CommitmentNotFound,
    CustomerErased,
    CustomerExists,
    CustomerNotFound,
    InvalidInput,
    NoConsent,
    RegistrationRaced,
    ReportAlreadyFiled,
    UnknownPurpose,
    VisitNotFound,
)
from .events import CONTRACTS, SOURCE, derived_id, event
from .personal import data_key, reveal, reveal_unless_erased, seal_changes
from .profile import (
    ERASED,
    ERASED_FIELDS,
    INDUSTRIES,
    PII_FIELDS,
    PLAIN_FIELDS,
    REDACTED,
    REGISTERED,
    SIZES,
    UNREGISTERED,
    Doc,
    check_timezone,
    consent_entries,
    consent_flags,
    mask_email,
    mask_phone,
    mask_value,
    nested,
    normalise_email,
    normalise_id_number,
    normalise_phone,
    normalise_pii,
    normalise_pii_fields,
    parse_birthday,
    stub,
)
from .vault import Vault, VaultError, WrappedKey

__all__ = [
    "CONTRACTS", "ERASED", "ERASED_FIELDS", "INDUSTRIES", "PII_FIELDS", "PLAIN_FIELDS", "PURCHASE_STATE", "REDACTED",
    "REGISTERED", "SIZES", "SOURCE", "UNREGISTERED", "ClearReadRefused", "CommitmentNotFound", "CustomerErased",
    "CustomerExists", "CustomerNotFound", "Doc", "Fold", "InvalidInput", "NoConsent", "RegistrationRaced",
    "ReportAlreadyFiled", "Tenure", "UnknownPurpose", "Vault", "VaultError", "VisitNotFound", "WrappedKey", "add_minutes",
    "applied_orders", "birthday_key", "care_due", "check_timezone", "churn_flagged", "churn_key", "commitment_overdue",
    "consent_entries", "consent_flags", "data_key", "derived_id", "event", "fold_purchase", "last_activity",
    "levels_in_order", "mask_email", "mask_phone", "mask_value", "member_level", "nested", "next_birthday",
    "normalise_email", "normalise_id_number", "normalise_phone", "normalise_pii", "normalise_pii_fields",
    "occasion_current", "order_key", "parse_birthday", "plan_fold", "profile_update_key", "purchase_state",
    "response_minutes", "response_overdue", "reveal", "reveal_unless_erased", "revisit_key", "seal_changes", "stub",
    "tenure", "zone",
]
