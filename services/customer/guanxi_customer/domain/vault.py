"""The PII vault: envelope encryption and blind indexes (CI-5, DESIGN.md "Personal data").

Each customer has a random 256-bit data key (DEK). Personal fields are sealed with AES-256-GCM
under that DEK, with the customer id and field name as associated data, so a ciphertext copied
onto another customer or field fails to open. The DEK itself is stored only wrapped (AES-GCM)
by a master key (KEK) from settings, with the KEK's id beside it: rotating the master key means
re-wrapping DEKs, never re-encrypting data. Deleting the wrapped DEK makes every ciphertext of
that customer unreadable forever (crypto-shredding).

Blind indexes (HMAC-SHA256 under a separate key, over the normalised value) allow exact lookup
by phone or email without storing or revealing the value. No I/O here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class VaultError(Exception):
    """A ciphertext or wrapped key cannot be opened (wrong key, tampered, or shredded)."""


@dataclass(frozen=True)
class WrappedKey:
    kek_id: str
    wrapped: str  # base64(nonce + ciphertext)

    def as_doc(self) -> dict[str, str]:
        return {"kek_id": self.kek_id, "wrapped": self.wrapped}


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> str:
    nonce = os.urandom(NONCE_BYTES)
    return base64.b64encode(nonce + AESGCM(key).encrypt(nonce, plaintext, aad)).decode()


def _open(key: bytes, sealed: str, aad: bytes) -> bytes:
    try:
        raw = base64.b64decode(sealed)
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError) as exc:
        raise VaultError("ciphertext cannot be opened") from exc


class Vault:
    def __init__(self, master_keys: dict[str, bytes], current_kek_id: str, blind_index_key: bytes) -> None:
        if current_kek_id not in master_keys:
            raise ValueError(f"unknown current master key id {current_kek_id!r}")
        self._keks = dict(master_keys)
        self.current_kek_id = current_kek_id
        self._bik = blind_index_key

    # Data keys.
    def new_data_key(self, customer_id: str) -> tuple[bytes, WrappedKey]:
        dek = AESGCM.generate_key(bit_length=256)
        return dek, self.wrap(customer_id, dek)

    def wrap(self, customer_id: str, dek: bytes) -> WrappedKey:
        kek = self._keks[self.current_kek_id]
        return WrappedKey(self.current_kek_id, _seal(kek, dek, f"dek:{customer_id}".encode()))

    def unwrap(self, customer_id: str, wrapped: WrappedKey) -> bytes:
        kek = self._keks.get(wrapped.kek_id)
        if kek is None:
            raise VaultError(f"master key {wrapped.kek_id!r} is not configured")
        return _open(kek, wrapped.wrapped, f"dek:{customer_id}".encode())

    def rewrap(self, customer_id: str, wrapped: WrappedKey) -> WrappedKey:
        """The same data key wrapped by the current master key (rotation)."""
        return self.wrap(customer_id, self.unwrap(customer_id, wrapped))

    # Fields.
    @staticmethod
    def encrypt(dek: bytes, customer_id: str, field: str, value: str) -> str:
        return _seal(dek, value.encode(), f"{customer_id}:{field}".encode())

    @staticmethod
    def decrypt(dek: bytes, customer_id: str, field: str, sealed: str) -> str:
        return _open(dek, sealed, f"{customer_id}:{field}".encode()).decode()

    # Blind index.
    def blind_index(self, kind: str, normalised: str) -> str:
        return hmac.new(self._bik, f"{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()
