"""Rendering events into messages for the engine, parsing its answer, and leadpipe's own classifier (pure)."""

from __future__ import annotations

import email
import uuid
from datetime import UTC, datetime
from email.policy import default
from pathlib import Path

import pytest
from processor_events import build_event

from pipeline import sources
from pipeline.models.common import Channel
from pipeline.models.contact import Utterance
from pipeline.models.records import RawRecord, Sealed
from pipeline.models.spam import EngineSymbol, EngineVerdict
from pipeline.processors.text import person_text
from pipeline.sources.base import SourceContext
from pipeline.spam.classifier import (
    EVIDENCE_FEATURES,
    NaiveBayes,
    explain_tokens,
    feature_key,
    features,
    header_features,
    tokens,
)
from pipeline.spam.engine import parse_verdict
from pipeline.spam.render import RECIPIENT, email_of_payload, render_message
from pipeline.spam.signals import SpamSignals

PEPPER = b"test-pepper"


def _parsed(data: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(data, policy=default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_a_form_becomes_a_message_with_sender_subject_and_the_persons_words() -> None:
    event = build_event(
        Channel.WEB_FORM,
        person={"first_name": "Ana", "last_name": "Garcia", "email": "ana@example.com", "company": "ACME"},
        interaction={"message": "Please send pricing, Grüße aus München"},
        provenance={"ip": "203.0.113.9", "user_agent": "Mozilla/5.0"},
    )
    rendered = render_message(event)
    message = _parsed(rendered.data)
    assert message["From"].addresses[0].addr_spec == "ana@example.com"
    assert message["From"].addresses[0].display_name == "Ana Garcia"
    assert message["To"] == RECIPIENT and message["Subject"] == "web form contact us"
    assert message["Message-ID"] == f"<{event.event_id}@web-form.leadpipe.invalid>"
    assert message["Date"].datetime == event.occurred_at
    body = message.get_content()
    assert "Please send pricing, Grüße aus München" in body and "Company: ACME" in body
    assert rendered.ip == "203.0.113.9" and rendered.sender == "ana@example.com"
    assert render_message(event).data == rendered.data  # pure: the same event, the same bytes


def test_a_chat_renders_only_the_persons_turns_and_survives_odd_input() -> None:
    event = build_event(
        Channel.CHATBOT,
        person={"email": None, "first_name": None, "phone": "+4915112345678"},
        interaction={
            "message": None,
            "subject": "Pricing\nquestion",
            "transcript": (
                Utterance(author="bot", text="BOT SECRET GREETING"),
                Utterance(author="person", text="how much is it? " + "x" * 2000),
            ),
        },
    )
    message = _parsed(render_message(event).data)
    body = message.get_content()
    assert "how much is it?" in body and "BOT SECRET GREETING" not in body
    assert message["Subject"] == "Pricing question"
    assert message["From"].addresses[0].addr_spec == "unknown@chatbot.leadpipe.invalid"


def test_an_email_is_scored_as_received() -> None:
    event = build_event(Channel.EMAIL)
    raw = b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
    rendered = render_message(event, raw=raw)
    assert rendered.data == raw and rendered.sender == event.person.email


def test_parse_verdict_keeps_symbols_and_weights_and_drops_options() -> None:
    body = (
        b'{"is_skipped":false,"score":3.894,"required_score":15.0,"action":"no action","symbols":{'
        b'"DRUGS_ERECTILE":{"name":"DRUGS_ERECTILE","score":1.994,"options":["ana@example.com"]},'
        b'"__YOU_WON":{"name":"__YOU_WON","score":0.0},"MIME_GOOD":{"name":"MIME_GOOD","score":-0.1}}}'
    )
    verdict = parse_verdict(body)
    assert verdict == EngineVerdict(
        score=3.894,
        action="no action",
        symbols=(EngineSymbol(name="DRUGS_ERECTILE", weight=1.994), EngineSymbol(name="MIME_GOOD", weight=-0.1)),
    )
    assert b"ana@example.com" not in verdict.model_dump_json().encode()


def test_tokens_and_features() -> None:
    assert tokens("Visit https://www.Spam.example/x NOW, it's 100% free!") == [
        "visit", "https", "www.spam.example", "now", "it's", "100%", "free", "host:spam.example"
    ]  # fmt: skip
    verdict = EngineVerdict(score=1, action="no action", symbols=(EngineSymbol(name="MIME_GOOD", weight=-0.1),))
    assert features("free free FREE", verdict) == ["free", "sym:MIME_GOOD"]
    assert feature_key(PEPPER, "sym:MIME_GOOD") == "sym:MIME_GOOD"
    key = feature_key(PEPPER, "free")
    assert len(key) == 16 and key != feature_key(b"other-pepper", "free") and "free" not in key


_RECEIVED = b"".join(b"Received: from relay%d.example.net by mx.example.org; Mon, 1 Jan 2024\r\n" % i for i in range(8))
_RAW = (
    _RECEIVED + b"From: Promo Team <deals@promo.example.biz>\r\n"
    b"Message-ID: <abc123@mailer.example.ru>\r\n"
    b"Subject: Cheap watches, best prices\r\n"
    b"X-Mailer: Dynamic Mass Mailer 4.2\r\n"
    b"Content-Type: text/html; charset=windows-1251\r\n"
    b"\r\n"
    b"<p>User-Agent: not-a-header in the body</p>\r\n"
)


def test_header_features_of_an_email_as_received() -> None:
    found = header_features(_RAW)
    assert {"hdr:x-mailer:dynamic", "hdr:x-mailer:mass", "hdr:x-mailer:mailer"} <= set(found)
    assert {"hdr:content-type:text", "hdr:content-type:html", "hdr:content-type:windows-1251"} <= set(found)
    assert {"hdr:user-agent:none", "hdr:x-priority:none", "hdr:mime-version:none"} <= set(found)  # absent ones
    assert not any(f.startswith("hdr:user-agent:") and f != "hdr:user-agent:none" for f in found)  # body not read
    assert {"hdr:from-tld:biz", "hdr:from-domain:promo.example.biz", "hdr:message-id-tld:ru"} <= set(found)
    assert {"hdr:subject:cheap", "hdr:subject:watches", "hdr:subject:prices"} <= set(found)
    assert "hdr:received:6" in found  # eight hops count as six
    assert header_features(b"Subject: hi\n\nbody")[-1] == "hdr:received:0"
    # features: the words, then the headers', then the engine's symbols, each once
    verdict = EngineVerdict(score=1, action="no action", symbols=(EngineSymbol(name="MIME_GOOD", weight=-0.1),))
    combined = features("cheap cheap", verdict, _RAW)
    assert combined[0] == "cheap" and combined[-1] == "sym:MIME_GOOD" and "hdr:subject:cheap" in combined
    assert len(combined) == len(set(combined))
    assert features("cheap", None, None) == ["cheap"]  # a form has no headers


def test_evidence_is_the_mean_so_length_does_not_decide() -> None:
    """Two spam words or four of the same strength: the same evidence (naive Bayes' sum would double it), and a
    known neutral word dilutes it."""
    model = _trained("backlinks seo ranking guaranteed neutral", "pricing team invoice meeting neutral")
    short = model.verdict(_keys("backlinks seo"))
    long = model.verdict(_keys("backlinks seo ranking guaranteed"))
    diluted = model.verdict(_keys("backlinks seo neutral neutral2"))  # neutral2: never seen, no evidence
    parts = model.contributions(_keys("backlinks seo"))
    assert short.log_odds == pytest.approx(EVIDENCE_FEATURES * sum(parts.values()) / len(parts), abs=1e-3)
    assert short.log_odds > 0 and long.log_odds == pytest.approx(short.log_odds)
    assert diluted.log_odds == pytest.approx(short.log_odds * 2 / 3, abs=1e-3)


def test_an_emails_headers_reach_the_classifier_through_the_signals() -> None:
    """The worker's path (``SpamSignals.for_batch``) reads the headers of an e-mail as received: a model that
    learned only header features judges the same e-mail by them, and a form (no raw message) not at all."""
    signals = SpamSignals(client=None, store=None, pepper=PEPPER)
    event = build_event(Channel.EMAIL, interaction={"message": "hello"})
    header_keys = [feature_key(PEPPER, f) for f in header_features(_RAW)]
    for _ in range(10):
        signals.model.add(header_keys, "spam")
        signals.model.add([feature_key(PEPPER, "hdr:x-mailer:outlook")], "ham")
    assert set(header_keys) <= set(signals.keys(event, None, _RAW))
    _, classifier = signals.for_batch([(event, _RAW)])
    assert classifier[event.event_id].log_odds > 0
    _, without_headers = signals.for_batch([(event, None)])
    assert without_headers[event.event_id].log_odds == 0


def _keys(text: str) -> list[str]:
    return [feature_key(PEPPER, f) for f in features(text)]


def _trained(spam_text: str, ham_text: str, times: int = 20) -> NaiveBayes:
    model = NaiveBayes()
    for _ in range(times):
        model.add(_keys(spam_text), "spam")
        model.add(_keys(ham_text), "ham")
    return model


def test_naive_bayes_learns_and_unlearns_and_explains() -> None:
    model = _trained("cheap backlinks seo ranking guaranteed", "please send the pricing for our team")
    spammy = model.verdict(_keys("guaranteed seo backlinks for you"))
    hammy = model.verdict(_keys("pricing for our team please"))
    assert spammy.probability > 0.99 > 0.01 > hammy.probability
    assert spammy.spam_learns == spammy.ham_learns == 20
    unknown = model.verdict(_keys("completely unrelated words"))
    assert unknown.log_odds == 0 and unknown.probability == 0.5  # unseen features carry no evidence
    explained = dict(explain_tokens(model, PEPPER, "guaranteed seo for you"))
    assert explained["guaranteed"] > 0 and explained["seo"] > 0 and explained["for"] < 0  # "for": ham's word
    assert "you" not in explained  # never learned
    for _ in range(20):
        model.add(_keys("cheap backlinks seo ranking guaranteed"), "spam", sign=-1)
    assert model.spam_docs == 0 and model.verdict(_keys("guaranteed seo backlinks")).log_odds == 0  # all forgotten


def test_naive_bayes_names_the_engine_symbols_that_weighed_most() -> None:
    model = NaiveBayes()
    spam_engine = EngineVerdict(score=5, action="add header", symbols=(EngineSymbol(name="DRUGS_ERECTILE", weight=2),))
    ham_engine = EngineVerdict(score=0, action="no action", symbols=(EngineSymbol(name="MIME_GOOD", weight=0),))
    for _ in range(10):
        model.add([feature_key(PEPPER, f) for f in features("offer", spam_engine)], "spam")
        model.add([feature_key(PEPPER, f) for f in features("hello", ham_engine)], "ham")
    verdict = model.verdict([feature_key(PEPPER, f) for f in features("offer", spam_engine)])
    assert verdict.top_symbols == ("DRUGS_ERECTILE",)


@pytest.mark.parametrize("label", ["spam", "ham"])
def test_uncounting_never_goes_below_zero(label: str) -> None:
    model = NaiveBayes()
    model.add(["a"], label, sign=-1)
    assert model.counts["a"] == [0, 0] and model.spam_docs == model.ham_docs == 0
    assert uuid.UUID(int=1)  # the model needs no event ids: the store keeps idempotence


def test_rendered_headers_are_encoded_and_cannot_be_injected() -> None:
    event = build_event(
        Channel.WEB_FORM,
        person={"first_name": "José", "last_name": 'O"Brien, Jr.', "email": "jose@example.com"},
        interaction={
            "subject": "Angebot für München\r\nBcc: victim@example.com",
            "message": "Zeile eins\r\n" + "lang " * 400,
        },
        provenance={"user_agent": "Bot\nX-Evil: 1"},
    )
    message = _parsed(render_message(event).data)
    assert message["Subject"] == "Angebot für München Bcc: victim@example.com"
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert message["From"].addresses[0].display_name == 'José O"Brien, Jr.'
    assert message["Content-Transfer-Encoding"] == "quoted-printable"  # a line over 900 octets
    assert message.get_content().replace("\r\n", "\n").startswith("Zeile eins\n" + "lang " * 10)
    assert message.get_content_charset() == "utf-8"


def test_the_engine_reads_an_inbound_webhook_s_mail_not_its_json() -> None:
    """A mail that arrived as Postmark's JSON is handed to the engine as the message it was (its headers, its
    body), from the raw record's payload and content type, like a mail posted as message/rfc822."""
    payload = (Path(__file__).resolve().parents[2] / "fixtures/payloads/email/postmark_inbound.json").read_bytes()
    record = RawRecord(
        event_id=uuid.uuid4(),
        channel=Channel.EMAIL,
        source_id="postmark",
        received_at=datetime.now(UTC),
        subject_key="sk_x",
        content_type="application/json",
        sealed=Sealed(key_id="subject:sk_x#1", nonce="AAAA", ciphertext="AAAA"),
    )
    mail = email_of_payload(payload, record)
    assert mail is not None and not mail.lstrip().startswith(b"{")
    parsed = email.message_from_bytes(mail, policy=default)
    assert parsed["Subject"] == "Presupuesto para 3 oficinas" and "spf=pass" in parsed["Authentication-Results"]


def test_website_usage_never_reaches_the_engine_or_the_classifier() -> None:
    """The website adapter names each analytics event in its subject line (``page: Pricing``, ``identify``,
    ``track: Whitepaper Downloaded``): the site's words, not the visitor's. Sent to the engine, every page view was
    scored as a message, and with the engine down quarantined for review as ``spam_engine_unavailable``."""
    raw = (Path(__file__).parents[3] / "docs" / "samples" / "website.jsonl").read_bytes()
    visits = []
    for line in raw.splitlines():
        ctx = SourceContext.for_payload(
            line,
            source_id="site",
            channel=Channel.WEBSITE,
            content_type="application/json",
            received_at=datetime(2025, 3, 4, tzinfo=UTC),
            pepper=PEPPER,
        )
        visits += sources.parse(Channel.WEBSITE, line, ctx)
    assert len(visits) == 4 and all(person_text(visit) for visit in visits)  # each has a subject line
    form = build_event(Channel.WEB_FORM, interaction={"message": "Please call me about a quote"})

    engine, classifier = SpamSignals(client=None, store=None, pepper=PEPPER).for_batch(
        [(visit, None) for visit in visits] + [(form, None)]
    )
    assert set(classifier) == {form.event_id} and not engine
