"""E-mail as a mail reader shows it (issue 17) and the inputs the spam rules need (issue 14), one test per case.

Forwarded and attached messages, digests, the ``addr (Full Name)`` form, broken MIME, quoted local parts, reserved
domains, the sender taken from From, HTML links, mailing-list headers and footers, and header abuse refused fast.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Callable

import pytest
from source_payloads import ctx_for

from pipeline.models.contact import ContactEvent
from pipeline.sources import NothingToTake, SourceError, mime
from pipeline.sources import email as email_source


def parse(raw: bytes) -> ContactEvent:
    [event] = email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
    return event


def refused(raw: bytes) -> SourceError:
    with pytest.raises(SourceError) as err:
        email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
    return err.value


def mail(headers: str, body: str) -> bytes:
    return (headers.strip("\n").replace("\n", "\r\n") + "\r\n\r\n" + body.replace("\n", "\r\n")).encode()


HEAD = "From: Ana Garcia <ana.garcia@example.com>\nTo: sales@example.com\nSubject: fwd\nMIME-Version: 1.0\n"

FORWARDED = """From: Bob Stone <bob@supplier.example>
Date: Mon, 03 Jun 2024 09:00:00 +0000
Subject: Quote 4711
Content-Type: text/plain; charset=utf-8

Our quote: 12,000 EUR for the pilot."""


# ---- attached and forwarded messages ------------------------------------------------------------------------------


def test_a_forwarded_message_is_kept_as_a_quoted_turn() -> None:
    raw = mail(
        HEAD + 'Content-Type: multipart/mixed; boundary="b1"',
        f"""--b1
Content-Type: text/plain

See below.
--b1
Content-Type: message/rfc822
Content-Disposition: attachment; filename="quote.eml"

{FORWARDED}
--b1--
""",
    )
    event = parse(raw)
    assert event.interaction.message == "See below."
    person, quoted = event.interaction.transcript
    assert (person.author, person.text) == ("person", "See below.")
    assert quoted.author == "quoted" and quoted.sender == "Bob Stone <bob@supplier.example>"
    assert (quoted.subject, quoted.text) == ("Quote 4711", "Our quote: 12,000 EUR for the pilot.")
    assert quoted.at is not None and quoted.at.isoformat() == "2024-06-03T09:00:00+00:00"
    assert event.interaction.attachments_ignored == ()  # read, so not "ignored"


def test_a_digest_gives_one_quoted_turn_per_message_and_names_what_it_cannot_read() -> None:
    raw = mail(
        HEAD + 'Content-Type: multipart/digest; boundary="d"',
        f"""--d

{FORWARDED}
--d

From: Carla <carla@partner.example>
Subject: second

Second entry, with an attachment.
--d
Content-Type: message/rfc822; name="empty.eml"

--d--
""",
    )
    event = parse(raw)
    assert event.interaction.message is None  # the person wrote nothing of their own
    assert [(t.author, t.sender) for t in event.interaction.transcript] == [
        ("quoted", "Bob Stone <bob@supplier.example>"),
        ("quoted", "Carla <carla@partner.example>"),
    ]
    assert event.interaction.attachments_ignored == ("empty.eml (message/rfc822)",)


def test_an_attached_message_sent_base64_encoded_is_decoded() -> None:
    encoded = base64.encodebytes(FORWARDED.replace("\n", "\r\n").encode()).decode()
    raw = mail(
        HEAD + 'Content-Type: multipart/mixed; boundary="b1"',
        f"--b1\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n{encoded}\n--b1--\n",
    )
    [quoted] = parse(raw).interaction.transcript
    assert quoted.sender == "Bob Stone <bob@supplier.example>" and quoted.text.startswith("Our quote")


def test_inline_text_parts_after_an_attachment_are_read_too() -> None:
    raw = mail(
        HEAD + 'Content-Type: multipart/mixed; boundary="b1"',
        "--b1\n\nFirst part.\n--b1\nContent-Type: application/pdf; name=a.pdf\n\nJVBE\n"
        "--b1\nContent-Type: text/plain\nContent-Disposition: inline\n\nText after the PDF.\n--b1--\n",
    )
    event = parse(raw)
    assert event.interaction.message == "First part.\n\nText after the PDF."
    assert event.interaction.attachments_ignored == ("a.pdf",)


# ---- names -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("From: j.smith@example.com (John Smith)", "John", "Smith"),
        ("From: j.smith@example.com (=?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?=)", "Jürgen", "Müller"),
        ("From: =?ISO-8859-1?Q?Fran=E7ois?= =?ISO-8859-1?Q?_Lef=E8vre?= <j.smith@example.com>", "François", "Lefèvre"),
        ("From: =?UTF-8?B?U21pdGgsIEpvaG4=?= <j.smith@example.com>", "John", "Smith"),  # "Smith, John" encoded
        ("From: =?UTF-8?B?8J+Ygg==?==?UTF-8?B?IEFuYQ==?= <j.smith@example.com>", "😂", "Ana"),
        ("From: j.smith@example.com <j.smith@example.com>", None, None),
        # a literal comma in an encoded word (RFC 2047 forbids it, senders do it): one name, not split at the comma
        ("From: =?iso-8859-1?Q?M=FCller,_Hans?= <j.smith@example.com>", "Hans", "Müller"),
    ],
)
def test_sender_names(header: str, first: str | None, last: str | None) -> None:
    event = parse(mail(header + "\nSubject: hi", "Hello"))
    assert event.person.email == "j.smith@example.com"
    assert (event.person.first_name, event.person.last_name) == (first, last)


def test_raw_utf8_headers_are_read_as_utf8() -> None:
    event = parse("From: Jürgen Groß <jg@example.de>\r\nSubject: Grüße\r\n\r\nHallo".encode())
    assert (event.person.first_name, event.person.last_name) == ("Jürgen", "Groß")
    assert event.interaction.subject == "Grüße"


# ---- broken MIME -------------------------------------------------------------------------------------------------

PARTS = (
    "--real\nContent-Type: text/plain\n\nThe text a reader shows.\n"
    "--real\nContent-Type: text/html\n\n<p>x</p>\n--real--\n"
)


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/alternative",  # no boundary parameter
        'multipart/alternative; boundary="declared"',  # a boundary the delimiters do not use
        "multipart/alternative; boundary=",
    ],
)
def test_text_is_recovered_from_a_multipart_without_a_usable_boundary(content_type: str) -> None:
    event = parse(mail(HEAD + f"Content-Type: {content_type}", PARTS))
    assert event.interaction.message == "The text a reader shows."


def test_a_multipart_with_no_delimiter_at_all_is_shown_as_text() -> None:
    event = parse(mail(HEAD + "Content-Type: multipart/mixed", "Just a plain body after all."))
    assert event.interaction.message == "Just a plain body after all."


def test_a_truncated_bounce_keeps_its_report_and_what_is_left_of_the_original() -> None:
    raw = mail(
        "From: MAILER-DAEMON@mx.example.com\nSubject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"',
        """--r
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.com.
I'm sorry to have to inform you that your message could not be delivered.
--r
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com

Final-Recipient: rfc822; gone@example.org
Action: failed
Status: 5.1.1
--r
Content-Type: message/rfc822

From: Ana Garcia <ana.garcia@example.com>
Subject: Our offer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain

Dear customer, our offer for the pil""",  # cut off mid-word: no closing delimiters
    )
    shown = mime.render(mime.parse_message(raw))  # as the reader shows it (the spam engine reads it so)
    assert shown.text.startswith("This is the mail system at host mx.example.com.")
    [quoted] = shown.quoted
    assert quoted.sender == "Ana Garcia <ana.garcia@example.com>"
    assert quoted.text == "Dear customer, our offer for the pil"
    assert shown.attachments == ["unnamed.delivery-status"]
    with pytest.raises(NothingToTake) as taken:  # and a bounce is no new contact (test_sources_email.py)
        email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
    assert taken.value.reason == "bounce"


# ---- addresses ---------------------------------------------------------------------------------------------------


def test_a_quoted_local_part_is_a_valid_sender() -> None:
    assert parse(mail('From: "Books@Books"@example.com', "Hi")).person.email == '"Books@Books"@example.com'


@pytest.mark.parametrize("address", ["it@corp.local", "it@printer.localhost", "it@shop.test", "it@x.invalid"])
def test_a_reserved_sender_domain_has_its_own_reason(address: str) -> None:
    err = refused(mail(f"From: IT <{address}>", "Hi"))
    assert (err.reason, err.field) == ("reserved_email_domain", "from")


def test_a_malformed_sender_stays_invalid_email() -> None:
    assert refused(mail("From: not an address", "Hi")).reason == "invalid_email"


def test_the_sender_is_from_and_a_lists_reply_to_is_kept_apart() -> None:
    event = parse(mail("From: Ana <ana.garcia@example.com>\nReply-To: devs@lists.example.org", "Hi"))
    assert event.person.email == "ana.garcia@example.com"
    assert event.interaction.reply_to == "devs@lists.example.org"
    same = parse(mail("From: Ana <ana.garcia@example.com>\nReply-To: ANA.GARCIA@example.com", "Hi"))
    assert same.interaction.reply_to is None


def test_a_private_delivered_to_mailbox_is_kept_as_provenance() -> None:
    event = parse(mail("From: ana.garcia@example.com\nDelivered-To: Sales@Exchange.Corp.Local", "Hi"))
    assert event.provenance.mailbox_id == "sales@exchange.corp.local"


# ---- what the spam rules read ------------------------------------------------------------------------------------


def test_html_links_keep_their_targets() -> None:
    html = '<p>Great deal, <a href="https://spam.example/a">click here</a> or <a href="http://b.example">b</a>.</p>'
    event = parse(mail(HEAD + "Content-Type: text/html", html))
    assert event.interaction.message == "Great deal, click here <https://spam.example/a> or b <http://b.example>."


LIST_MAIL = """From: Ana Garcia <ana.garcia@example.com>
Reply-To: python-list@python.example
List-Id: General discussion <python-list.python.example>
List-Unsubscribe: <https://mail.python.example/mailman/options/python-list>, <mailto:leave@python.example>
List-Post: <mailto:python-list@python.example>
List-Archive: <https://mail.python.example/pipermail/python-list/>
Subject: Re: packaging"""

FOOTER = """
--
https://mail.python.example/mailman/listinfo/python-list"""


@pytest.mark.parametrize(
    ("body", "footer"),
    [
        ("I agree, see https://docs.example/packaging.\n" + FOOTER, FOOTER.lstrip("\n")),
        (
            "Thanks!\n\n_______________________________________________\nPython-list mailing list\n"
            "https://mail.python.example/mailman/listinfo/python-list",
            "_______________________________________________\nPython-list mailing list\n"
            "https://mail.python.example/mailman/listinfo/python-list",
        ),
        ("Thanks!\n\nTo unsubscribe visit https://news.example/u/1 or https://news.example/prefs",
         "To unsubscribe visit https://news.example/u/1 or https://news.example/prefs"),
        ("No footer here, just https://docs.example/a", None),
        (  # Yahoo! Groups: a rule with a label, its sponsor's ad and link
            "Thanks!\n\n------------------------ Yahoo! Groups Sponsor ---------------------~-->\n4 DVDs Free\n"
            "http://us.click.yahoo.example/pt6YBB\n\nTo unsubscribe from this group, send an email to:\nx@example.com",
            "------------------------ Yahoo! Groups Sponsor ---------------------~-->\n4 DVDs Free\n"
            "http://us.click.yahoo.example/pt6YBB\n\nTo unsubscribe from this group, send an email to:\nx@example.com",
        ),
    ],
)  # fmt: skip
def test_list_headers_are_counted_and_the_lists_footer_located(body: str, footer: str | None) -> None:
    event = parse(mail(LIST_MAIL, body))
    interaction = event.interaction
    assert interaction.list_headers == 4 and interaction.message is not None
    at = interaction.list_footer_at
    assert (interaction.message[at:] if at is not None else None) == footer


def test_a_footer_is_only_looked_for_in_mail_that_came_through_a_list() -> None:
    event = parse(mail("From: ana.garcia@example.com", "Hi\n\n-- \nunsubscribe https://x.example"))
    assert (event.interaction.list_headers, event.interaction.list_footer_at) == (0, None)


# ---- header abuse ------------------------------------------------------------------------------------------------

NORMAL = mail(HEAD + 'Content-Type: multipart/alternative; boundary="b"', PARTS.replace("real", "b"))


def _semicolons(n: int) -> bytes:
    return mail("From: ana.garcia@example.com\nContent-Type: text/plain" + ";" * n, "Hi")


HOSTILE: dict[str, tuple[bytes, str]] = {
    "14 KB Content-Type of 7,000 ';'": (_semicolons(7000), "oversized_headers"),
    "Content-Type with 65 parameters": (
        mail("From: ana.garcia@example.com\nContent-Type: text/plain" + "; a=b" * 65, "Hi"),
        "oversized_headers",
    ),
    "2 KiB From of nested comments": (mail("From: " + "(" * 2100 + "a@example.com", "Hi"), "oversized_headers"),
    "600 header fields": (mail("From: ana.garcia@example.com\n" + "X-A: b\n" * 600, "Hi"), "oversized_headers"),
    "a 17 KiB unread field": (mail("From: ana.garcia@example.com\nX-Long: " + "a " * 8800, "Hi"), "oversized_headers"),
    "a 1 MiB header block": (b"From: a@example.com\r\n" + b"X-Filler: 0123456789abcdef\r\n" * 40_000,
                             "oversized_headers"),
    "a nested part's 14 KB Content-Type": (
        mail(
            HEAD + 'Content-Type: multipart/mixed; boundary="b"',
            "--b\nContent-Type: text/plain" + ";" * 7000 + "\n\nHi\n--b--\n",
        ),
        "oversized_headers",
    ),
    "parts nested 200 deep": (
        mail(
            HEAD + 'Content-Type: multipart/mixed; boundary="b0"',
            "".join(f'--b{i}\nContent-Type: multipart/mixed; boundary="b{i + 1}"\n\n' for i in range(200)) + "x\n",
        ),
        "mime_too_complex",
    ),
    "300 parts": (
        mail(HEAD + 'Content-Type: multipart/mixed; boundary="b"', "--b\n\nx\n" * 300 + "--b--\n"),
        "mime_too_complex",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_header_abuse_is_refused_with_a_typed_reason(name: str) -> None:
    raw, reason = HOSTILE[name]
    err = refused(raw)
    assert err.reason == reason and err.field in ("headers", "mime")


def test_a_header_block_over_the_limit_is_refused_before_parsing() -> None:
    """On the bytes, not by the parser: 80 KiB of 400 long fields (under the field count) and a block that would
    end just past the limit; a long body under a small block, or a block ending right at the limit, is read."""
    field = b"X-Filler: " + b"a" * 190 + b"\r\n"
    huge = b"From: a@example.com\r\n" + field * 400 + b"\r\nHi"
    # a line break 3 bytes before the limit: within the limit, the next line looks like no header line
    head = b"From: a@example.com\r\n" + field * ((mime.MAX_HEADER_BLOCK_BYTES - 300) // len(field))
    pad = b"X-Pad: " + b"p" * (mime.MAX_HEADER_BLOCK_BYTES - 2 - len(head) - 9) + b"\r\n"
    cut = head + pad + field * 20 + b"\r\nHi"
    assert cut[mime.MAX_HEADER_BLOCK_BYTES - 3 : mime.MAX_HEADER_BLOCK_BYTES + 1] == b"\nX-F"
    for raw in (huge, cut):
        with pytest.raises(SourceError) as caught:
            mime.check_header_block(raw)
        assert (caught.value.reason, caught.value.field) == ("oversized_headers", "headers")
    body = b"From: a@example.com\r\nSubject: long\r\n\r\n" + b"line of text\r\n" * 10_000
    mime.check_header_block(body)
    short = b"X-Filler: " + b"a" * 90 + b"\r\n"
    block = b"From: a@example.com\r\n" + short * ((mime.MAX_HEADER_BLOCK_BYTES - 21) // len(short))
    mime.check_header_block(block + b"\r\n" + b"body\r\n" * 20_000)  # ends within the limit: the parser decides
    assert len(block) <= mime.MAX_HEADER_BLOCK_BYTES


def _best_of(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        with contextlib.suppress(SourceError):
            work()
        times.append(time.perf_counter() - start)
    return min(times)


def test_a_hostile_message_costs_about_what_a_normal_one_does() -> None:
    """Relative, not wall-clock: each hostile message against a normal one parsed in the same test, best of 5
    (before the limits, the 14 KB Content-Type alone cost several thousand times a normal message)."""
    normal = _best_of(5, lambda: parse(NORMAL))
    for name, (raw, _reason) in HOSTILE.items():
        hostile = _best_of(5, lambda raw=raw: email_source.parse(raw, ctx_for("email", raw, "message/rfc822")))
        assert hostile < 30 * normal + 0.005, f"{name}: {hostile * 1000:.1f} ms against {normal * 1000:.2f} ms"


def test_the_limits_leave_real_headers_alone() -> None:
    received = "".join(
        f"Received: from mx{i}.example.net (mx{i}.example.net [192.0.2.{i}]) by x; date\n" for i in range(60)
    )
    references = "References: " + " ".join(f"<msg{i}@mail.example.com>" for i in range(150))
    segments = [f"filename*{i}*={'utf-8' if i == 0 else ''}%E6%97%A5%E6%9C%AC" for i in range(30)]
    filename = "Content-Disposition: attachment; " + "; ".join(segments).replace("utf-8%", "utf-8''%")
    event = parse(
        mail(
            f'{received}{references}\n{HEAD}Content-Type: multipart/mixed; boundary="b"',
            f"--b\n\nHello\n--b\nContent-Type: application/pdf\n{filename}\n\nJVBE\n--b--\n",
        )
    )
    assert event.interaction.message == "Hello"
    assert event.interaction.attachments_ignored == ("日本" * 30,)
    assert len(mime.READ_FIELDS) == 8


# ---- body abuse --------------------------------------------------------------------------------------------------

_SIZE = 256 * 1024


@pytest.mark.parametrize("shape", ["<!", "<a ", "</", "<?", "<![", '<a x="', "<"])
def test_hostile_html_costs_what_ordinary_html_of_its_size_does(shape: str) -> None:
    """The stdlib's html.parser took 2 s for 256 KB of ``<!`` and minutes for ``<a `` (CVE-2025-6069)."""
    ordinary = mail(HEAD + "Content-Type: text/html", "<p>Hello <b>world</b></p>\n" * (_SIZE // 26))
    hostile = mail(HEAD + "Content-Type: text/html", shape * (_SIZE // len(shape)))
    normal = _best_of(3, lambda: parse(ordinary))
    took = _best_of(3, lambda: email_source.parse(hostile, ctx_for("email", hostile, "message/rfc822")))
    assert took < 5 * normal + 0.05, f"{shape!r}: {took * 1000:.0f} ms against {normal * 1000:.0f} ms"


def test_a_long_message_without_a_header_separator_is_read_not_refused() -> None:
    body = "A body line right after the headers, no blank line before it.\r\n" * 1200  # ~75 KB
    event = parse(("From: ana.garcia@example.com\r\nSubject: hi\r\n" + body).encode())
    assert event.interaction.message is not None and event.interaction.message.startswith("A body line")


def test_html_nested_deeper_than_the_parser_follows_keeps_its_text_and_links() -> None:
    deep = '<div><a href="https://deep.example/x">' * 300 + "the hidden offer"
    event = parse(mail(HEAD + "Content-Type: text/html", deep))
    assert event.interaction.message is not None
    assert event.interaction.message.endswith("the hidden offer")
    assert event.interaction.message.count("https://deep.example/x") == 300


# ---- declared charsets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("charset", "text", "encoding"),
    [  # a subset's label on its Windows superset's bytes, as senders' software writes them
        ("iso-8859-1", "we\u2019d like a quote \u201cASAP\u201d \u2013 budget \u20ac 5,000", "cp1252"),
        ("us-ascii", "a quote \u201cASAP\u201d \u2013 \u20ac 5,000", "cp1252"),
        ("shift_jis", "\u3231サンプルの\u9ad9橋です。\u2460価格", "cp932"),  # NEC and IBM kanji
        ("gb2312", "我叫朱镕基", "gbk"),
        ("big5", "地址在深水埗", "big5hkscs"),
        ("ks_c_5601-1987", "똠방각하", "cp949"),
        ("euc-kr", "똠방각하", "cp949"),
    ],
)
def test_a_declared_subset_charset_is_read_in_its_superset(charset: str, text: str, encoding: str) -> None:
    """Curly quotes, dashes and € labelled ISO-8859-1, NEC kanji labelled Shift_JIS, ... were lost or garbled."""
    body = base64.b64encode(text.encode(encoding)).decode()
    headers = f"{HEAD}Content-Type: text/plain; charset={charset}\nContent-Transfer-Encoding: base64"
    assert parse(mail(headers, body)).interaction.message == text


def test_a_gb2312_name_in_from_is_read_as_gbk() -> None:
    event = parse(mail("From: =?gb2312?B?1uzpRrv5?= <zhu@example.com.cn>\nSubject: hi", "Hello"))
    assert event.person.first_name == "朱镕基"


#: NEC's special characters (JIS X 0208 row 13, which the standard leaves empty) as Japanese mail clients write them.
_NEC = {"①": b"\x1b$B-!\x1b(B", "㈱": b"\x1b$B-j\x1b(B"}


def _iso2022jp_with_nec(text: str) -> bytes:
    return b"".join(_NEC.get(char) or char.encode("iso2022_jp") for char in text)


def test_iso_2022_jp_with_nec_characters_is_read_not_left_as_escape_sequences() -> None:
    """Python's ISO-2022-JP codecs lack NEC's characters (①, ㈱): the text fell back to UTF-8, escape sequences and
    all ("$B-j(B$B%5%s%W%k(B" as the sender's first name)."""
    body = _iso2022jp_with_nec("㈱サンプルの山田です。\r\n① 価格\r\n電話\uff1a03-1234-5678")
    name = base64.b64encode(_iso2022jp_with_nec("山田 ㈱")).decode()
    raw = (
        f"From: =?ISO-2022-JP?B?{name}?= <t.yamada@example.co.jp>\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
    ).encode() + body
    event = parse(raw)
    assert event.interaction.message == "㈱サンプルの山田です。\n① 価格\n電話\uff1a03-1234-5678"
    assert {event.person.first_name, event.person.last_name} == {"㈱", "山田"}


def test_iso_2022_jp_that_no_table_reads_is_replaced_never_read_as_utf8() -> None:
    """A stateful 7-bit charset's bytes read as UTF-8 keep their escape sequences as letters."""
    raw = mail(HEAD + "Content-Type: text/plain; charset=ISO-2022-JP", "\x1b$Bxx\x1b$(D!!\x1b(B ok")
    message = parse(raw).interaction.message
    assert message is not None and message.endswith("ok") and "$B" not in message and "\x1b" not in message


def test_an_invitation_s_calendar_alternative_is_named_as_not_read() -> None:
    """Outlook sends a meeting request as the text and, as another alternative, the invitation itself
    (text/calendar): it was left out of ``attachments_ignored``, as though the mail held nothing else."""
    raw = mail(
        HEAD.replace("Subject: fwd", "Subject: Demo call") + 'Content-Type: multipart/alternative; boundary="alt"\n',
        """--alt
Content-Type: text/plain; charset=utf-8

Let us meet on Tuesday for the demo.
--alt
Content-Type: text/calendar; method=REQUEST; charset=utf-8

BEGIN:VCALENDAR
METHOD:REQUEST
END:VCALENDAR
--alt--
""",
    )
    event = parse(raw)
    assert event.interaction.message == "Let us meet on Tuesday for the demo."
    assert event.interaction.attachments_ignored == ("unnamed.calendar",)


# ---- shapes of public spam corpora (tests/unit/sources/test_sources_mail_corpus.py reads them whole) ----------------


def test_a_classic_mac_mailbox_with_bare_cr_line_ends_is_split_and_read() -> None:
    """Eudora and Claris Emailer on Mac OS 9 end lines in a bare CR: the mbox's first line was cut at a line feed
    that never came, so the file gave no message at all, and import and score skipped it without a word."""
    raw = (
        b"From jvp@mac.example.com  Fri Aug 23 11:07:58 2002\rFrom: JP Vallee <jvp@mac.example.com>\r"
        b"Subject: Re: OS X 10.2\r\tupgrade\r\rPlease quote 14 seats.\r>From the team, JP\r\r"
        b"From ana@example.com  Fri Aug 23 12:00:00 2002\rFrom: ana@example.com\rSubject: hi\r\rSecond one.\r"
    )
    assert len(email_source.split_mbox(raw)) == 2
    first, second = email_source.parse(raw, ctx_for("email", raw, "application/mbox"))
    assert (first.person.email, second.person.email) == ("jvp@mac.example.com", "ana@example.com")
    assert first.interaction.subject == "Re: OS X 10.2\tupgrade"  # unfolded at the bare CR too
    assert first.interaction.message == "Please quote 14 seats.\nFrom the team, JP"


def test_a_bare_cr_message_larger_than_the_header_limit_is_read_not_refused() -> None:
    raw = b"From: ana@example.com\rSubject: big\r\r" + (b"Please send the price list." * 3 + b"\r") * 1000
    assert parse(raw).person.email == "ana@example.com"


def test_a_website_mailer_s_message_with_nothing_to_read_is_no_error() -> None:
    """``_notified`` read the lines of the body in pairs and raised on a body without any (an image alone, an empty
    HTML part): ingest dead-lettered the message as an adapter's error."""
    raw = mail("From: Webmaster <webmaster@example.com>\nSubject: You won\nContent-Type: text/html", "<p> </p>")
    event = parse(raw)
    assert (event.person.email, event.interaction.message) == ("webmaster@example.com", None)


def test_html_table_rows_without_cells_are_no_error() -> None:
    """MSHTML's spacer rows (``<TR></TR>``) raised in the HTML reader, and the message was dead-lettered."""
    html = "<TABLE><TBODY><TR></TR><TR><TD>Name</TD><TD>Ana Garcia</TD></TR><tr>loose text</tr></TBODY></TABLE>"
    assert parse(mail(HEAD + "Content-Type: text/html", html)).interaction.message == "Name: Ana Garcia\n\nloose text"


def test_html_text_the_reader_hides_is_not_read() -> None:
    """Spam hides a newsletter's or a dictionary's words in the HTML for the filters (Bayes poison): no reader shows
    them, so the writer did not write them to anyone."""
    html = (
        '<p>Cheap meds, no prescription.</p><div style="DISPLAY: none">meeting agenda budget minutes</div>'
        '<span style="color: red; visibility:hidden">quarterly report</span><p hidden>weather</p>'
        '<p style="display: block">Order today.</p>'
    )
    message = parse(mail(HEAD + "Content-Type: text/html", html)).interaction.message
    assert message == "Cheap meds, no prescription.\n\nOrder today."


def test_a_uuencoded_file_in_the_text_is_named_not_read() -> None:
    """Outlook Express's and worms' uuencoded attachments: their lines were read as the writer's words (noise to the
    spam rules and the classifier) and the file was named nowhere."""
    body = (
        "Here is the picture you asked for.\n\nbegin 644 picture.exe\n"
        "M35J0``,````$````__\\``$U:D``,````$````__\\``$U:D``,````$````\n`\nend\n\nBye"
    )
    event = parse(mail(HEAD + "Content-Type: text/plain", body))
    assert event.interaction.message == "Here is the picture you asked for.\n\n\nBye"
    assert event.interaction.attachments_ignored == ("picture.exe",)


@pytest.mark.parametrize(
    ("subject", "shown"),
    [  # a stray character in unpadded base64; two words' base64 joined in one (padding inside); a lone last character
        (
            "=?utf-8?B?" + base64.b64encode("Grüße aus Köln".encode()).decode()[:8] + "!"
            + base64.b64encode("Grüße aus Köln".encode()).decode()[8:].rstrip("=") + "?=",
            "Grüße aus Köln",
        ),
        (
            "=?euc-kr?B?" + base64.b64encode("(광고) ".encode("cp949")).decode()
            + base64.b64encode("할인 행사".encode("cp949")).decode() + "?=",
            "(광고) 할인 행사",
        ),
        ("=?utf-8?B?SGVsbG8gd29ybGQhX?=", "Hello world!"),
    ],
)  # fmt: skip
def test_broken_base64_encoded_words_are_decoded_as_readers_decode_them(subject: str, shown: str) -> None:
    """The stdlib refused such a word, and the subject reached the rules as ``=?euc-kr?B?...?=``."""
    assert parse(mail(HEAD.replace("Subject: fwd", f"Subject: {subject}"), "x")).interaction.subject == shown


def test_an_encoded_word_with_a_byte_order_mark_before_bad_bytes_does_not_refuse_the_message() -> None:
    """The subject's broken UTF-8 refused the whole message (``bad_encoding``); a body's is read as Latin-1."""
    event = parse(mail(HEAD.replace("Subject: fwd", "Subject: =?utf-8?B?77u/gA==?= offer"), "Please call."))
    assert event.interaction.message == "Please call."
    assert event.interaction.subject is not None and event.interaction.subject.endswith(" offer")
