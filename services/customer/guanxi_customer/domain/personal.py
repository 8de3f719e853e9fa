"""A customer's personal fields as stored: sealed under ``pii``, blind indexes under ``lookup``, the data
key wrapped under ``vault``. Opened only inside this service, for callers allowed to see them."""

from __future__ import annotations

from typing import Any

from .profile import ERASED, Doc
from .vault import Vault, VaultError, WrappedKey

# The personal fields exact lookup can find a customer by.
INDEXED = ("phone", "email")


def data_key(vault: Vault, doc: Doc) -> bytes:
    vault_doc = doc.get("vault")
    if not vault_doc:
        raise VaultError("no data key (customer erased)")
    return vault.unwrap(doc["_id"], WrappedKey(**vault_doc))


def reveal(vault: Vault, doc: Doc) -> dict[str, str]:
    """Clear personal fields of one customer."""
    sealed = doc.get("pii") or {}
    if not sealed:
        return {}
    dek = data_key(vault, doc)
    return {f: vault.decrypt(dek, doc["_id"], f, v) for f, v in sealed.items()}


def reveal_unless_erased(vault: Vault, doc: Doc) -> dict[str, str]:
    return reveal(vault, doc) if doc.get("status") != ERASED else {}


def seal_changes(vault: Vault, customer_id: str, dek: bytes, values: dict[str, str | None]) -> tuple[dict[str, Any], list[str]]:
    """Field paths to set and to remove for sealed values and their blind indexes (None removes)."""
    sets: dict[str, Any] = {}
    unsets: list[str] = []
    for field, value in values.items():
        if value is None:
            unsets.append(f"pii.{field}")
            if field in INDEXED:
                unsets.append(f"lookup.{field}")
            continue
        sets[f"pii.{field}"] = vault.encrypt(dek, customer_id, field, value)
        if field in INDEXED:
            sets[f"lookup.{field}"] = vault.blind_index(field, value)
    return sets, unsets
