"""Pure rules of the customer service: masking, tier rules, vault, response clocks, care dates, settings."""

from __future__ import annotations

import base64
import os
from datetime import UTC, date, datetime
from decimal import Decimal

import phonenumbers
import pytest
from guanxi_customer import domain
from guanxi_customer.domain import Vault, VaultError
from guanxi_customer.settings import CustomerSettings, ResponseTargets, TierRule, default_tier_rules
from hypothesis import given, settings
from hypothesis import strategies as st

RULES = default_tier_rules()
LEVELS = domain.levels_in_order(RULES, "standard")

# Masking -------------------------------------------------------------------------------------------------

CN_MOBILE = st.builds(lambda prefix, rest: f"+86{prefix}{rest:08d}", st.sampled_from(["138", "139", "150", "186", "177"]),
                      st.integers(0, 99_999_999))
OTHER_PHONES = st.sampled_from(["+14155552671", "+447911123456", "+33612345678", "+81312345678", "+6591234567"])


@given(st.one_of(CN_MOBILE, OTHER_PHONES))
def test_masked_phone_hides_the_middle_and_keeps_last_four(e164: str) -> None:
    """Staff see masked phone numbers (CI-5)."""
    national = str(phonenumbers.parse(e164, None).national_number)
    masked = domain.mask_phone(e164)
    assert national not in masked and e164 not in masked
    assert masked.endswith(national[-4:] if len(national) >= 7 else national[-2:])
    assert "*" in masked
    assert sum(c.isdigit() for c in masked.split(" ")[-1]) <= 7


def test_cn_mobile_masks_like_the_policy_example() -> None:
    assert domain.mask_phone("+8613812345678") == "+86 138****5678"


LOCAL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._", min_size=1, max_size=30).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s)


@given(LOCAL, st.sampled_from(["example.com", "qq.com", "corp.example.cn"]))
def test_masked_email_keeps_first_letter_and_domain_only(local: str, dom: str) -> None:
    """Staff see masked email addresses (CI-5)."""
    email = f"{local}@{dom}"
    masked = domain.mask_email(email)
    assert masked == f"{local[0]}***@{dom}"
    assert email not in masked
    if len(local) > 1:
        assert local not in masked.split("@")[0]


PLAIN_TEXT = st.text(alphabet=st.characters(categories=("L", "Nd")), min_size=1, max_size=60)


@given(PLAIN_TEXT)
def test_masked_address_and_ids_never_contain_the_whole_value(value: str) -> None:
    """Masked addresses, id numbers and birthdays (CI-5)."""
    for field in ("address", "id_number", "birthday"):
        assert value not in domain.mask_value(field, value)


def test_masked_birthday_reveals_nothing() -> None:
    assert domain.mask_value("birthday", "1990-05-17") == "****-**-**"
    assert domain.mask_value("id_number", "110101199005171234") == "**************1234"


# Tier rules -------------------------------------------------------------------------------------------

AMOUNTS = st.decimals(min_value=0, max_value=200_000, places=2, allow_nan=False, allow_infinity=False)


@given(st.integers(0, 100), AMOUNTS, st.integers(0, 10), AMOUNTS)
def test_member_level_never_drops_as_purchases_or_amount_grow(count: int, total: Decimal, more: int, extra: Decimal) -> None:
    """The member level follows purchases (CI-3, CR-1)."""
    before = domain.member_level(count, total, RULES, "standard")
    after = domain.member_level(count + more, total + extra, RULES, "standard")
    assert LEVELS.index(after) >= LEVELS.index(before)


def _met(rule: TierRule, count: int, total: Decimal) -> bool:
    if rule.match == "all":
        return count >= rule.min_purchases and total >= rule.min_amount
    return count >= rule.min_purchases or total >= rule.min_amount


@given(st.integers(0, 100), AMOUNTS)
def test_member_level_is_the_highest_rule_met(count: int, total: Decimal) -> None:
    """Member level from purchase frequency and amount (CI-3, CR-1)."""
    expected = "standard"
    for rule in RULES:
        if _met(rule, count, total):
            expected = rule.level
    assert domain.member_level(count, total, RULES, "standard") == expected


@given(st.lists(st.tuples(st.integers(1, 20), st.integers(1, 10_000)), min_size=1, max_size=4),
       st.sampled_from(["any", "all"]))
def test_configured_thresholds_are_reached_exactly_at_their_values(steps: list[tuple[int, int]], match: str) -> None:
    """Tier rules are configuration, not code (CI-3)."""
    # Cumulative thresholds make the configured levels strictly increasing, as an operator would.
    rules, count, amount = [], 0, 0
    for i, (dc, da) in enumerate(steps):
        count, amount = count + dc, amount + da
        rules.append(TierRule(level=f"l{i}", min_purchases=count, min_amount=Decimal(amount), match=match))
    for rule in rules:
        assert domain.member_level(rule.min_purchases, rule.min_amount, rules, "base") == rule.level
        below = domain.member_level(rule.min_purchases - 1, rule.min_amount - 1, rules, "base")
        assert below != rule.level
    assert domain.member_level(0, Decimal(0), rules, "base") == "base"


def test_default_rules_examples() -> None:
    """Member levels by how often and how much a customer buys (CR-1)."""
    assert domain.member_level(1, Decimal("100"), RULES, "standard") == "standard"
    assert domain.member_level(3, Decimal("100"), RULES, "standard") == "silver"
    assert domain.member_level(1, Decimal("1000"), RULES, "standard") == "silver"
    assert domain.member_level(10, Decimal("10"), RULES, "standard") == "gold"
    assert domain.member_level(30, Decimal("10000"), RULES, "standard") == "gold"  # platinum needs both
    assert domain.member_level(30, Decimal("50000"), RULES, "standard") == "platinum"


@given(st.integers(0, 200))
def test_tenure_follows_purchase_count(count: int) -> None:
    """Tenure (new, returning, loyal) follows the purchases (CI-3)."""
    t = domain.tenure(count, 2, 5)
    assert t == (domain.Tenure.loyal if count >= 5 else domain.Tenure.returning if count >= 2 else domain.Tenure.new)


# Validation ---------------------------------------------------------------------------------------------

def test_phone_email_birthday_validation() -> None:
    """Input is validated (CI-4)."""
    assert domain.normalise_phone(" +86 138 1234 5678 ") == "+8613812345678"
    with pytest.raises(domain.InvalidInput) as err:
        domain.normalise_phone("13900001111")
    assert "13900001111" not in str(err.value)  # errors never echo the value
    with pytest.raises(domain.InvalidInput):
        domain.normalise_phone("+861234")
    assert domain.normalise_email("Alice.Wang@Example.COM") == "alice.wang@example.com"
    with pytest.raises(domain.InvalidInput):
        domain.normalise_email("not-an-email")
    with pytest.raises(domain.InvalidInput):
        domain.parse_birthday("2990-01-01", date(2026, 1, 1))
    with pytest.raises(domain.InvalidInput):
        domain.parse_birthday("17/05/1990", date(2026, 1, 1))


def test_invalid_input_names_the_field_and_a_code_for_forms() -> None:
    """A form shows each refusal beside its field, in the person's language: the 422 carries
    ``errors: [{location, message, code}]`` (never the value typed)."""
    with pytest.raises(domain.InvalidInput) as err:
        domain.normalise_phone("13900001111")
    assert err.value.extra["errors"] == [{"location": "body.phone", "message": err.value.detail, "code": "phone_format"}]
    cases = [(lambda: domain.normalise_phone("+861234"), "phone", "phone_invalid"),
             (lambda: domain.normalise_email("not-an-email"), "email", "email_invalid"),
             (lambda: domain.parse_birthday("17/05/1990", date(2026, 1, 1)), "birthday", "birthday_format"),
             (lambda: domain.parse_birthday("2990-01-01", date(2026, 1, 1)), "birthday", "birthday_range"),
             (lambda: domain.normalise_id_number("x"), "id_number", "id_number_format"),
             (lambda: domain.check_timezone("Mars/Base"), "timezone", "timezone_unknown")]
    for call, field, code in cases:
        with pytest.raises(domain.InvalidInput) as refused:
            call()
        (error,) = refused.value.extra["errors"]
        assert (error["location"], error["code"]) == (f"body.{field}", code)
    assert "errors" not in domain.InvalidInput("give exactly one of phone or email").extra


# Vault --------------------------------------------------------------------------------------------------

def _vault(kid: str = "k1", keys: dict[str, bytes] | None = None) -> Vault:
    return Vault(keys or {"k1": os.urandom(32)}, kid, os.urandom(32))


def test_vault_roundtrip_binds_customer_and_field() -> None:
    """Personal data is encrypted at rest, bound to its customer and field (CI-5)."""
    vault = _vault()
    dek, wrapped = vault.new_data_key("c1")
    sealed = vault.encrypt(dek, "c1", "phone", "+8613812345678")
    assert "13812345678" not in sealed
    assert vault.decrypt(vault.unwrap("c1", wrapped), "c1", "phone", sealed) == "+8613812345678"
    with pytest.raises(VaultError):
        vault.decrypt(dek, "c2", "phone", sealed)  # moved to another customer
    with pytest.raises(VaultError):
        vault.decrypt(dek, "c1", "email", sealed)  # moved to another field
    with pytest.raises(VaultError):
        vault.unwrap("c2", wrapped)


def test_rotation_rewraps_data_keys_and_old_ciphertexts_still_open() -> None:
    """Master-key rotation of the encryption at rest (CI-5)."""
    k1, k2 = os.urandom(32), os.urandom(32)
    old = Vault({"k1": k1}, "k1", os.urandom(32))
    dek, wrapped = old.new_data_key("c1")
    sealed = old.encrypt(dek, "c1", "email", "a@example.com")
    new = Vault({"k1": k1, "k2": k2}, "k2", os.urandom(32))
    rewrapped = new.rewrap("c1", wrapped)
    assert rewrapped.kek_id == "k2"
    only_new = Vault({"k2": k2}, "k2", os.urandom(32))
    assert only_new.decrypt(only_new.unwrap("c1", rewrapped), "c1", "email", sealed) == "a@example.com"
    with pytest.raises(VaultError):
        only_new.unwrap("c1", wrapped)


@settings(max_examples=30)
@given(st.sampled_from(["+8613812345678", "a@example.com"]))
def test_blind_index_is_stable_keyed_and_opaque(value: str) -> None:
    key = os.urandom(32)
    a, b = Vault({"k": os.urandom(32)}, "k", key), Vault({"k": os.urandom(32)}, "k", key)
    assert a.blind_index("phone", value) == b.blind_index("phone", value)
    assert a.blind_index("phone", value) != _vault().blind_index("phone", value)
    assert value not in a.blind_index("phone", value)


# Response clocks and care dates -----------------------------------------------------------------------

def test_response_targets_follow_the_policy() -> None:
    """Response targets: consultation 30 min, urgent 1 h, email 4 h, else 24 h (CC-3)."""
    t = ResponseTargets()
    assert domain.response_minutes("chat", "consultation", False, t) == 30
    assert domain.response_minutes("phone", None, True, t) == 60
    assert domain.response_minutes("email", None, None, t) == 240
    assert domain.response_minutes("social", None, None, t) == 24 * 60


def test_next_birthday_is_today_or_later_in_the_customers_zone() -> None:
    """When the birthday greeting is due (CR-2)."""
    now = datetime(2026, 5, 16, 20, 0, tzinfo=UTC)  # already 17 May 04:00 in Shanghai
    at = domain.next_birthday("1990-05-17", now, "Asia/Shanghai", 9)
    assert at == datetime(2026, 5, 17, 1, 0, tzinfo=UTC)
    later = domain.next_birthday("1990-05-16", now, "Asia/Shanghai", 9)
    assert later.year == 2027
    assert domain.next_birthday("1992-02-29", datetime(2027, 1, 1, tzinfo=UTC), "UTC", 9).date() == date(2027, 2, 28)


# Settings ---------------------------------------------------------------------------------------------

def test_production_refuses_development_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUANXI_INTERNAL_SECRET", "x" * 40)
    with pytest.raises(ValueError, match="MASTER_KEYS"):
        CustomerSettings(environment="production")
    key, bik = base64.b64encode(os.urandom(32)).decode(), base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("CUSTOMER_MASTER_KEYS", f'{{"2026-01": "{key}"}}')
    monkeypatch.setenv("CUSTOMER_MASTER_KEY_ID", "2026-01")
    monkeypatch.setenv("CUSTOMER_BLIND_INDEX_KEY", bik)
    configured = CustomerSettings(environment="production")
    assert configured.master_key_bytes()["2026-01"] == base64.b64decode(key)
    with pytest.raises(ValueError, match="32 bytes"):
        CustomerSettings(master_keys={"k": base64.b64encode(b"short").decode()}, master_key_id="k")
