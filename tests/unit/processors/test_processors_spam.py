"""Spam score: each signal fires on its own, the score is the sum of its listed reasons, rates count in windows."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from processor_events import NOW, PEPPER, build_event

from pipeline.models.common import Channel
from pipeline.models.contact import ContactEvent
from pipeline.models.tagged import SpamReview
from pipeline.policy.model import default_policy_path, load_policy
from pipeline.processors import ChainContext, Passed, Quarantined, compile_policy, run_chain
from pipeline.processors import rates as rate_windows
from pipeline.processors.spam import hashed_key, rate_keys, sender_key


def _verdict(event: ContactEvent, ctx: ChainContext) -> Any:
    outcome = run_chain(event, ctx).outcome
    assert isinstance(outcome, Passed | Quarantined), outcome
    return outcome.tagged.tags.spam


def _codes(event: ContactEvent, ctx: ChainContext) -> list[str]:
    return [r.code for r in _verdict(event, ctx).reasons]


def _blocklist_policy(tmp_path: Path, **blocklist: list[str]) -> ChainContext:
    data = yaml.safe_load(default_policy_path().read_text())
    data["spam"]["blocklist"].update(blocklist)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return ChainContext(policy=compile_policy(load_policy(path)), now=NOW, pepper=PEPPER)


def test_a_plain_request_scores_zero(make_ctx: Callable[..., ChainContext]) -> None:
    verdict = _verdict(
        build_event(interaction={"message": "We need a data platform, can we talk on Monday?"}), make_ctx()
    )
    assert verdict.score == 0 and verdict.reasons == () and not verdict.is_spam


@pytest.mark.parametrize(
    ("interaction", "code"),
    [
        ({"message": "Cheap VIAGRA here"}, "spam_word"),
        ({"subject": "Best casino bonus"}, "spam_word"),
        ({"message": "Guaranteed   returns on every deal"}, "misleading_phrase"),
        ({"message": "hi", "honeypot": "filled by a bot"}, "honeypot"),
        ({"message": "see https://a.example https://b.example http://c.example www.d.example"}, "too_many_links"),
        ({"message": "look at https://a.example/x and https://b.example/y for the details now"}, "link_density"),
        ({"message": "PLEASE CALL ME BACK IMMEDIATELY ABOUT OUR OFFER TODAY"}, "shouting"),
    ],
)
def test_each_content_signal(interaction: dict[str, Any], code: str, make_ctx: Callable[..., ChainContext]) -> None:
    assert code in _codes(build_event(interaction=interaction), make_ctx())


def test_words_match_whole_words_only(make_ctx: Callable[..., ChainContext]) -> None:
    assert _codes(build_event(interaction={"message": "Our casinos project"}), make_ctx()) == []
    assert _codes(build_event(interaction={"message": "Sxxxx is a name"}), make_ctx()) == []


def test_repeated_word_hits_are_capped(make_ctx: Callable[..., ChainContext]) -> None:
    text = "viagra cialis casino lottery jackpot xxx"
    assert _codes(build_event(interaction={"message": text}), make_ctx()).count("spam_word") == 3


@pytest.mark.parametrize(
    ("message", "word"),
    [
        ("Buy vi@gra online, best price", "viagra"),
        ("c1alis and more, shipped today", "cialis"),
        ("Cheap Vi\u0430gr\u0430 here", "viagra"),  # two Cyrillic a among the Latin letters
        ("\u0421ialis without waiting", "cialis"),  # a Cyrillic capital Es
        ("Play at our c a s i n o tonight", "casino"),
        ("J.a.c.k.p.o.t every hour", "jackpot"),
    ],
)
def test_a_word_written_in_disguise_is_a_word_and_a_disguise(
    message: str, word: str, make_ctx: Callable[..., ChainContext]
) -> None:
    verdict = _verdict(build_event(interaction={"message": message}), make_ctx())
    details = {r.code: r.detail for r in verdict.reasons}
    assert details["spam_word"] == f"matched {word!r}"
    assert details["disguised_word"] == f"{word!r} written in disguise"
    assert verdict.is_spam  # 1.5 + 3.5: at the threshold


@pytest.mark.parametrize(
    "message",
    [
        "Our laptops run win10 and we need a CRM",
        "Please call me back, my number is a b c d in the form",
        "We have an e-mail at info@example.com for you",
        "Мы ищем CRM для отдела продаж",  # Russian, written in Cyrillic only: nothing to undo
        "Grüße aus München, wir brauchen ein Angebot",
        "Ελληνική εταιρεία, θέλουμε μια προσφορά",
    ],
)
def test_ordinary_text_is_no_disguise(message: str, make_ctx: Callable[..., ChainContext]) -> None:
    assert _codes(build_event(interaction={"message": message}), make_ctx()) == []


@pytest.mark.parametrize(
    "message",
    [
        "Great offers [url=http://pills.example/]see here[/url]",
        "[URL]http://pills.example[/URL] best prices",
        "[link=http://x.example]cheap[/link]",
        'Best prices <a href="http://pills.example">here</a>',
    ],
)
def test_a_link_in_forum_or_html_markup_is_at_the_threshold(
    message: str, make_ctx: Callable[..., ChainContext]
) -> None:
    verdict = _verdict(build_event(interaction={"message": message}), make_ctx())
    assert "link_markup" in [r.code for r in verdict.reasons] and verdict.is_spam


@pytest.mark.parametrize(
    ("channel", "flagged"), [(Channel.WEB_FORM, True), (Channel.CHATBOT, True), (Channel.EMAIL, False)]
)
def test_a_web_address_in_the_name_fields_is_a_bot_s_advert(
    channel: Channel, flagged: bool, make_ctx: Callable[..., ChainContext]
) -> None:
    event = build_event(channel=channel, person={"first_name": "Cheap SEO", "last_name": "https://seo.example/x"})
    verdict = _verdict(event, make_ctx())
    assert ("link_in_name" in [r.code for r in verdict.reasons]) is flagged
    assert verdict.is_spam is flagged
    plain = build_event(channel=channel, person={"first_name": "Anna", "last_name": "Dot.Com-Smith"})
    assert "link_in_name" not in _codes(plain, make_ctx())


def test_mail_is_not_read_for_link_markup(make_ctx: Callable[..., ChainContext]) -> None:
    event = build_event(channel=Channel.EMAIL, interaction={"message": 'See <a href="https://shop.example">us</a>'})
    assert "link_markup" not in _codes(event, make_ctx())


def test_a_link_as_a_person_writes_it_is_no_markup(make_ctx: Callable[..., ChainContext]) -> None:
    message = "Our site is https://shop.example [the new one] and <b>we</b> sell a lot"
    assert "link_markup" not in _codes(build_event(interaction={"message": message}), make_ctx())


@pytest.mark.parametrize(
    ("message", "word"),
    [
        ("真人百家乐\uff0c注册就送彩金", "百家乐"),  # no spaces around a Chinese word
        ("Предлагаем продвижение сайтов недорого", "продвижение сайтов"),
        ("Kredit ohne Schufa sofort", "ohne schufa"),
    ],
)
def test_words_of_other_languages_and_scripts_match(
    message: str, word: str, make_ctx: Callable[..., ChainContext]
) -> None:
    verdict = _verdict(build_event(interaction={"message": message}), make_ctx())
    assert f"matched {word!r}" in [r.detail for r in verdict.reasons]


@pytest.mark.parametrize(
    "message",
    ["Good news: you have won the tender, send the contract", "We need 100% guaranteed delivery dates in the SLA"],
)
def test_procurement_wording_is_no_misleading_phrase(message: str, make_ctx: Callable[..., ChainContext]) -> None:
    assert "misleading_phrase" not in _codes(build_event(interaction={"message": message}), make_ctx())


def test_a_policy_file_written_before_the_markup_and_disguise_rules_loads_with_them_weightless(
    tmp_path: Path,
) -> None:
    data = yaml.safe_load(default_policy_path().read_text())
    del data["spam"]["weights"]["link_markup"], data["spam"]["weights"]["disguised_word"]
    del data["spam"]["weights"]["link_in_name"]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    ctx = ChainContext(policy=compile_policy(load_policy(path)), now=NOW, pepper=PEPPER)
    verdict = _verdict(build_event(interaction={"message": "[url=http://x.example]vi@gra[/url]"}), ctx)
    assert verdict.score == 1.5  # the word alone; the two reasons are listed at weight 0
    assert {r.code: r.weight for r in verdict.reasons} == {"spam_word": 1.5, "disguised_word": 0.0, "link_markup": 0.0}


def test_a_disposable_domain_is_a_signal(make_ctx: Callable[..., ChainContext]) -> None:
    assert "disposable_domain" in _codes(build_event(person={"email": "x@mailinator.com"}), make_ctx())
    assert "disposable_domain" not in _codes(build_event(person={"email": "x@example.com"}), make_ctx())


def test_static_blocklists(tmp_path: Path) -> None:
    ctx = _blocklist_policy(
        tmp_path,
        emails=["bad@example.com"],
        domains=["spammy.test"],
        ips=["198.51.100.0/24", "192.0.2.9"],
        phones=["+4721929300"],
    )
    assert "blocklisted_email" in _codes(build_event(person={"email": "Bad@example.com"}), ctx)
    assert "blocklisted_domain" in _codes(build_event(person={"email": "a@mail.spammy.test"}), ctx)
    assert "blocklisted_ip" in _codes(build_event(provenance={"ip": "198.51.100.77"}), ctx)
    assert "blocklisted_ip" in _codes(build_event(provenance={"ip": "192.0.2.9"}), ctx)
    assert "blocklisted_ip" not in _codes(build_event(provenance={"ip": "192.0.2.10"}), ctx)
    assert "blocklisted_phone" in _codes(build_event(person={"phone": "+4721929300"}), ctx)
    assert _codes(build_event(), ctx) == []


def test_a_blocklisted_sender_is_quarantined_with_the_reason(tmp_path: Path) -> None:
    ctx = _blocklist_policy(tmp_path, emails=["bad@example.com"])
    outcome = run_chain(build_event(person={"email": "bad@example.com"}), ctx).outcome
    assert isinstance(outcome, Quarantined)
    assert [r.code for r in outcome.tagged.tags.spam.reasons] == ["blocklisted_email"]


@pytest.mark.parametrize("target", ["sender", "domain", "ip"])
def test_the_reviewer_blocklist_is_read_by_hashed_keys(target: str, make_ctx: Callable[..., ChainContext]) -> None:
    event = build_event(person={"email": "mallory@evil.test"}, provenance={"ip": "203.0.113.66"})
    key = {
        "sender": sender_key(event.subject_key),
        "domain": hashed_key(PEPPER, "domain", "evil.test"),
        "ip": hashed_key(PEPPER, "ip", "203.0.113.66"),
    }[target]
    assert "evil" not in key and "203.0" not in key
    outcome = run_chain(event, make_ctx(blocklist=frozenset({key}))).outcome
    assert isinstance(outcome, Quarantined)
    reason = outcome.tagged.tags.spam.reasons[0]
    assert reason.code == "reviewer_blocklist" and target in reason.detail
    assert isinstance(run_chain(event, make_ctx(blocklist=frozenset({"sender:other"}))).outcome, Passed)


@settings(max_examples=50, deadline=None)
@given(
    messages=st.lists(
        st.sampled_from(["viagra", "guaranteed returns", "hello", "https://x.example", "casino", "we need help"]),
        max_size=8,
    ),
    honeypot=st.booleans(),
)
def test_the_score_is_the_sum_of_the_listed_reasons(messages: list[str], honeypot: bool) -> None:
    ctx = ChainContext(policy=_COMPILED, now=NOW, pepper=PEPPER)
    event = build_event(interaction={"message": " ".join(messages) or None, "honeypot": "x" if honeypot else None})
    outcome = run_chain(event, ctx).outcome
    assert isinstance(outcome, Passed | Quarantined)
    verdict = outcome.tagged.tags.spam
    assert verdict.score == pytest.approx(sum(r.weight for r in verdict.reasons))
    assert isinstance(outcome, Quarantined) == (verdict.score >= verdict.threshold)
    assert all(r.detail for r in verdict.reasons)


_COMPILED = compile_policy(load_policy())


def test_the_ip_rate_limit_counts_within_the_window(make_ctx: Callable[..., ChainContext]) -> None:
    """21 submissions from one IP within an hour: the 21st carries the rate_ip reason; state flows through updates."""
    state: dict[str, rate_windows.RateState] = {}
    codes: list[list[str]] = []
    for i in range(21):
        event = build_event(subject_key=f"sk_subject_{i:04d}_abcdef", received_at=NOW + timedelta(minutes=i))
        result = run_chain(event, make_ctx(rates=state))
        state.update(result.rate_updates)
        assert isinstance(result.outcome, Passed | Quarantined)
        codes.append([r.code for r in result.outcome.tagged.tags.spam.reasons])
    assert all("rate_ip" not in c for c in codes[:20])
    assert "rate_ip" in codes[20]
    ip_key, _ = rate_keys(event, PEPPER)
    assert ip_key is not None and "203.0.113.7" not in ip_key


def test_the_subject_rate_limit(make_ctx: Callable[..., ChainContext]) -> None:
    state: dict[str, rate_windows.RateState] = {}
    last: list[str] = []
    for i in range(11):
        event = build_event(provenance={"ip": f"198.51.100.{i}"}, received_at=NOW + timedelta(minutes=i))
        result = run_chain(event, make_ctx(rates=state))
        state.update(result.rate_updates)
        assert isinstance(result.outcome, Passed | Quarantined)
        last = [r.code for r in result.outcome.tagged.tags.spam.reasons]
    assert "rate_subject" in last


def test_old_submissions_leave_the_window(make_ctx: Callable[..., ChainContext]) -> None:
    state: dict[str, rate_windows.RateState] = {}
    for i in range(20):
        event = build_event(subject_key=f"sk_subject_{i:04d}_abcdef", received_at=NOW + timedelta(minutes=i))
        state.update(run_chain(event, make_ctx(rates=state)).rate_updates)
    later = build_event(subject_key="sk_subject_late_abcdef", received_at=NOW + timedelta(hours=3))
    assert "rate_ip" not in _codes(later, make_ctx(rates=state))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=20_000), min_size=1, max_size=60))
def test_rate_window_count_matches_a_brute_force_count(offsets: list[int]) -> None:
    """The bucketed window never undercounts the last hour and never counts beyond one bucket past it."""
    window, buckets = 3600, 12
    state: rate_windows.RateState = ()
    times: list[int] = []
    base = 1_700_000_000
    for offset in sorted(offsets):
        at = base + offset
        times.append(at)
        state, count = rate_windows.bump(state, at, window, buckets)
        exact = sum(1 for t in times if at - window < t <= at)
        slack = sum(1 for t in times if at - window - window // buckets < t <= at)
        assert exact <= count <= slack
    assert rate_windows.decode(rate_windows.encode(state)) == state


def test_a_released_event_keeps_its_verdict_with_the_review_and_is_accepted(
    make_ctx: Callable[..., ChainContext],
) -> None:
    event = build_event(interaction={"message": "hi", "honeypot": "bot"})
    first = run_chain(event, make_ctx()).outcome
    assert isinstance(first, Quarantined)
    review = SpamReview(decision_id=uuid.uuid4(), decision="released", reviewer="reviewer-1", decided_at=NOW)
    verdict = first.tagged.tags.spam.model_copy(update={"review": review})
    result = run_chain(event, make_ctx(review=verdict))
    assert isinstance(result.outcome, Passed)
    assert result.outcome.tagged.tags.spam.review == review
    assert result.outcome.tagged.tags.spam.score == first.tagged.tags.spam.score
    assert result.rate_updates == {}  # counted once, when it was first scored


# ---- issue 14: the inputs of the link rules -----------------------------------------------------------------------

_FOOTER = (
    "_______________________________________________\nPython-list mailing list\n"
    "https://mail.python.example/mailman/listinfo/python-list\nhttps://mail.python.example/archive\n"
    "https://mail.python.example/help"
)
_LIST_MAIL = "Thanks, see https://docs.example/a.\n\n" + _FOOTER


def test_links_in_a_mailing_lists_footer_are_not_counted(make_ctx: Callable[..., ChainContext]) -> None:
    listed = build_event(
        interaction={"message": _LIST_MAIL, "list_headers": 3, "list_footer_at": _LIST_MAIL.index("____")}
    )
    assert "too_many_links" not in _codes(listed, make_ctx())  # 1 link of the writer's, 3 of the list's
    unlisted = build_event(interaction={"message": _LIST_MAIL})
    assert "too_many_links" in _codes(unlisted, make_ctx())  # the same text without the fact: 4 links


def _policy_ctx(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> ChainContext:
    data = yaml.safe_load(default_policy_path().read_text())
    change(data["spam"])
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return ChainContext(policy=compile_policy(load_policy(path)), now=NOW, pepper=PEPPER)


_OWN_LINKS = "Buy https://a.example https://b.example https://c.example https://d.example"


def test_mail_through_a_list_gets_no_link_rules_unless_the_policy_counts_it(
    make_ctx: Callable[..., ChainContext], tmp_path: Path
) -> None:
    text = _OWN_LINKS + "\n\n" + _FOOTER
    event = build_event(interaction={"message": text, "list_headers": 2, "list_footer_at": text.index("____")})
    assert not {"too_many_links", "link_density"} & set(_codes(event, make_ctx()))  # the packaged policy
    counting = _policy_ctx(tmp_path, lambda spam: spam["links"].update(count_list_mail=True))
    [reason] = [r for r in _verdict(event, counting).reasons if r.code == "too_many_links"]
    assert reason.detail == "4 links (more than 3; 3 in a mailing list's footer not counted)"
    assert "too_many_links" in _codes(build_event(interaction={"message": _OWN_LINKS}), make_ctx())  # no list


def test_the_word_rules_do_not_read_a_lists_footer(make_ctx: Callable[..., ChainContext]) -> None:
    footer = "_______________________________________________\nWeekly casino night list: unsubscribe here"
    text = "See you on Monday for the planning meeting.\n\n" + footer
    listed = build_event(interaction={"message": text, "list_headers": 1, "list_footer_at": text.index("____")})
    assert _codes(listed, make_ctx()) == []
    own = "Casino bonus for you!\n\n" + footer  # the writer's own words still count
    mine = build_event(interaction={"message": own, "list_headers": 1, "list_footer_at": own.index("____")})
    [reason] = [r for r in _verdict(mine, make_ctx()).reasons if r.code == "spam_word"]
    assert reason.detail == "matched 'casino'"
    transcript = ({"author": "person", "text": own},)  # a turn repeating the message does not bring the footer back
    chat = build_event(
        interaction={"message": own, "transcript": transcript, "list_headers": 1, "list_footer_at": own.index("___")}
    )
    assert [r.code for r in _verdict(chat, make_ctx()).reasons] == ["spam_word"]


def test_a_turn_that_repeats_the_message_counts_its_links_once(make_ctx: Callable[..., ChainContext]) -> None:
    text = "see https://a.example and https://b.example"
    turn = {"author": "person", "text": text}
    event = build_event(interaction={"message": text, "transcript": (turn,)})
    assert "too_many_links" not in _codes(event, make_ctx())  # 2 links, not 4
    quoted = {"author": "quoted", "text": "https://c.example https://d.example https://e.example", "sender": "x"}
    forwarded = build_event(interaction={"message": text, "transcript": (turn, quoted)})
    assert "too_many_links" not in _codes(forwarded, make_ctx())  # a forwarded mail's links are not the writer's


def test_through_the_email_source_hidden_hrefs_count_and_list_footers_do_not(
    make_ctx: Callable[..., ChainContext],
) -> None:
    from source_payloads import ctx_for

    from pipeline.sources import email as email_source

    def scored(raw: bytes) -> list[str]:
        [event] = email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
        return _codes(event, make_ctx())

    anchors = "".join(f'<a href="https://shop{i}.example/x">offer {i}</a> ' for i in range(4))
    html = f"From: a.sender@example.com\r\nContent-Type: text/html\r\n\r\n<p>Deals: {anchors}</p>".encode()
    assert "too_many_links" in scored(html)  # the HTML's four hrefs are links although its text shows none
    body = _LIST_MAIL.replace("\n", "\r\n")
    listed = f"From: a.sender@example.com\r\nList-Id: <python-list.python.example>\r\n\r\n{body}".encode()
    assert "too_many_links" not in scored(listed)
    newsletter = "From: a.sender@example.com\r\nList-Unsubscribe: <https://n.example/u>\r\nContent-Type: text/html"
    assert "too_many_links" not in scored(f"{newsletter}\r\n\r\n<p>Deals: {anchors}</p>".encode())
    invented = "From: a.sender@example.com\r\nList-Whatever: 1\r\nContent-Type: text/html"  # no list's field
    assert "too_many_links" in scored(f"{invented}\r\n\r\n<p>Deals: {anchors}</p>".encode())


def test_the_rate_rule_counts_the_from_sender_not_a_lists_reply_to(make_ctx: Callable[..., ChainContext]) -> None:
    """A whole list answered at one Reply-To is many senders: the per-subject window keys on From."""
    from source_payloads import ctx_for

    from pipeline.sources import email as email_source

    def event_of(sender: str) -> ContactEvent:
        raw = f"From: {sender}\r\nReply-To: list@lists.example.org\r\nSubject: Re: x\r\n\r\nThanks".encode()
        [event] = email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
        return event

    def fired(events: list[ContactEvent]) -> set[str]:
        rates: dict[str, Any] = {}
        codes: set[str] = set()
        for event in events:
            result = run_chain(event, make_ctx(rates=rates))
            rates.update(result.rate_updates)
            outcome = result.outcome
            assert isinstance(outcome, Passed | Quarantined)
            codes.update(r.code for r in outcome.tagged.tags.spam.reasons)
        return codes

    members = [event_of(f"member{i}@example.com") for i in range(12)]
    assert {e.interaction.reply_to for e in members} == {"list@lists.example.org"}
    assert "rate_subject" not in fired(members)  # 12 writers, one list address to answer
    assert "rate_subject" in fired([event_of("member0@example.com") for _ in range(12)])  # one writer, 12 times


def test_the_content_rules_do_not_read_the_history_under_a_reply(make_ctx: Callable[..., ChainContext]) -> None:
    """A prospect's "yes" to the company's own campaign quotes its offers and links: they are not the writer's."""
    own = "Yes, we are interested. Please call me.\n\n"
    history = "On Tue, Tom wrote:\n> FREE casino bonus, buy now https://a.example https://b.example https://c.example"
    text = own + history + " https://d.example"
    reply = build_event(interaction={"message": text, "history_at": len(own)})
    assert _codes(reply, make_ctx()) == []
    assert {"too_many_links", "spam_word"} <= set(_codes(build_event(interaction={"message": text}), make_ctx()))
    spam = "Casino bonus for you!\n\n" + history  # the writer's own words still count
    assert "spam_word" in _codes(build_event(interaction={"message": spam, "history_at": 23}), make_ctx())
