"""E-mail (policy section 5): raw RFC 822 / MIME messages as a mailbox delivers them, one or an mbox of many.

Real mail is messy: undeclared or unknown charsets, broken encoded words, HTML-only bodies, attachments, forwarded
messages, broken MIME structure, headers that trip the modern parser, and headers built to make it slow.
``pipeline.sources.mime`` reads it within fixed limits and renders it as a mail reader shows it; this module turns
the result into the contact event:

- the person is the ``From`` sender (the first valid address, its display name or ``(comment)`` as the name);
  ``Reply-To`` is kept apart, in ``interaction.reply_to``: a mailing list's Reply-To names the list, not the writer;
  a website's notification of a form submission sent by its mailer (``wordpress@``, ``no-reply@``) is the visitor's
  lead: its Reply-To and the fields its body lists (``_notified``, noted ``form_notification``); a lead a colleague
  forwarded to the mailbox is the forwarded message's sender (``_forwarded_lead``, noted ``forwarded_lead``);
- ``message`` is the text the person wrote; the transcript holds it and every attached or forwarded message as a
  quoted turn with its sender; every part that was not read is named in ``attachments_ignored``; in a thread's mail
  the history under a reply or a forward ("On ... wrote:", Outlook's header block) is located
  (``interaction.history_at``, ``replies``): the answered message's words are not the writer's; words its HTML
  hides from the reader (white on white, a font size of 0, ``display:none``: ``html``) are not in it, and the
  event is noted ``hidden_text``;
- ``List-*`` headers are counted (``interaction.list_headers``) and a mailing list's footer located
  (``interaction.list_footer_at``): facts the spam rules read, so a list's footer links are not the writer's;
- mail a machine sent in answer to the company's own (``automatic``: bounces, read receipts, out-of-office replies)
  names no new contact: it is answered ``ignored`` with its kind, never made a lead.

A message yields an event, a typed rejection or (automatic mail) ``NothingToTake``, never another exception.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.message import Message
from email.utils import parseaddr
from itertools import pairwise
from types import MappingProxyType

from pipeline import normalize
from pipeline.models.common import InteractionKind
from pipeline.models.contact import ContactEvent
from pipeline.normalize import clean_text
from pipeline.sources import fields, html, inbound_mail, mime, replies
from pipeline.sources.base import (
    NothingToTake,
    Problem,
    SourceContext,
    SourceError,
    build_person,
    make_event,
    require_events,
)

CONTENT_TYPES = frozenset(
    {
        "message/rfc822",
        "application/mbox",
        "text/plain",
        "application/octet-stream",
        "application/json",  # Postmark's inbound webhook
        "multipart/form-data",  # SendGrid Inbound Parse, Mailgun routes
        "application/x-www-form-urlencoded",  # Mailgun routes without attachments
    }
)

_MBOX_FROM = re.compile(rb"(?:\A|(?<=\n\n)|(?<=\r\n\r\n)|(?<=\r\r))From \S")
#: A line's end: CRLF, LF, or a bare CR (the classic Mac OS mail clients: Eudora, Claris Emailer).
_LINE_END = re.compile(rb"\r\n?|\n")
#: An mboxrd-escaped ``From `` at a line's start, after any of those line ends.
_ESCAPED_FROM = re.compile(rb"(?:^|(?<=\r))>(>*From )", re.MULTILINE)


def split_mbox(raw: bytes) -> list[bytes]:
    """The messages of an mbox (mboxo/mboxrd): split at ``From `` lines, ``>From `` unescaped; lines may end in
    CRLF, LF or a bare CR (a classic Mac OS mailbox)."""
    starts = [m.start() for m in _MBOX_FROM.finditer(raw)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    out: list[bytes] = []
    for begin, end in zip(starts, [*starts[1:], len(raw)], strict=True):
        chunk = raw[begin:end]
        if chunk.startswith(b"From "):
            line_end = _LINE_END.search(chunk)
            chunk = chunk[line_end.end() :] if line_end is not None else b""
        chunk = _ESCAPED_FROM.sub(rb"\1", chunk)
        if chunk.strip():
            out.append(chunk)
    return out


def messages_of(raw: bytes, media_type: str, params: Mapping[str, str] = MappingProxyType({})) -> list[bytes]:
    """The messages of one payload: an mbox's, an inbound-parse webhook's message (``inbound_mail``), or the
    payload itself (the spam engine reads each as received)."""
    if media_type == "application/json":
        return [inbound_mail.from_postmark(raw)]
    if media_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return [inbound_mail.from_form(raw, media_type, params)]
    is_mbox = media_type == "application/mbox" or raw.startswith(b"From ")
    return split_mbox(raw) if is_mbox else [raw]


def parse(raw: bytes, ctx: SourceContext) -> list[ContactEvent]:
    if not raw.strip():
        raise SourceError("empty_payload", None, "the message is empty")
    messages = messages_of(raw, ctx.content_type, ctx.params)
    events = []
    machine: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        prefix = f"messages[{index}]." if len(messages) > 1 else ""
        msg = mime.parse_message(message, prefix)
        if (kind := automatic(msg)) is not None:
            machine.append(kind)
            continue
        events.append(_parse_one(msg, ctx, index, prefix))
    if machine and not events:
        raise NothingToTake(*machine[0])
    return require_events(events)


_OUT_OF_OFFICE = re.compile(
    r"^\s*(?:automatic reply|auto[- ]?reply|auto\s*:|out of (?:the )?office|abwesenheitsnotiz|automatische antwort"
    r"|r[ée]ponse automatique|respuesta autom[aá]tica|risposta automatica|automatisch antwoord"
    r"|resposta autom[aá]tica|odpowied[zź] automatyczna|自動応答|自動返信|自动回复|自动答复|自動回覆"
    r"|automatiskt svar|automatisk svar|automaattinen vastaus|automatick[áa] odpov[ěe][dď]|otomatik yan[ıi]t"
    r"|automatikus v[áa]lasz|автоматический ответ|автоответ|автоматична відповідь|자동 회신|자동 응답"
    r"|αυτόματη απάντηση|תשובה אוטומטית|رد تلقائي)",
    re.IGNORECASE,
)
_REPORTS = {
    "delivery-status": ("bounce", "a delivery status notification (bounce): no new contact in it"),
    "disposition-notification": ("read_receipt", "a read receipt: no new contact in it"),
}
_BOUNCE = ("bounce", "a mail server's delivery report (bounce): no new contact in it")
_AUTO_REPLY = ("auto_reply", "an automatic reply (out of office, RFC 3834): no new contact in it")


def automatic(msg: Message) -> tuple[str, str] | None:
    """(reason, explanation) when a machine sent the message in answer to another: a bounce (a delivery report, or
    from mailer-daemon or postmaster), a read receipt, or an automatic reply (``Auto-Submitted: auto-replied``,
    ``X-Autoreply``, ``Precedence: auto_reply``, or an auto-generated message whose subject says it is an
    out-of-office reply, as Exchange's are, or Lotus Notes' "AUTO:"); else None. Auto-generated mail alone stays a
    contact: a form plugin's notification of a submission is auto-generated too."""
    if msg.get_content_type() == "multipart/report":
        report = str(msg.get_param("report-type") or "").lower()
        if report in _REPORTS:
            return _REPORTS[report]
    for _name, address in mime.addresses(msg, "from"):
        if address.partition("@")[0].strip().lower() in ("mailer-daemon", "postmaster"):
            return _BOUNCE
    submitted = (mime.raw_header(msg, "auto-submitted") or "").lower()
    if submitted.startswith("auto-replied"):
        return _AUTO_REPLY
    if any(mime.raw_header(msg, name) not in (None, "no") for name in ("x-autoreply", "x-autorespond")):
        return _AUTO_REPLY
    if (mime.raw_header(msg, "precedence") or "").lower() == "auto_reply":
        return _AUTO_REPLY
    if submitted.startswith("auto-generated") and _OUT_OF_OFFICE.match(mime.header_text(msg, "subject") or ""):
        return _AUTO_REPLY
    return None


def _parse_one(msg: Message, ctx: SourceContext, index: int, prefix: str) -> ContactEvent:
    problems: list[Problem] = []
    name, address = _original_sender(msg, *_sender(msg, prefix))
    shown = mime.render(msg, prefix)
    values: dict[str, str | None] = {"full_name": name, "email": address}
    text = clean_text(shown.text, 50_000)
    forwarded = False
    if (notified := _notified(msg, shown.text, address)) is not None:
        values = notified
        problems.append(Problem(FORM_NOTIFICATION, prefix + "from", "the sender is a website's mailer", fatal=False))
    elif (lead := _forwarded_lead(msg, text, address, shown.quoted)) is not None:
        values, forwarded = lead, True
        problems.append(Problem(FORWARDED_LEAD, prefix + "from", "a colleague forwarded the lead", fatal=False))
    elif text and not _is_mailer(address) and (signed := _signature_phone(msg, text, address)) is not None:
        values["phone"] = signed
        problems.append(
            Problem(SIGNATURE_PHONE, prefix + "phone", "the phone number of the sender's signature", fatal=False)
        )
    if shown.hid_words:
        problems.append(Problem(HIDDEN_TEXT, prefix + "message", "words the reader does not see", fatal=False))
    person, key = build_person(values, ctx, problems, prefix=prefix)
    occurred = mime.header_date(msg)
    transcript = [{"at": occurred, "author": "person", "text": clean_text(shown.text, 20_000)}] if text else []
    for quoted in shown.quoted:
        transcript.append(
            {
                "at": quoted.at,
                "author": "quoted",
                "sender": clean_text(quoted.sender, 400),
                "subject": clean_text(quoted.subject, 1000),
                "text": clean_text(quoted.text, 20_000) or "",
            }
        )
    list_headers = mime.list_header_count(msg)
    interaction = {
        "kind": InteractionKind.EMAIL,
        "subject": clean_text(_subject(msg), 1000),
        "message": text,
        "transcript": tuple(transcript),
        "attachments_ignored": tuple(a[:300] for a in shown.attachments),
        "reply_to": _reply_to(msg, address),
        "list_headers": list_headers,
        "list_footer_at": list_footer_start(text) if list_headers and text else None,
        "history_at": None if forwarded else _history_start(msg, text),  # forwarded: the lead's words are below
    }
    return make_event(
        ctx,
        index,
        (person, key),
        interaction,
        provenance={"mailbox_id": _mailbox(msg)},
        occurred_at=occurred,
        problems=problems,
        prefix=prefix,
    )


#: The note of a message whose HTML held words its reader does not see (``html.read_html``: white on white, a font
#: size of 0, ``display:none``), left out of the message: hash-busters and word salad in spam, a preview line in a
#: newsletter. A fact the spam side may weigh, never a verdict.
HIDDEN_TEXT = "hidden_text"


def _subject(msg: Message) -> str | None:
    """The subject as a reader shows it: without the characters drawn as nothing (a soft hyphen inside "Viagra")."""
    subject = mime.header_text(msg, "subject")
    return html.without_invisible(subject) if subject else subject


#: The note of a phone number read from the sender's signature (``_signature_phone``).
SIGNATURE_PHONE = "signature_phone"
#: A signature's phone line: its label (English, German, French, Spanish, Italian, Portuguese, Dutch, Nordic, Polish,
#: Russian, Japanese, Chinese, Korean; "T", "M", "P" as signatures abbreviate them) and the number after it.
_SIGNATURE_PHONE = re.compile(
    r"^\s*(?:tel|tele?phone|phone|ph|mobile|mob|mobil|mobiel|mobiili|cell|cellphone|direct|direct line|office|t|m|p"
    r"|d|cel|gsm|tlf|fon|direkt|durchwahl|tel\.?\s*kom|tel\.?\s*mob"
    r"|telefon|telefoon|handy|t[ée]l[ée]?phone|t[ée]l|portable|tel[ée]fono|m[óo]vil|celular|cellulare|telem[óo]vel"
    r"|puhelin|telefon kom[óo]rkowy|kom[óo]rka|тел|телефон|моб|мобильный|電話|携帯|电话|手机|전화|휴대폰)\.?"
    r"\s*[:|.\-\u2013\uff1a]?\s*(?P<number>\+?\(?\d[\d\s().\-/]{5,}\d)"
    r"(?:\s*,?\s*(?:ext|x|extension|durchwahl|dw|app|poste)\.?\s*\d{1,6})?\s*$",  # an extension: no part of E.164
    re.IGNORECASE,
)
#: What separates the numbers of a signature's one line ("T: +49 89 ... | M: +49 171 ...", "Tel ... · Mobil ...").
_SIGNATURE_PARTS = re.compile(r"\s+[|\u00b7\u2022/]\s+(?=\D)|\s{3,}|\t+")
#: Country-code top-level domains used as generic ones (.io, .co, .me, .tv ...): they say nothing of a country.
_GENERIC_CCTLDS = frozenset(
    {"ai", "am", "cc", "co", "fm", "gg", "io", "la", "ly", "me", "ms", "nu", "so", "st", "tk", "to", "tv", "vc", "ws"}
)
#: How many of the last lines of the sender's own words a signature is looked for in.
_SIGNATURE_LINES = 12


def _signature_phone(msg: Message, text: str, address: str | None) -> str | None:
    """The phone number (E.164) in the sender's signature: a labelled number ("Tel.: +49 30 1234567", "M: 0171 ...")
    in the last lines of their own words (above any quoted history), valid per libphonenumber; a number without a
    country prefix read in the country of the sender's domain (``.de``, ``.co.uk``), none for a generic one. The
    first such line wins (a signature lists the direct line first); None when there is none.

    A reply quotes the company's own mail, whose signature has the company's number: in one, nothing at or below a
    line that may open a history (``replies.history_line``) is read, even when its form is not recognised."""
    found = replies.history_line(text) if _is_reply(msg) else None
    if found is None and (history := replies.split_history(text)) is not None:
        found = history[0]
    own = text[:found] if found is not None else text
    tld = (address or "").rpartition(".")[2].lower()
    region = normalize.country_code(tld) if len(tld) == 2 and tld not in _GENERIC_CCTLDS else None  # ".uk" is GB
    for line in [line for line in own.splitlines() if line.strip()][-_SIGNATURE_LINES:]:
        for part in _SIGNATURE_PARTS.split(line):
            if (match := _SIGNATURE_PHONE.match(part)) is not None:
                try:
                    return normalize.canonical_phone(match.group("number"), region, require_valid=True)
                except normalize.NormalizationError:
                    continue
    return None


#: A reply's subject prefix, in the mail clients' languages ("Re:", "AW:", "SV:", "Odp:", "回复:", "Re[2]:").
_REPLY_SUBJECT = re.compile(
    r"^\s*(?:re|aw|sv|vs|antw|odp|res|r|ynt|vá|atb|ats|odg|отв|ответ|回复|答复|回覆|답장)(?:\[\d+\])?\s*[:\uff1a]",
    re.IGNORECASE,
)


def _is_reply(msg: Message) -> bool:
    """Whether the message answers another: it names it (``In-Reply-To``, ``References``) or its subject says so."""
    if mime.raw_header(msg, "in-reply-to") is not None or mime.raw_header(msg, "references") is not None:
        return True
    return _REPLY_SUBJECT.match(mime.header_text(msg, "subject") or "") is not None


def _history_start(msg: Message, text: str | None) -> int | None:
    """Where the history under a reply or a forward starts in the message's text (``replies``), for mail a client
    sent in a thread (``In-Reply-To`` or ``References``): a "history" in mail that answers nothing may be a spammer's
    cover for the words the content rules should read."""
    if not text or (mime.raw_header(msg, "in-reply-to") is None and mime.raw_header(msg, "references") is None):
        return None
    found = replies.split_history(text)
    return found[0] if found is not None else None


#: The note of a lead a colleague forwarded to the mailbox, read as the forwarded message's sender.
FORWARDED_LEAD = "forwarded_lead"
#: A forward's subject prefix: English, German, French, Spanish, Dutch, Nordic, Italian; Brazilian Outlook's "ENC:",
#: Polish "PD:", Finnish "VL:".
_FORWARD_SUBJECT = re.compile(r"^\s*(?:fwd?|wg|tr|rv|doorst|vs|vb|i|enc|pd|vl)\s*:", re.IGNORECASE)


def _forwarded_lead(
    msg: Message, text: str | None, sender: str, attached: list[mime.Quoted]
) -> dict[str, str | None] | None:
    """The sender of the message a colleague forwarded to the company's mailbox ("Fwd:", "WG:", ...), when the
    forwarding sender writes from the mailbox's own domain (``Delivered-To``, else ``To``) and the forwarded message
    (inline, else the first attached one: Outlook's "forward as attachment") names someone outside it: the lead is
    that person, not the colleague. None otherwise."""
    if not _FORWARD_SUBJECT.match(mime.header_text(msg, "subject") or ""):
        return None
    own = sender.rpartition("@")[2].lower()
    received = mime.addresses(msg, "delivered-to") or mime.addresses(msg, "to")
    if not any(address.rpartition("@")[2].lower() == own for _name, address in received):
        return None
    found = replies.split_history(text) if text else None
    forwarded = found[1].sender if found is not None else next((q.sender for q in attached), None)
    if forwarded is None:
        return None
    name, address = parseaddr(forwarded)
    if "@" not in address or address.rpartition("@")[2].lower() == own:
        return None
    return {"full_name": name or None, "email": address}


#: The note of a website's notification mail read as the lead it tells of (``_notified``).
FORM_NOTIFICATION = "form_notification"
#: Mailboxes of a website's or a tool's mailer, not of a person: WordPress's default ``wordpress@``, ``no-reply``,
#: Netlify's ``formresponses@``.
_MAILER = re.compile(
    r"^(?:wordpress|no-?reply|do-?not-?reply|donotreply|notifications?|forms?|webmaster|www-data|apache|website|"
    r"contact-?form|formmail|formresponses|mailer)(?:[-+.].*)?$",
    re.IGNORECASE,
)


def _is_mailer(sender: str) -> bool:
    """Whether a website's or a tool's mailer sent the message: its text is no person's, its numbers no sender's."""
    return _MAILER.match(sender.partition("@")[0]) is not None


_PERSON_FIELDS = frozenset(
    {"full_name", "first_name", "last_name", "email", "phone", "company", "position", "location", "country"}
)
_SENDER_LABELS = frozenset({"from", "von", "de", "da", "van"})


def _notified(msg: Message, text: str, sender: str) -> dict[str, str | None] | None:
    """The person a website's notification of a form submission tells of, when a mailer sent it (``wordpress@``,
    ``no-reply@``; not a mailing list): its ``Reply-To`` (what Contact Form 7 and Gravity set to the visitor), and
    the fields the body lists as ``Label: value`` lines (``Your Name:``, ``Phone:``, ``Company:``; Contact Form 7's
    ``From: Jane <jane@...>``) or as a label's line above its value's (Gravity's table). None when the message names
    no one else: then the mailer stays the sender."""
    if not _is_mailer(sender) or mime.list_header_count(msg):
        return None
    found: dict[str, str | None] = {}
    lines = [line for line in text.splitlines()[:300] if line.strip()]
    for line, below in pairwise([*lines, ""]):  # each line and the next (none for an empty body)
        label, colon, value = line.partition(":")
        if not colon and fields.canonical_field(line.strip()) in _PERSON_FIELDS and ":" not in below:
            label, colon, value = line, ":", below  # the label alone on its line, its value on the next
        label, value = label.strip(), value.strip()
        if not colon or not value or len(label) > 40:
            continue
        if label.lower() in _SENDER_LABELS:
            named, address = parseaddr(value)
            if "@" in address:
                found.setdefault("email", address)
                found.setdefault("full_name", named or None)
        elif (field := fields.canonical_field(label)) in _PERSON_FIELDS:
            found.setdefault(field, value)
    replied = _reply_to(msg, sender)
    if replied is not None:
        found["email"] = replied
        found.setdefault("full_name", next((n for n, a in mime.addresses(msg, "reply-to") if n), None))
    if not found.get("email") and not found.get("phone"):
        return None
    return found


#: A mailing list's DMARC rewrite of the sender's name: Google Groups' "'Ana García' via Sales", Mailman's "Ana via".
_VIA = re.compile(r"^\s*['\"]?(.+?)['\"]?\s+via\s+\S.*$", re.IGNORECASE)


def _original_sender(msg: Message, name: str | None, address: str) -> tuple[str | None, str]:
    """The person behind a list's rewritten ``From``: a group or list that re-sends mail of a sender whose domain
    forbids it (DMARC) puts its own address in ``From`` ("'Ana' via Sales <sales@...>") and the writer in
    ``X-Original-From`` (Google Groups) or ``Reply-To`` (Mailman). A company's sales@ is often such a group: without
    this every such lead would be the group's."""
    if name is None or (via := _VIA.match(" ".join(name.split()))) is None:  # runs of spaces made one: linear
        return name, address
    for original in ("x-original-from", "reply-to"):
        for found_name, found in mime.addresses(msg, original):
            try:
                canonical = normalize.canonical_email(found)
            except normalize.NormalizationError:
                continue
            if canonical.lower() != address.lower():
                return found_name or via.group(1).strip(), canonical
    return name, address


def _sender(msg: Message, prefix: str) -> tuple[str | None, str]:
    """(name, canonical address) of the first valid address in From; a typed rejection when there is none."""
    found = mime.addresses(msg, "from")
    first_error: normalize.NormalizationError | None = None
    for name, address in found:
        try:
            canonical = normalize.canonical_email(address)
        except normalize.NormalizationError as exc:
            first_error = first_error or exc
            continue
        return (None if name and "@" in name else name), canonical  # "ana@x <ana@x>" names nobody
    if mime.raw_header(msg, "from") is None:
        raise SourceError("no_identity", prefix + "from", "the message has no From header: no sender to keep")
    if first_error is not None:
        raise SourceError(first_error.reason, prefix + "from", str(first_error).split(": ", 1)[-1])
    raise SourceError("invalid_email", prefix + "from", "no sender address in From")


def _reply_to(msg: Message, sender: str) -> str | None:
    """Where the person asks to be answered, when it is another valid address than the sender's."""
    for _name, address in mime.addresses(msg, "reply-to"):
        try:
            canonical = normalize.canonical_email(address)
        except normalize.NormalizationError:
            continue
        return None if canonical.lower() == sender.lower() else canonical
    return None


def _mailbox(msg: Message) -> str | None:
    """The receiving mailbox (Delivered-To): the company's own, so a private name (``.local``) is kept as written."""
    for _name, address in mime.addresses(msg, "delivered-to"):
        try:
            return normalize.canonical_email(address)[:200]
        except normalize.NormalizationError:
            return address.strip().lower()[:200] if "@" in address else None
    return None


#: A separator line: a rule, one with a label in it (Yahoo! Groups' "----- Yahoo! Groups Sponsor -----~-->"), "-- ".
_FOOTER_RULE = re.compile(r"^[ \t]*(?:(?:_{8,}|-{8,}|={8,})[^\n]{0,100}?|-- ?)[ \t]*$", re.MULTILINE)
_FOOTER_WORDS = re.compile(
    r"unsubscribe|listinfo|mailing list|you received this|subscription|opt[ -]?out|abmelden|d[ée]sinscri",
    re.IGNORECASE,
)
#: A list's footer is short (Mailman's, Google Groups', a newsletter's legal block): only the message's end is
#: searched, so a writer cannot declare most of a long text a footer.
FOOTER_WINDOW = 3000


def list_footer_start(text: str) -> int | None:
    """Where the footer a mailing list appended starts in a message's text, or None.

    The first separator line (``____``, ``----``, ``-- ``) in the last ``FOOTER_WINDOW`` characters followed by
    list wording (unsubscribe, listinfo, subscription, ...); else the last paragraph, when it holds that wording
    and is not the whole text. Called for messages that came through a list (``List-*`` headers) only.
    """
    window = max(0, len(text) - FOOTER_WINDOW)
    for rule in _FOOTER_RULE.finditer(text, window):
        if _FOOTER_WORDS.search(text, rule.end()):
            return rule.start()
    paragraph = text.rfind("\n\n", window)
    if paragraph > 0 and _FOOTER_WORDS.search(text, paragraph):
        return paragraph + 2
    return None
