"""E-mail: real-world MIME (multipart with attachments, HTML only, ISO-8859-1, broken charsets, mbox)."""

from __future__ import annotations

import pytest
from source_payloads import PEPPER, ctx_for, payload

from pipeline import normalize
from pipeline.models.common import InteractionKind
from pipeline.sources import SourceError
from pipeline.sources import email as email_source


def parse(name: str):  # type: ignore[no-untyped-def]
    raw, content_type = payload("email", name)
    return email_source.parse(raw, ctx_for("email", raw, content_type))


def test_multipart_alternative_with_attachments() -> None:
    [event] = parse("multipart_with_attachment.eml")
    assert (event.person.first_name, event.person.last_name) == ("Olivia", "Brown")  # "Brown, Olivia"
    assert event.person.email == "olivia.brown@acme.example.com"
    assert event.interaction.kind is InteractionKind.EMAIL
    assert event.interaction.subject == "RFP \u2013 data platform modernisation"
    assert event.interaction.message is not None
    assert event.interaction.message.startswith(
        "Hello,\n\nplease find our RFP attached. Deadline is 30 June \u2013 can you"
    )
    assert "<p>" not in event.interaction.message  # the plain alternative, not the HTML one
    assert event.interaction.attachments_ignored == ("RFP-2024.pdf", "unnamed.png")
    assert event.occurred_at.isoformat() == "2024-06-04T13:03:11+00:00"
    assert event.provenance.mailbox_id == "sales@leadpipe-customer.example"
    assert len(event.interaction.transcript) == 1 and event.interaction.transcript[0].author == "person"


def test_html_only_mail_is_reduced_to_text() -> None:
    [event] = parse("html_only.eml")
    text = event.interaction.message
    assert text == (
        "Dear team,\n\nWe would like to discuss a partnership & pricing.\n\nBest regards,\nKenji Tanaka\n田中 健二"
    )
    assert "alert" not in text and "color" not in text


def test_iso_8859_1_headers_and_body() -> None:
    [event] = parse("iso_8859_1.eml")
    assert (event.person.first_name, event.person.last_name) == ("François", "Lefèvre")
    assert event.interaction.subject == "Demande de démo"
    assert event.interaction.message is not None and "Je souhaiterais une démo" in event.interaction.message


def test_broken_charsets_reply_to_and_date_do_not_crash() -> None:
    [event] = parse("broken_charset.eml")
    # the sender is From (issue 14: a list's Reply-To would make the whole list one sender); Reply-To is kept apart
    assert event.person.email == "hans.wurst@example.at"
    assert (event.person.first_name, event.person.last_name) == ("Hans", "Wurst")  # unknown charset: UTF-8 fallback
    assert event.interaction.reply_to == "h.wurst+leads@example.at"
    assert event.subject_key == normalize.subject_key(PEPPER, email="hans.wurst@example.at")
    assert event.interaction.message is not None and "Grüß Gott" in event.interaction.message
    assert "\x80" not in event.interaction.message
    assert event.occurred_at == event.received_at  # "not a date at all"


def test_mail_without_sender_is_refused() -> None:
    with pytest.raises(SourceError) as err:
        parse("no_sender.eml")
    assert (err.value.reason, err.value.field) == ("no_identity", "from")


def test_mbox_yields_each_message_and_names_the_bad_one() -> None:
    raw, _ = payload("email", "inbox.mbox")
    messages = email_source.split_mbox(raw)
    assert len(messages) == 3
    assert b"From the archive: escaped line." in messages[0]  # mboxrd unescaping
    with pytest.raises(SourceError) as err:
        email_source.parse(raw, ctx_for("email", raw, "application/mbox"))
    assert err.value.field == "messages[2].from"
    good = b"".join(raw.split(b"From nobody")[0:1])
    events = email_source.parse(good, ctx_for("email", good, "application/mbox"))
    assert [e.person.email for e in events] == ["olivia.brown@acme.example.com", "kenji.tanaka@example.co.jp"]
    assert len({e.event_id for e in events}) == 2


def test_attachment_only_mail_still_identifies_the_sender() -> None:
    raw = (
        b"From: a@example.com\r\nSubject: scan\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: application/pdf; name=scan.pdf\r\nContent-Disposition: attachment; filename=scan.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n"
    )
    [event] = email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
    assert event.interaction.message is None
    assert event.interaction.attachments_ignored == ("scan.pdf",)
