"""Pure rules: quiet hours, frequency caps, channel choice, masking, consent, templates (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from guanxi_notifications import domain
from guanxi_notifications.domain import Category, Channel, InvalidCursor
from guanxi_notifications.domain.defaults import SEEDS
from guanxi_notifications.domain.templating import (
    STANDARD_VARIABLES,
    MissingVariables,
    Rendered,
    TemplateInvalid,
    render,
    validate,
)
from guanxi_notifications.store import decode_cursor, encode_cursor
from hypothesis import given, settings
from hypothesis import strategies as st

ZONES = st.sampled_from(["Asia/Shanghai", "Europe/London", "America/New_York", "Australia/Lord_Howe", "UTC"])
INSTANTS = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC))
CLOCK_TIMES = st.times().map(lambda t: t.replace(second=0, microsecond=0))


@settings(max_examples=150, deadline=None)
@given(now=INSTANTS, tz_name=ZONES)
def test_default_quiet_hours_end_at_the_next_nine_oclock_local(now: datetime, tz_name: str) -> None:
    tz = ZoneInfo(tz_name)
    end = domain.quiet_hours_end(now, tz, time(21, 0), time(9, 0))
    local = now.astimezone(tz)
    quiet = local.hour >= 21 or local.hour < 9
    assert (end is not None) == quiet
    if end is not None:
        assert end > now
        assert end - now <= timedelta(hours=13)  # 12 h window, plus a DST shift at most
        assert end.astimezone(tz).time() in (time(9, 0), time(10, 0))  # 10:00 only when 09:00 does not exist


@settings(max_examples=150, deadline=None)
@given(now=INSTANTS, tz_name=ZONES, start=CLOCK_TIMES, end=CLOCK_TIMES)
def test_a_released_message_is_outside_any_quiet_window(now: datetime, tz_name: str, start: time, end: time) -> None:
    tz = ZoneInfo(tz_name)
    release = domain.quiet_hours_end(now, tz, start, end)
    if start == end:
        assert release is None
    elif release is not None:
        assert release > now
        assert domain.quiet_hours_end(release, tz, start, end) is None  # released exactly when it is no longer quiet


@settings(max_examples=150, deadline=None)
@given(offsets=st.lists(st.integers(min_value=0, max_value=10 * 24 * 60), max_size=12),
       limit=st.integers(min_value=1, max_value=5), now=INSTANTS)
def test_frequency_cap_release_is_the_earliest_moment_one_more_fits(offsets: list[int], limit: int, now: datetime) -> None:
    window = timedelta(days=7)
    sent = [now - timedelta(minutes=m) for m in offsets]
    release = domain.frequency_cap_release(sent, limit, window, now)
    in_window = [s for s in sent if now - window < s <= now]
    if len(in_window) < limit:
        assert release is None
    else:
        assert release is not None and release > now
        assert domain.frequency_cap_release(sent, limit, window, release) is None
        assert domain.frequency_cap_release(sent, limit, window, release - timedelta(seconds=1)) is not None


def test_service_messages_are_never_capped_and_only_explicit_withdrawal_stops_them() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert domain.frequency_cap_release([now] * 50, None, timedelta(days=1), now) is None
    assert domain.consent_refusal(Category.service, {}) is None
    assert domain.consent_refusal(Category.service, {"service": False}) == "no_consent:service"
    assert domain.consent_refusal(Category.survey, {"survey": False}) == "no_consent:survey"
    assert domain.consent_refusal(Category.marketing, None) is None  # unknown: the customer service decides


@given(opted_out=st.sets(st.sampled_from([c.value for c in Channel])),
       preferred=st.lists(st.sampled_from([c.value for c in Channel] + ["fax"]), max_size=5),
       requested=st.none() | st.sampled_from(list(Channel)))
def test_channel_choice_never_uses_an_opted_out_channel(opted_out: set[str], preferred: list[str],
                                                        requested: Channel | None) -> None:
    available = [Channel.email, Channel.inapp]
    candidates, skipped = domain.channel_candidates(requested, preferred, opted_out, available)
    assert all(c.value not in opted_out and c in available for c in candidates)
    assert all(c.value in opted_out for c in skipped)
    if requested is not None:
        assert candidates in ([], [requested])


def test_channel_order_follows_preferences_then_the_default() -> None:
    candidates, _ = domain.channel_candidates(None, ["inapp", "email"], [], list(Channel))
    assert candidates == [Channel.inapp, Channel.email, Channel.sms, Channel.push]
    candidates, skipped = domain.channel_candidates(Channel.email, None, ["email"], list(Channel))
    assert (candidates, skipped) == ([], [Channel.email])


@given(local=st.from_regex(r"[a-z0-9._]{1,20}", fullmatch=True), digits=st.from_regex(r"\+86[0-9]{11}", fullmatch=True))
def test_masked_addresses_do_not_reveal_the_address(local: str, digits: str) -> None:
    email = f"{local}@example.com"
    masked = domain.mask_address(Channel.email, email)
    assert masked.endswith("@example.com") and masked.startswith(local[0])
    # Only the local part is masked: a local part that also occurs in the domain ("ex") is not a leak.
    assert local not in masked.removesuffix("@example.com") or len(local) == 1
    masked_phone = domain.mask_address(Channel.sms, digits)
    assert masked_phone[-4:] == digits[-4:] and digits[3:-4] not in masked_phone and len(masked_phone) == len(digits)


def test_ids_are_deterministic_per_trigger_event_and_template() -> None:
    spec = domain.NotificationSpec("c1", "complaint_acknowledged", Category.service, {}, "evt-1", "complaint.acknowledged")
    again = domain.NotificationSpec("c1", "complaint_acknowledged", Category.service, {"x": 1}, "evt-1", "complaint.acknowledged")
    other = domain.NotificationSpec("c1", "complaint_acknowledged", Category.service, {}, "evt-2", "complaint.acknowledged")
    assert spec.notification_id == again.notification_id != other.notification_id
    assert domain.event_id("n", "held", 1) != domain.event_id("n", "held", 2)
    assert domain.pseudonym("c1") == domain.pseudonym("c1") != domain.pseudonym("c2")
    assert "c1" not in domain.pseudonym("c1")


def test_language_choice() -> None:
    assert domain.choose_language(None, "en-GB", "zh") == "en"
    assert domain.choose_language("fr", None, "zh_CN") == "zh"
    assert domain.choose_language(None, None) == "zh"


def test_every_seeded_template_is_valid_and_renders_in_both_languages() -> None:
    keys = {(s.key, s.language) for s in SEEDS}
    for key in {s.key for s in SEEDS}:
        assert {(key, "zh"), (key, "en")} <= keys
    for seed in SEEDS:
        validate(seed.subject, seed.body, list(seed.required_variables))
        values = {v: "X" for v in [*seed.required_variables, *STANDARD_VARIABLES]}
        rendered = render(seed.subject, seed.body, values, list(seed.required_variables))
        assert rendered.subject and "X" in rendered.body
    for template in domain.COMPLAINT_TEMPLATES.values():
        assert (template, "zh") in keys
    for template, _ in domain.CARE_TEMPLATES.values():
        assert (template, "en") in keys


def test_strict_sandboxed_templates_fail_clearly() -> None:
    with pytest.raises(TemplateInvalid, match="undeclared variables: amount"):
        validate("Hi", "{{ amount }}", [])
    with pytest.raises(MissingVariables) as missing:
        render("Hi", "{{ amount }} {{ link }}", {"link": "x"}, ["amount", "link"])
    assert missing.value.names == ["amount"]
    with pytest.raises(TemplateInvalid, match="unsafe template"):
        render("Hi", "{{ x.__class__.__mro__ }}", {"x": ""}, ["x"])
    with pytest.raises(TemplateInvalid, match="failed to render"):
        render("Hi", "{{ x.missing_attribute }}", {"x": ""}, ["x"])
    with pytest.raises(TemplateInvalid, match="syntax error"):
        validate("Hi", "{% for %}", [])
    assert render("{{ a }}", "{{ a|upper }}", {"a": "b"}, ["a"]).body == "B"


def test_case_number_and_status_link_are_optional_variables() -> None:
    variables = domain.complaint_variables({"complaint_id": "CMP-1", "number": "TS-2026-000001", "status_link": "L",
                                            "note": "internal"})
    assert variables["case_number"] == "TS-2026-000001" and variables["status_link"] == "L" and "note" not in variables
    old = domain.complaint_variables({"complaint_id": "CMP-1"})  # a case older than numbers
    assert old["case_number"] is None and old["status_link"] is None
    # A template may use them undeclared; a message without them renders (they are empty).
    validate("{{ case_number or complaint_id }}", "{% if status_link %}{{ status_link }}{% endif %}", ["complaint_id"])
    assert render("{{ case_number or complaint_id }}", "[{% if status_link %}{{ status_link }}{% endif %}]",
                  {"complaint_id": "CMP-1"}, ["complaint_id"]) == Rendered("CMP-1", "[]")


def test_cursor_round_trip() -> None:
    at = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at, "abc")) == (at, "abc")
    for foreign in ("not-a-cursor", "bnVsbA", "WzFd"):  # garbage, "null", "[1]"
        with pytest.raises(InvalidCursor):
            decode_cursor(foreign)
