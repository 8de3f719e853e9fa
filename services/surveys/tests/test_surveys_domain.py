"""Pure rules of the surveys service: send time, consent and cooldown, answers, scoring, links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from guanxi_surveys import domain
from guanxi_surveys.domain.links import LinkExpired, LinkInvalid, read_link, sign_link
from hypothesis import given, settings
from hypothesis import strategies as st

SHANGHAI = ZoneInfo("Asia/Shanghai")
POLICY = domain.SendPolicy(domain.QuietHours(domain.parse_hhmm("21:00"), domain.parse_hhmm("09:00")),
                           domain.working_day_checker("CN"))


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SHANGHAI)


def choose_post_purchase(purchased_at: datetime, now: datetime | None = None) -> datetime:
    window = domain.send_window(purchased_at, now or purchased_at, 3, 7)
    assert window is not None
    return POLICY.choose(window[0], window[1], SHANGHAI)


def test_plain_weekday_purchase_is_surveyed_three_days_later_at_the_same_time() -> None:
    """A survey 3–7 days after a purchase (SV-1)."""
    # Mon 2026-11-16 10:00 → Thu 2026-11-19 10:00 (working day, not quiet).
    assert choose_post_purchase(local(2026, 11, 16, 10)) == local(2026, 11, 19, 10)


def test_quiet_hours_move_the_send_time_to_the_next_morning() -> None:
    # Mon 23:30 + 3 days is Thu 23:30, inside 21:00–09:00: Fri 09:00.
    assert choose_post_purchase(local(2026, 11, 16, 23, 30)) == local(2026, 11, 20, 9)
    # Just before quiet hours is fine.
    assert choose_post_purchase(local(2026, 11, 16, 20, 59)) == local(2026, 11, 19, 20, 59)


def test_weekend_make_up_working_day_counts_and_sunday_does_not() -> None:
    # Sat 2026-10-10 is a make-up working day (调休) in the CN calendar.
    assert choose_post_purchase(local(2026, 10, 7, 10)) == local(2026, 10, 10, 10)
    # Sat 22:00 is quiet, Sun 10/11 is a rest day: Mon 10/12 09:00.
    assert choose_post_purchase(local(2026, 10, 7, 22)) == local(2026, 10, 12, 9)


def test_window_without_any_working_day_falls_back_to_a_non_quiet_time_in_the_window() -> None:
    # 3–7 days after Sun 9/27 is 9/30 … 10/4; Wed 9/30 works. After Mon 9/28 22:00: 10/1 22:00 … 10/5 22:00, all
    # public holidays or Sunday; the first non-quiet moment is 10/2 09:00.
    assert choose_post_purchase(local(2026, 9, 28, 22)) == local(2026, 10, 2, 9)


def test_window_already_passed_means_no_window() -> None:
    """The 3–7 day window after a purchase (SV-1)."""
    bought = local(2026, 1, 1, 10)
    assert domain.send_window(bought, bought + timedelta(days=8), 3, 7) is None
    # Late inside the window: start from now.
    window = domain.send_window(bought, bought + timedelta(days=5), 3, 7)
    assert window == (bought + timedelta(days=5), bought + timedelta(days=7))


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 20), timezones=st.just(UTC)),
       st.floats(min_value=0, max_value=5), st.floats(min_value=0, max_value=6))
def test_send_time_always_inside_the_window_and_allowed_when_possible(bought: datetime, low: float, extra: float) -> None:
    """The send time stays inside its window (SV-1)."""
    earliest, latest = bought + timedelta(days=low), bought + timedelta(days=low + extra)
    chosen = POLICY.choose(earliest, latest, SHANGHAI)
    assert earliest <= chosen <= latest
    # If some minute of the window is a working, non-quiet moment, the chosen one is such a moment.
    probe = earliest
    allowed_exists = False
    while probe <= latest:
        if POLICY.allowed(probe, SHANGHAI):
            allowed_exists = True
            break
        probe += timedelta(minutes=30)
    if allowed_exists:
        assert POLICY.allowed(chosen, SHANGHAI)
        assert chosen <= probe  # and it is the earliest one


def test_consent_erasure_and_cooldown_decide_who_is_surveyed() -> None:
    at = datetime(2026, 5, 1, 2, tzinfo=UTC)
    cooldown = timedelta(days=30)
    assert domain.refusal_at_trigger(None, at, cooldown) is None  # unknown: decided again at send time
    assert domain.refusal_at_send(None) == "survey_consent_unknown"
    granted = domain.CustomerView("c", survey_consent=True)
    assert domain.refusal_at_trigger(granted, at, cooldown) is None and domain.refusal_at_send(granted) is None
    refused = domain.CustomerView("c", survey_consent=False)
    assert domain.refusal_at_trigger(refused, at, cooldown) == domain.refusal_at_send(refused) == "no_survey_consent"
    erased = domain.CustomerView("c", survey_consent=True, erased=True)
    assert domain.refusal_at_trigger(erased, at, cooldown) == domain.refusal_at_send(erased) == "customer_erased"
    recent = domain.CustomerView("c", survey_consent=True, last_survey_at=at - timedelta(days=29))
    assert domain.refusal_at_trigger(recent, at, cooldown) == "cooldown"
    older = domain.CustomerView("c", survey_consent=True, last_survey_at=at - timedelta(days=30))
    assert domain.refusal_at_trigger(older, at, cooldown) is None


def test_answers_are_validated_against_the_template() -> None:
    """Satisfaction 0–100 and NPS 0–10 (SV-2)."""
    template = domain.current_template("post_purchase")
    ok = domain.validate_answers(template, {"satisfaction": 85, "recommend": 9, "liked_most": "delivery", "comment": " fast "})
    assert (ok.csat, ok.nps, ok.values["comment"]) == (85, 9, "fast")
    with pytest.raises(domain.AnswerError) as err:
        domain.validate_answers(template, {"satisfaction": 101, "recommend": True, "liked_most": "colour", "age": 3})
    problems = " ".join(err.value.problems)
    for text in ("satisfaction", "recommend", "liked_most", "age: not a question"):
        assert text in problems
    with pytest.raises(domain.AnswerError, match="recommend: an answer is required"):
        domain.validate_answers(template, {"satisfaction": 70})


def test_templates_speak_chinese_and_english() -> None:
    zh = domain.current_template("post_resolution").render("zh")
    en = domain.current_template("post_resolution").render("en")
    assert zh["template"] == "post_resolution@v1" and en["language"] == "en"
    assert [q["id"] for q in zh["questions"]] == [q["id"] for q in en["questions"]]
    assert zh["questions"][0]["text"] != en["questions"][0]["text"]
    assert domain.current_template("post_purchase").render("fr")["language"] == "zh"


def test_low_scores_and_nps_categories() -> None:
    assert [domain.nps_category(n) for n in (0, 6, 7, 8, 9, 10)] == ["detractor", "detractor", "passive", "passive",
                                                                      "promoter", "promoter"]
    assert domain.low_score_reasons(59, 7, 60) == ["csat_below_60"]
    assert domain.low_score_reasons(60, 6, 60) == ["nps_detractor"]
    assert domain.low_score_reasons(60, 7, 60) == []


def answered(figures: domain.Figures, *scores: tuple[int, int], n: int = 1) -> domain.Figures:
    for csat, nps in scores:
        figures.count(n, completed=True, csat=csat, nps=nps)
    return figures


def test_report_figures_are_sums_then_ratios() -> None:
    """Average satisfaction against 85, NPS and response rate (SV-3)."""
    figures = answered(domain.Figures(), (90, 10), (80, 9), (70, 8), (100, 3))
    figures.count(4, completed=False, csat=None, nps=None)
    assert (figures.sent, figures.completed, figures.csat_sum, figures.csat_n) == (8, 4, 90 + 80 + 70 + 100, 4)
    assert (figures.nps_n, figures.promoters, figures.detractors) == (4, 2, 1)
    report = figures.as_report(85)
    assert report["avg_csat"] == 85.0 and report["meets_target"] is True
    assert report["nps"] == 25.0 and report["response_rate"] == 0.5
    empty = domain.Figures().as_report(85)
    assert empty["avg_csat"] is None and empty["nps"] is None and empty["response_rate"] is None


def test_answer_link_is_signed_and_expires() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    token = sign_link("s-1", "n-1", now + timedelta(days=14), "a-secret-of-at-least-thirty-two-bytes")
    claims = read_link(token, "a-secret-of-at-least-thirty-two-bytes", now)
    assert (claims.survey_id, claims.nonce) == ("s-1", "n-1")
    with pytest.raises(LinkExpired):
        read_link(token, "a-secret-of-at-least-thirty-two-bytes", now + timedelta(days=14))
    with pytest.raises(LinkInvalid):
        read_link(token, "another-secret-of-at-least-32-bytes!", now)
    with pytest.raises(LinkInvalid):
        read_link(token[:-3] + "abc", "a-secret-of-at-least-thirty-two-bytes", now)


def test_figures_and_distribution_from_counts_of_equal_outcomes() -> None:
    figures = answered(domain.Figures(), (90, 10), n=2)
    answered(figures, (50, 3), (80, 8))
    figures.count(4, completed=False, csat=None, nps=None)
    # 8 sent, 4 answered; CSAT (2×90 + 50 + 80) / 4 = 77.5; NPS (2 promoters − 1 detractor) / 4 = 25.
    assert (figures.sent, figures.completed, figures.csat_sum, figures.csat_n) == (8, 4, 310, 4)
    assert (figures.nps_n, figures.promoters, figures.detractors) == (4, 2, 1)
    assert figures.as_report(85)["avg_csat"] == 77.5
    dist = figures.distribution()
    assert dist["csat"] == {"0-59": 1, "60-69": 0, "70-79": 0, "80-89": 1, "90-100": 2}
    assert (dist["nps"]["10"], dist["nps"]["3"], dist["nps"]["8"], sum(dist["nps"].values())) == (2, 1, 1, 4)


def test_figures_of_groups_add_up_to_the_overall_figures() -> None:
    """Report groups add up to the overall figures (SV-3)."""
    web = answered(domain.Figures(), (90, 10), (50, 3))
    app = answered(domain.Figures(), (80, 8))
    app.count(1, completed=False, csat=None, nps=None)
    overall = domain.Figures.total([web, app])
    assert overall == answered(domain.Figures(sent=1), (90, 10), (50, 3), (80, 8))
    assert (overall.sent, overall.completed, overall.as_report(85)["avg_csat"]) == (4, 3, 73.33)
    # A sent survey answered without an NPS counts for CSAT only.
    figures = answered(domain.Figures(), (70, 9))
    figures.count(1, completed=True, csat=60, nps=None)
    assert (figures.csat_n, figures.nps_n, figures.as_report(85)["avg_csat"]) == (2, 1, 65.0)
