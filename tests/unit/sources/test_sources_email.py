"""E-mail: real-world MIME (multipart with attachments, HTML only, ISO-8859-1, broken charsets, mbox)."""

from __future__ import annotations

import json
from email.header import Header
from urllib.parse import urlencode

import pytest
from source_payloads import PEPPER, ctx_for, payload

from pipeline import normalize
from pipeline.models.common import InteractionKind
from pipeline.sources import NothingToTake, SourceError, inbound_mail
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


@pytest.mark.parametrize(
    "report",
    [  # Mailgun's event webhook; Postmark's bounce webhook, whose From is the company's own address
        {"signature": {"timestamp": "1", "token": "t", "signature": "s"}, "event-data": {"event": "delivered"}},
        {"RecordType": "Bounce", "Type": "HardBounce", "Email": "gone@example.com", "From": "sales@example.com"},
    ],
)
def test_a_mail_service_s_report_on_mail_it_sent_is_no_contact(report: dict[str, object]) -> None:
    """Mailgun's event webhooks were dead-lettered unexpected_shape once per event, and a Postmark bounce became a
    lead from the company's own address."""
    raw = json.dumps(report).encode()
    with pytest.raises(NothingToTake) as taken:
        email_source.parse(raw, ctx_for("email", raw, "application/json"))
    assert taken.value.reason == "status_update"


def test_postmark_inbound_webhook_is_read_as_the_mail_it_was() -> None:
    """Postmark posts the received mail as JSON: the sender's name in UTF-8 (not one encoded word hiding the
    address), the text body, the original header fields (relay chain, authentication results) and the attachment's
    name, read as any mail."""
    [event] = parse("postmark_inbound.json")
    person = event.person
    assert (person.first_name, person.last_name, person.email) == ("Ana", "García", "ana.garcia@empresa.example.es")
    assert event.interaction.subject == "Presupuesto para 3 oficinas"
    assert event.interaction.message is not None and "tres oficinas en Madrid" in event.interaction.message
    assert event.interaction.attachments_ignored == ("planos.pdf",)
    assert event.occurred_at.isoformat() == "2024-03-01T09:15:00+00:00"
    rebuilt = inbound_mail.from_postmark(payload("email", "postmark_inbound.json")[0])
    assert b"Authentication-Results: inbound.postmarkapp.com;" in rebuilt
    assert b"Message-ID: <CAB3ab12@mail.empresa.example.es>" in rebuilt  # the sender's id, not Postmark's


def test_sendgrid_inbound_parse_and_mailgun_route_posts_are_read_as_mail() -> None:
    [sendgrid] = parse("sendgrid_inbound_parse.multipart")
    assert (sendgrid.person.email, sendgrid.person.last_name) == ("kenji.tanaka@example.co.jp", "Tanaka")
    assert sendgrid.interaction.message == "Hello, please send a quote for 20 licences."  # the text, not the HTML too
    assert sendgrid.interaction.attachments_ignored == ("requirements.docx",)  # once, from the file part
    assert sendgrid.interaction.list_headers == 1  # its List-Unsubscribe header kept for the spam rules
    [mailgun] = parse("mailgun_route.txt")
    assert (mailgun.person.first_name, mailgun.person.email) == ("Olivia", "olivia@acme.example.com")
    assert mailgun.interaction.message == "Hi team, can we talk about a partnership?"
    assert mailgun.occurred_at.isoformat() == "2024-06-05T10:00:00+00:00"


def test_a_form_posted_mail_with_the_whole_message_is_that_message() -> None:
    raw_mail = b"From: Eva <eva@example.de>\r\nSubject: Hallo\r\n\r\nGuten Tag\r\n"
    body = urlencode({"body-mime": raw_mail.decode(), "recipient": "sales@example.com"}).encode()
    [event] = email_source.parse(body, ctx_for("email", body, "application/x-www-form-urlencoded"))
    assert (event.person.email, event.interaction.message) == ("eva@example.de", "Guten Tag")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b'{"hello": "world"}', "application/json"), (b"a=1&b=2", "application/x-www-form-urlencoded")],
)
def test_json_or_form_that_is_no_inbound_mail_webhook_says_so(body: bytes, content_type: str) -> None:
    with pytest.raises(SourceError) as err:
        email_source.parse(body, ctx_for("email", body, content_type))
    assert err.value.reason == "unexpected_shape"


def _mail(headers: str, body: str = "I am out of the office until Monday.") -> bytes:
    return (
        "From: Jane Doe <jane.doe@acme.example.com>\r\nTo: sales@example.com\r\n"
        f"Date: Wed, 05 Jun 2024 10:00:00 +0000\r\n{headers}\r\n\r\n{body}\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (payload("email", "bounce_gmail.eml")[0], "bounce"),
        (_mail("Subject: Undelivered Mail").replace(b"Jane Doe <jane.doe", b"<MAILER-DAEMON"), "bounce"),
        (_mail("Subject: failure notice").replace(b"jane.doe@", b"postmaster@"), "bounce"),
        (_mail("Subject: Out of office: Re: your offer\r\nAuto-Submitted: auto-replied"), "auto_reply"),
        (_mail("Subject: Re: your offer\r\nX-Autoreply: yes"), "auto_reply"),
        (_mail("Subject: Re: your offer\r\nPrecedence: auto_reply"), "auto_reply"),
        (_mail("Subject: Automatic reply: your offer\r\nAuto-Submitted: auto-generated"), "auto_reply"),  # Exchange
        (_mail("Subject: Abwesenheitsnotiz: Angebot\r\nAuto-Submitted: auto-generated"), "auto_reply"),
        (_mail("Subject: AUTO: Jane Doe ist außer Haus\r\nAuto-Submitted: auto-generated"), "auto_reply"),  # Notes
        (
            _mail(
                "Subject: Read: your offer\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; "
                'report-type=disposition-notification; boundary="b"',
                "--b\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n--b--",
            ),
            "read_receipt",
        ),
    ],
)
def test_mail_a_machine_sent_in_answer_is_no_new_contact(raw: bytes, reason: str) -> None:
    """A bounce, a read receipt or an out-of-office reply to the company's own mail never becomes a lead."""
    with pytest.raises(NothingToTake) as taken:
        email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
    assert taken.value.reason == reason


@pytest.mark.parametrize(
    "subject",
    ["Automatiskt svar: Offert", "Automaattinen vastaus: Tarjous", "Автоматический ответ: Предложение",
     "自動返信: お見積り", "自动答复: 报价", "자동 회신: 견적", "Otomatik yanıt: Teklif",
     "Automatická odpověď: Nabídka", "Αυτόματη απάντηση: Προσφορά"],
)  # fmt: skip
def test_exchange_s_automatic_reply_in_the_recipient_s_language_is_no_new_contact(subject: str) -> None:
    """Exchange words its out-of-office subject in the mailbox's language (RFC 2047-encoded, as it sends it): each of
    these became a lead, the person's "I am away" as their request."""
    raw = _mail(f"Subject: {Header(subject, 'utf-8').encode()}\r\nAuto-Submitted: auto-generated")
    with pytest.raises(NothingToTake) as taken:
        email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
    assert taken.value.reason == "auto_reply"


def test_auto_generated_mail_that_is_not_a_reply_stays_a_contact() -> None:
    """A form plugin's notification of a submission is auto-generated too; so is a human's "out of office" topic."""
    notification = _mail("Subject: New submission: Contact us\r\nAuto-Submitted: auto-generated", "Name: Jane")
    assert len(email_source.parse(notification, ctx_for("email", notification, "message/rfc822"))) == 1
    question = _mail("Subject: Out of office equipment for 40 desks", "Can you quote chairs?")
    assert len(email_source.parse(question, ctx_for("email", question, "message/rfc822"))) == 1


def test_an_mbox_keeps_its_people_and_leaves_its_automatic_mail() -> None:
    person = _mail("Subject: Quote please", "Please send a quote.")
    reply = _mail("Subject: Re: Quote\r\nAuto-Submitted: auto-replied")
    raw = b"From jane Wed Jun  5 10:00:00 2024\r\n" + reply + b"\r\nFrom jane Wed Jun  5 10:01:00 2024\r\n" + person
    [event] = email_source.parse(raw, ctx_for("email", raw, "application/mbox"))
    assert event.interaction.subject == "Quote please"


CF7_NOTIFICATION = (
    "From: Example Site <wordpress@example.com>\r\nTo: sales@example.com\r\n"
    "Reply-To: Jürgen Müller <juergen.mueller@maschinenbau.example.de>\r\n"
    'Subject: Example Site "Angebot"\r\nDate: Wed, 05 Jun 2024 10:00:00 +0000\r\n'
    "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    "From: Jürgen Müller <juergen.mueller@maschinenbau.example.de>\r\nSubject: Angebot\r\n"
    "Telefon: 030 1234567\r\nFirma: Müller Maschinenbau GmbH\r\nLand: Deutschland\r\n\r\n"
    "Message Body:\r\nBitte senden Sie uns ein Angebot.\r\n\r\n-- \r\n"
    "This e-mail was sent from a contact form on Example Site (https://example.com)\r\n"
).encode()


def test_a_websites_form_notification_is_the_visitors_lead() -> None:
    """WordPress sends a form's submission from its own mailer (wordpress@): the lead is the visitor it names, by
    Reply-To and the fields its body lists, not WordPress."""
    [event] = email_source.parse(CF7_NOTIFICATION, ctx_for("email", CF7_NOTIFICATION, "message/rfc822"))
    person = event.person
    assert (person.first_name, person.last_name, person.email) == (
        "Jürgen",
        "Müller",
        "juergen.mueller@maschinenbau.example.de",
    )
    assert (person.phone, person.company, person.country_code) == ("+49301234567", "Müller Maschinenbau GmbH", "DE")
    assert "form_notification" in event.provenance.notes
    without_reply_to = CF7_NOTIFICATION.replace(b"Reply-To: J\xc3\xbcrgen M\xc3\xbcller", b"X-Note: none")
    [again] = email_source.parse(without_reply_to, ctx_for("email", without_reply_to, "message/rfc822"))
    assert again.person.email == "juergen.mueller@maschinenbau.example.de"  # the body's From: line


def test_a_mailer_that_names_no_one_and_a_person_with_a_signature_keep_their_sender() -> None:
    alert = _mail("Subject: Your invoice is ready", "Invoice: 4711\nAmount: 12 EUR").replace(
        b"Jane Doe <jane.doe@acme.example.com>", b"Billing <no-reply@billing.example.com>"
    )
    [event] = email_source.parse(alert, ctx_for("email", alert, "message/rfc822"))
    assert event.person.email == "no-reply@billing.example.com" and "form_notification" not in event.provenance.notes
    human = _mail("Subject: Quote", "Please call me.\n\nJane Doe\nPhone: +49 30 1234567\nCompany: Acme")
    [event] = email_source.parse(human, ctx_for("email", human, "message/rfc822"))
    # a person's own mail, not read as a form's notification (its "Company:" is no field); its signature's number is
    # the sender's (signature_phone)
    assert (event.person.email, event.person.company) == ("jane.doe@acme.example.com", None)
    assert event.provenance.notes == ("signature_phone",) and event.person.phone == "+49301234567"


REPLY = (
    "Hi Tom,\n\nyes, we are interested. Can you call me tomorrow at 10?\n\nAna\n\n"
    "On Tue, Jun 4, 2024 at 9:00 AM Tom Sales <tom@example.com> wrote:\n"
    "> FREE TRIAL - LIMITED OFFER!!! Act now and get 50% OFF!\n> Buy now: https://example.com/buy\n"
    "> Try it: https://example.com/trial\n> Unsubscribe: https://example.com/unsubscribe\n"
)


def test_a_reply_in_a_thread_marks_where_the_answered_message_starts() -> None:
    """The message is kept whole; ``history_at`` marks the answered message under it, for mail a client sent in a
    thread (In-Reply-To / References): the same text in mail that answers nothing is not trusted to be a history."""
    threaded = _mail("Subject: Re: Limited offer\r\nIn-Reply-To: <campaign-1@example.com>", REPLY.replace("\n", "\r\n"))
    [event] = email_source.parse(threaded, ctx_for("email", threaded, "message/rfc822"))
    message, at = event.interaction.message, event.interaction.history_at
    assert message is not None and at is not None
    assert message[:at].rstrip().endswith("Ana") and message[at:].startswith("On Tue, Jun 4, 2024")
    unthreaded = _mail("Subject: Re: Limited offer", REPLY.replace("\n", "\r\n"))
    [event] = email_source.parse(unthreaded, ctx_for("email", unthreaded, "message/rfc822"))
    assert event.interaction.history_at is None


def _forward(sender: str, to: str, subject: str = "Fwd: Quote request") -> bytes:
    body = (
        "FYI, a lead for you.\r\n\r\n---------- Forwarded message ---------\r\n"
        "From: Ana García <ana@customer.example.es>\r\nDate: Tue, Jun 4, 2024 at 9:00 AM\r\n"
        "Subject: Quote request\r\nTo: <tom@example.com>\r\n\r\nPlease send me a quote for 50 seats.\r\n"
    )
    return (
        f"From: Tom Sales <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: Wed, 05 Jun 2024 10:00:00 +0000\r\n\r\n{body}"
    ).encode()


def test_a_lead_a_colleague_forwarded_to_the_mailbox_is_the_forwarded_senders() -> None:
    raw = _forward("tom@example.com", "leads@example.com")
    [event] = email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
    assert (event.person.first_name, event.person.email) == ("Ana", "ana@customer.example.es")
    assert "forwarded_lead" in event.provenance.notes
    assert event.interaction.message is not None and "50 seats" in event.interaction.message


@pytest.mark.parametrize(
    "raw",
    [
        _forward("ana.friend@other.example", "leads@example.com"),  # an outsider forwarding: they are the contact
        _forward("tom@example.com", "leads@example.com", subject="Quote request"),  # no forward
    ],
)
def test_a_forward_from_outside_or_no_forward_keeps_its_sender(raw: bytes) -> None:
    [event] = email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
    assert event.person.email != "ana@customer.example.es" and "forwarded_lead" not in event.provenance.notes


@pytest.mark.parametrize(
    "headers",
    [  # Google Groups (X-Original-From), Mailman (Reply-To)
        "From: 'Ana García' via Sales <sales@example.com>\r\nX-Original-From: Ana García <ana@yahoo.example>\r\n"
        "Reply-To: Ana García <ana@yahoo.example>\r\nList-Id: <sales.example.com>",
        "From: Ana García via Sales <sales@example.com>\r\nReply-To: ana@yahoo.example\r\nList-Id: <sales.example.com>",
    ],
)
def test_a_groups_dmarc_rewrite_keeps_the_writer_as_the_contact(headers: str) -> None:
    """A company's sales@ is often a group; for a writer whose domain forbids re-sending (DMARC) the group puts
    itself in From: the contact is still the writer."""
    raw = (f"{headers}\r\nTo: sales@example.com\r\nSubject: Quote\r\n\r\nPlease send a quote.\r\n").encode()
    [event] = email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
    assert (event.person.first_name, event.person.last_name, event.person.email) == (
        "Ana",
        "García",
        "ana@yahoo.example",
    )
    assert event.interaction.reply_to is None


def test_a_name_with_via_and_no_original_stays_the_sender() -> None:
    raw = b"From: Tom via LinkedIn <messages-noreply@linkedin.example>\r\nSubject: Hi\r\n\r\nHello\r\n"
    [event] = email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
    assert event.person.email == "messages-noreply@linkedin.example"


def _from(sender: str, body: str, extra: str = "") -> bytes:
    return (
        f"From: {sender}\r\nTo: sales@example.com\r\nSubject: Anfrage\r\n"
        f"Date: Mon, 07 Dec 2026 10:00:00 +0100\r\n{extra}\r\n{body}"
    ).encode()


@pytest.mark.parametrize(
    ("raw", "phone"),
    [
        (  # a German signature: the national number read in the country of the sender's .de domain; Fax is no phone
            _from(
                "Hans Müller <hans@mueller-gmbh.de>",
                "Guten Tag,\r\nbitte um ein Angebot.\r\n\r\nMit freundlichen Grüßen\r\nHans Müller\r\nMüller GmbH\r\n"
                "Tel.: 089 1234567\r\nFax: 089 1234568\r\n",
            ),
            "+49891234567",
        ),
        (
            _from(
                "Jane <jane@acme.co.uk>", "Hi,\r\ncall me?\r\n\r\nJane\r\nM: 07400 123456\r\nT: +44 20 7946 0958\r\n"
            ),
            "+447400123456",
        ),
        (_from("Bob <bob@startup.io>", "Hi,\r\n\r\nBob\r\nMobile: +1 415 555 2671\r\n"), "+14155552671"),
        (_from("Bob <bob@startup.io>", "Hi,\r\n\r\nBob\r\nPhone: (415) 555-2671\r\n"), None),  # .io names no country
        (  # the company's own number in the quoted history is not the sender's
            _from(
                "Ann <ann@firm.fr>",
                "Oui merci.\r\n\r\nLe lun. 7 déc. 2026 à 10:00, Sales <sales@example.com> a écrit :\r\n> Bonjour\r\n"
                "> Tél : 01 23 45 67 89\r\n",
                "In-Reply-To: <x@example.com>\r\n",
            ),
            None,
        ),
        (_from("Hans <hans@firma.de>", "Hallo\r\nBestellnummer: 1234567\r\nT: 12\r\n"), None),
        # a full-width colon, as Japanese and Chinese signatures write it
        (_from("Taro <taro@example.co.jp>", "よろしく\r\n\r\n山田\r\n電話\uff1a03-1234-5678\r\n"), "+81312345678"),
        (_from("Taro <taro@example.co.jp>", "よろしく\r\n\r\n山田\r\nTEL\uff1a03-1234-5678\r\n"), "+81312345678"),
        (_from("Li <li@example.cn>", "您好\r\n\r\n李\r\n电话\uff1a010 1234 5678\r\n"), "+861012345678"),
        # one line, several numbers: the first; an extension after the number; labels of more languages
        (
            _from("Hans <hans@firma.de>", "Hallo\r\n\r\nHans\r\nT: +49 89 1234567 | M: +49 171 1234567\r\n"),
            "+49891234567",
        ),
        (_from("Bob <bob@acme.co.uk>", "Hi\r\n\r\nBob\r\nPhone: 020 7946 0958 ext. 12\r\n"), "+442079460958"),
        (_from("Ana <ana@empresa.com.br>", "Olá\r\n\r\nAna\r\nCel.: (11) 91234-5678\r\n"), "+5511912345678"),
        (_from("Hans <hans@firma.de>", "Hallo\r\n\r\nHans\r\nDirekt: 089 1234567\r\n"), "+49891234567"),
        (_from("Piotr <piotr@firma.pl>", "Dzień dobry\r\n\r\nPiotr\r\ntel. kom. 601 234 567\r\n"), "+48601234567"),
        (_from("Jan <jan@bedrijf.be>", "Dag\r\n\r\nJan\r\nGSM: 0470 12 34 56\r\n"), "+32470123456"),
    ],
)
def test_the_phone_number_of_the_sender_s_signature(raw: bytes, phone: str | None) -> None:
    """Sales call a lead back: a mail's only number is in its signature, which was left in the message alone."""
    [event] = email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
    assert event.person.phone == phone
    assert ("signature_phone" in event.provenance.notes) is (phone is not None)


#: The company's own mail a reply quotes: its signature's number is the company's, never the lead's.
_QUOTED_OFFER = (
    "Dear Ivan,\r\n\r\nplease find our offer attached.\r\n\r\nTom Sales\r\nOur Company GmbH\r\nTel.: +49 30 9876543\r\n"
)


@pytest.mark.parametrize(
    "block",
    [  # Outlook's header block in its localised editions (French: a no-break space before the colon)
        ("De: Tom Sales <tom@ourco.de>", "Enviado el: martes, 4 de junio de 2024 9:00", "Para: Ivan", "Asunto: Offer"),
        ("De\u00a0: Tom Sales <tom@ourco.de>", "Envoyé\u00a0: mardi 4 juin 2024 09:00", "Objet\u00a0: Offer"),
        ("От: Tom Sales <tom@ourco.de>", "Отправлено: 4 июня 2024 9:00", "Кому: Ivan", "Тема: Offer"),
        ("差出人: Tom Sales <tom@ourco.de>", "送信日時: 2024年6月4日 9:00", "宛先: Ivan", "件名: Offer"),
        ("发件人: Tom Sales <tom@ourco.de>", "发送时间: 2024年6月4日 9:00", "收件人: Ivan", "主题: Offer"),
        ("Från: Tom Sales <tom@ourco.de>", "Skickat: den 4 juni 2024 09:00", "Till: Ivan", "Ämne: Offer"),
        ("Fra: Tom Sales <tom@ourco.de>", "Sendt: 4. juni 2024 09:00", "Til: Ivan", "Emne: Offer"),
        ("Od: Tom Sales <tom@ourco.de>", "Odesláno: úterý 4. června 2024 9:00", "Komu: Ivan", "Předmět: Offer"),
        ("Kimden: Tom Sales <tom@ourco.de>", "Gönderildi: 4 Haziran 2024 Salı 09:00", "Kime: Ivan", "Konu: Offer"),
        # a form no pattern knows (Greek), under Outlook's rule: still no number from below the rule
        ("Από: Tom Sales <tom@ourco.de>", "Στάλθηκε: Τρίτη, 4 Ιουνίου 2024 9:00 πμ", "Θέμα: Offer"),
    ],
)
def test_a_reply_never_takes_the_companys_number_from_the_quoted_history(block: tuple[str, ...]) -> None:
    """A reply quoting the company's offer gave the lead the company's phone (``signature_phone``) whenever the
    quoted history's form was not recognised."""
    header = "\r\n".join(block)
    body = f"Yes, please send the contract.\r\n\r\nBest\r\nIvan\r\n\r\n{'_' * 32}\r\n{header}\r\n\r\n{_QUOTED_OFFER}"
    raw = _from("Ivan Petrov <ivan.petrov@client.ru>", body, "In-Reply-To: <offer-1@ourco.de>\r\n")
    [event] = email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
    assert event.person.phone is None and "signature_phone" not in event.provenance.notes
    unthreaded = raw.replace(b"In-Reply-To: <offer-1@ourco.de>", b"X-Note: none").replace(b"Anfrage", b"RE: X")
    [event] = email_source.parse(unthreaded, ctx_for("email", unthreaded, "message/rfc822"))
    assert event.person.phone is None  # a reply by its subject alone


@pytest.mark.parametrize(
    "html",
    [  # Thunderbird's and Gmail's HTML-only replies: the answered message in a <blockquote>
        '<p>Thanks, that works.</p><p>Maria</p><div class="moz-cite-prefix">On 04.06.24 09:00, Tom Sales wrote:<br>'
        '</div><blockquote type="cite">Dear Maria,<br><br>Tom Sales<br>Tel.: +49 30 9876543<br></blockquote>',
        '<div dir="ltr">Sounds good.<div>Maria</div></div><div class="gmail_quote"><div class="gmail_attr">On Tue, '
        'Jun 4, 2024 at 9:00 AM Tom Sales &lt;<a href="mailto:tom@ourco.de">tom@ourco.de</a>&gt; wrote:<br></div>'
        '<blockquote class="gmail_quote">Dear Maria,<br>Tom Sales<br>Mobile: +49 171 2345678</blockquote></div>',
    ],
)
def test_an_html_only_reply_quotes_its_history_as_plain_text_mail_does(html: str) -> None:
    headers = "In-Reply-To: <abc@ourco.de>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=UTF-8\r\n"
    raw = _from("Maria Rossi <maria.rossi@cliente.it>", html, headers)
    [event] = email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
    message, at = event.interaction.message, event.interaction.history_at
    assert event.person.phone is None
    assert message is not None and at is not None and "Maria" in message[:at] and "> Tom Sales" in message[at:]


def _notification(sender: str, html: str, extra: str = "") -> bytes:
    return (
        f"From: {sender}\r\nTo: info@shop.example.com\r\nSubject: New Entry: Contact Form\r\n{extra}"
        f"MIME-Version: 1.0\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n{html}\r\n"
    ).encode()


_CELLS = (
    "<table><tr><td><strong>Name</strong></td><td>Sarah Connor</td></tr><tr><td>Email</td>"
    "<td>sarah.connor@cyberdyne.example.com</td></tr><tr><td>Phone</td><td>+1 213 555 0147</td></tr></table>"
)
_GRAVITY_ROWS = "".join(
    f'<tr><td colspan="2"><strong>{label}</strong></td></tr><tr><td>&nbsp;</td><td>{value}</td></tr>'
    for label, value in (("Name", "Sarah Connor"), ("Email", "sarah.connor@cyberdyne.example.com"))
)
_GRAVITY = f"<table><tr><td><table>{_GRAVITY_ROWS}</table></td></tr></table>"  # a label's row above its value's


@pytest.mark.parametrize(
    "raw",
    [
        _notification("WPForms <noreply@shop.example.com>", _CELLS),  # WPForms, Jotform: a row per field
        _notification("Acme <wordpress@shop.example.com>", _GRAVITY),
        (  # Netlify's mailer, the visitor in Reply-To
            b"From: Netlify Forms <formresponses@netlify.com>\r\nReply-To: sarah.connor@cyberdyne.example.com\r\n"
            b"Subject: [Netlify] New form submission\r\n\r\nName: Sarah Connor\r\nPhone: +1 213 555 0147\r\n"
        ),
    ],
)
def test_a_form_notification_in_a_table_or_from_netlify_is_the_visitors_lead(raw: bytes) -> None:
    """The mailer became the lead, with the visitor's phone as its own: an HTML table's cells ran together
    ("NameSarah Connor"), and Netlify's ``formresponses@`` was no known mailer."""
    [event] = email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
    person = event.person
    assert (person.first_name, person.last_name) == ("Sarah", "Connor")
    assert person.email == "sarah.connor@cyberdyne.example.com" and event.provenance.notes == ("form_notification",)


def test_a_mailer_is_never_given_a_signature_phone() -> None:
    """A mailer's text is no person's: a number in it is not the mailer's own (``signature_phone``)."""
    raw = _notification("Billing <no-reply@billing.example.de>", "<p>Your invoice.</p><p>Tel. 030 1234567</p>")
    [event] = email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
    assert event.person.email == "no-reply@billing.example.de" and event.person.phone is None


_OUTLOOK_FORWARD = (
    "Segue lead.\r\n\r\n________________________________\r\nDe: Joao Silva <joao@cliente.example.com.br>\r\n"
    "Enviado: segunda-feira, 3 de junho de 2024 16:12\r\nPara: Tom\r\nAssunto: Pedido\r\n\r\nBom dia, 50 unidades.\r\n"
)
_APPLE_FORWARD = (
    "FYI\r\n\r\n> Begin forwarded message:\r\n> \r\n> From: Joao Silva <joao@cliente.example.com.br>\r\n"
    "> Subject: Inquiry\r\n> To: tom@example.com\r\n> \r\n> We are interested in 2,000 units.\r\n"
)
_AS_ATTACHMENT = (
    'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
    "Please handle.\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: Joao Silva <joao@cliente.example.com.br>\r\n"
    "Subject: Inquiry\r\n\r\nWe are interested in 2,000 units.\r\n--b--\r\n"
)


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("ENC: Pedido", _OUTLOOK_FORWARD),  # Brazilian Outlook
        ("PD: Zapytanie", _OUTLOOK_FORWARD),  # Polish
        ("VL: Tarjous", _OUTLOOK_FORWARD),  # Finnish
        ("RV: Solicitud", _OUTLOOK_FORWARD.replace("Enviado:", "Enviado el:")),  # Spanish Outlook
        ("Fwd: Inquiry", _APPLE_FORWARD),  # Apple Mail quotes the forward with '>'
        ("FW: Inquiry", _AS_ATTACHMENT),  # Outlook's "forward as attachment"
    ],
)
def test_a_forwarded_lead_in_more_clients_forms_is_the_forwarded_senders(subject: str, body: str) -> None:
    head = f"From: Tom Sales <tom@example.com>\r\nTo: leads@example.com\r\nSubject: {subject}\r\n"
    raw = (head + ("" if body.startswith("MIME") else "\r\n") + body).encode()
    [event] = email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
    assert (event.person.first_name, event.person.email) == ("Joao", "joao@cliente.example.com.br")
    assert "forwarded_lead" in event.provenance.notes
