"""A public spam corpus's shapes, read as ``leadpipe import email DIR`` and ``leadpipe spam score DIR`` read them.

``fixtures/mail_corpus/`` is written by hand in the layouts of the corpora an evaluation runs through the product
after each release: the SpamAssassin public corpus (``easy_ham``, ``hard_ham``, ``spam``, ``spam_2``: one file per
message named ``00001.<md5>``, each opening with an mbox ``From `` line, and the directory's ``cmds``), TREC 2007
(``trec07p/data/inmail.N`` and its ``full/index``) and Enron-Spam (``enron1/ham/*.txt``: a ``Subject:`` line and the
body, no sender). The messages are 2002-2007 mailers' (Outlook Express 6, Eudora, Pine, Mutt, Claris Emailer,
Foxmail, Yahoo Groups, Mailman, bulk mailers): 8-bit headers, Korean, Chinese, Russian and Japanese charsets, unknown
and lying ones, base64 and quoted-printable HTML, HTML with hidden text (white on white, a font of no size, boxes
off the page: hash-busters and word salad) and comments or invisible characters inside words, newsletters whose
white text sits on dark cells, background images and a stylesheet's classes, image-only mail,
uuencoded attachments, broken and missing boundaries, forged and missing senders, bare CR line ends, NUL bytes,
lines over 998 characters, no body, bottom-posted replies, text cut mid-character.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from source_payloads import ctx_for

from pipeline.importer import records_at
from pipeline.models.contact import ContactEvent
from pipeline.processors.text import person_text
from pipeline.sources import NothingToTake, SourceError
from pipeline.sources import email as email_source

CORPUS = Path(__file__).resolve().parent / "fixtures" / "mail_corpus"


def _read() -> dict[str, list[ContactEvent] | str]:
    """Each record of the corpus, by its place (``spam/00001.<md5>: message 1``): its events, or why there are none
    (``rejected: <reason>``, ``ignored: <reason>``, ``crashed: <exception>``: ingest dead-letters an adapter's
    error as ``adapter_failed``, and the lead is lost)."""
    out: dict[str, list[ContactEvent] | str] = {}
    for record in records_at(CORPUS, mail=True):
        if record.skipped is not None:  # a corpus's file that is no message: counted by the import, never sent
            out[record.where] = f"skipped: {record.skipped}"
            continue
        try:
            out[record.where] = email_source.parse(record.raw, ctx_for("email", record.raw, record.content_type))
        except NothingToTake as exc:
            out[record.where] = f"ignored: {exc.reason}"
        except SourceError as exc:
            out[record.where] = f"rejected: {exc.reason}"
        except Exception as exc:
            out[record.where] = f"crashed: {type(exc).__name__}"
    return out


READ = _read()


def event_of(name: str) -> ContactEvent:
    [place] = [p for p in READ if p.startswith(name + ":")]
    found = READ[place]
    assert not isinstance(found, str), f"{name}: {found}"
    [event] = found
    return event


def test_every_file_of_the_corpus_is_a_record_and_each_record_an_outcome() -> None:
    """No file vanishes (a classic Mac OS file with bare CR line ends was split into no message at all, so import and
    score skipped it without a word), and each record is an event, a typed rejection or a receipt: no adapter error."""
    files = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file()}
    assert {place.rpartition(": ")[0] for place in READ} == files
    assert len(READ) == len(files)  # one message per file
    outcomes = Counter(v if isinstance(v, str) else "event" for v in READ.values())
    assert outcomes == {
        "event": 51,
        "skipped: not_a_message": 2,  # SpamAssassin's cmds, TREC's index (the answer key, never read as mail)
        "rejected: no_identity": 2,  # Enron-Spam's two messages without a sender
        "rejected: invalid_email": 2,  # an empty From, a From of a display name only
        "ignored: bounce": 1,  # a forged bounce carrying spam (backscatter)
    }


@dataclass(frozen=True)
class Expected:
    name: str
    email: str
    subject: str | None
    says: tuple[str, ...] = ()
    not_says: tuple[str, ...] = ()
    reply_to: str | None = None
    attachments: tuple[str, ...] = ()


EXPECTED = [
    # the writer, not the list: Mailman's list headers and Reply-To are kept apart
    Expected("easy_ham/00001.7c53336b37003a9286aba55d2945844c", "kre@munnari.oz.au", "Re: New Sequences Window",
             says=("For me it is very repeatable",)),
    Expected("easy_ham/00004.864220c5b6930b209cc287c361c99af1", "timc@2ubh.example.com", "[zzzzteana] Moscow bomber",
             says=("Security officers",), reply_to="zzzzteana@yahoogroups.com"),
    Expected("easy_ham/00003.860e3c3cee1b42ead714c5c874fe25f7", "flefevre@wanadoo.example.fr",
             "Re: présentation à Montréal", says=("La présentation à Montréal est confirmée",), not_says=("MSHTML",)),
    # Claris Emailer on Mac OS 9: every line ends in a bare CR
    Expected("easy_ham/00006.253ea2f9a9cc36fa0b1129b04b806608", "jvp@mac.example.com", "Re: OS X 10.2 upgrade",
             says=("order the Jaguar upgrade",)),
    Expected("easy_ham/00007.c75188382f64b090022fa3b095b020b0", "marc@perkel.example.com",
             "[Razor-users] Fwd: spam that got through", says=("not caught by razor",), not_says=("pre-approved",)),
    # Pine: raw Latin-1 bytes in From and Subject
    Expected("easy_ham/00008.20bc0b4ba2d99aae1c7098069f611a9b", "jmueller@uni-stuttgart.example.de",
             "Re: [SAtalk] Regeln für\tdeutsche Spam-Mails", says=("Grüße aus Stuttgart",)),
    Expected("easy_ham/00009.435ae292d75abb1ca492dcc2d5cf1570", "haldevore@acm.example.org", "Re: PGP/MIME and exmh",
             says=("GnuPG",), not_says=("BEGIN PGP",), attachments=("unnamed.pgp-signature",)),
    Expected("hard_ham/00001.7c7d6921e671bbe18ebb5f893cd9bb35",
             "Online#3.18892.ad-19c6W2xAPbq@newsletters.example.zdnet.com", "Linux on the desktop: is 2003 the year?",
             says=("Our analysts weigh",), not_says=("<p>",), reply_to="techupdate@example.zdnet.com"),
    Expected("hard_ham/00003.4f9a1a5d5b1b8e2cf7fa2bf6b1a6c0d2", "olga@example.ru",
             "Предложение о сотрудничестве", says=("40 лицензий на сервер",)),  # noqa: RUF001
    Expected("hard_ham/00004.7bc5bf8b1c1e5b2b4f4b0a9ea8ac2a35", "minjun@example.co.kr", "견적 요청드립니다",
             says=("서버 20대에 대한 견적을",)),
    Expected("hard_ham/00005.a1ca6d0a4cd4a9e4c31d1a3f6c6b6d1c", "wangwei@example.com.cn", "询价",
             says=("我们公司想订购十套软件",)),
    Expected("hard_ham/00006.b2f4b0d8e7ac5f1a3b9c2e1d0f8a7b6c", "dgillmor@example.sjmercury.com",
             "Re: weblog question", says=("Tuesday suits me",), not_says=("--=====",)),
    Expected("hard_ham/00007.d9f2a6c0b8e1f7a3c5b4d2e0f1a9b8c7", "gward@example.net", "python-dev summary",
             says=("new import hooks",)),
    Expected("hard_ham/00008.e4c7f9a2b1d0c8e6f5a3b2c1d0e9f8a7", "premier@example.dell.com",
             "Your Dell order 5517290 has shipped", says=("shipped today \u2013 tracking", "we\u2019re here")),
    Expected("spam/00001.7848dde101aa985090474a91ec93fcf0", "12a1mailbot1@web.de", "Life Insurance - Why Pay More?",
             says=("Save up to 70% on Life Insurance", "Click here <http://website.e365.cc/savequote/>")),
    # the spammer's Reply-To is kept apart; words cut by comments are whole; hidden text is not the writer's
    Expected("spam/00002.d94f1b97e48ed3b553b3508d116e6a09", "lmrn@mailexcite.com",
             "V1AGRA - No Prescription Needed!!!  rlmsc", says=("Viagra and Cialis", "No prescription needed"),
             not_says=("jbxq", "hamword meeting agenda", "quick brown fox"), reply_to="orders8847@hotmail.com"),
    # Outlook Express's hash-busters: white (#ffffff, white, ffffff, #fefefe, rgb()) on a white or unset background;
    # white on the dark table and a link in white text (drawn in the link colour) are seen
    Expected("spam/00025.6d7e8f9a0b1c2d3e4f50617283a4b5c6", "mortgage7731@example-refi.biz",
             "Your application #4412 -- pre-approved",
             says=("Your home loan has been pre-approved. Lower your monthly payments today.",
                   "APPLY ONLINE IN 2 MINUTES", "See the rates <http://www.example-refi.biz/apply.asp?id=2231>",
                   "To be removed from our list"),
             not_says=("nightingale", "ghibqpz", "xkcdq", "budget minutes", "vacation", "quarterly")),
    Expected("spam/00003.2ee33bc6eacdb11f38d052c44819ba6c", "rodolfo@example-mail.ru",
             "Lowest rates in 40 years -- act now", says=("Refinance your mortgage NOW!",)),
    Expected("spam/00004.a7c62cae5c1a9e26bd2f1b8e21c8b8b1", "promo@example-promo.cn", "特价推广\uff1a网站推广最佳方案",
             says=("网站推广\uff0c每天只需十元",)),
    Expected("spam/00005.8c3b1c5e6e4a1d2f3b4c5d6e7f8a9b0c", "loan0822@example-loan.co.kr",
             "(광고) 무담보 신용대출 안내", says=("무담보 신용대출 최고 5천만원까지",)),
    Expected("spam/00006.3ca1f399ccda5d897fecb8c57669a283", "qq8877@example-img.com", "see attached",
             says=("http://www.example-img.com/go.php?u=8877",), attachments=("offer.gif",)),
    # two From fields: the first, as mail readers show it
    Expected("spam/00009.1e4c1b5a9a3f5d2e7c8b9a0d1e2f3a4b", "service@paypal.example.com",
             "Account verification required", says=("verify your account",)),
    Expected("spam/00010.445affef4c70feec58f9198cfbc22997", "kfdjg@example-bulk.org", None,
             says=("no prescription",)),
    # a uuencoded program in the text: named, not read as words
    Expected("spam/00011.1f7ea1d9e9c3b6c1a8e2f0d3b7c4a5e6", "lover@example-worm.net", "Re: your picture",
             says=("free casino bonus",), not_says=("begin 644", "M35J0"), attachments=("picture.exe",)),
    Expected("spam/00012.8f6e4c2a0b1d3e5f7a9c8b6d4e2f0a1c", "casino@example-casino.com", "$500 free casino bonus",
             says=("Online casino bonus 59 <http://www.example-casino59.com/>",)),
    Expected("spam/00013.0a1b2c3d4e5f60718293a4b5c6d7e8f9", "info@example-bulk.info", "Lose 30 pounds in 30 days",
             says=("with our herbal diet pill",), not_says=("\x00",)),
    Expected("spam/00014.b2c3d4e5f60718293a4b5c6d7e8f9a0b", "earn@example-env.com", "Guaranteed income",
             says=("processing envelopes",)),
    # x-user-defined over EUC-KR bytes; two encoded words' base64 joined in one word
    Expected("spam/00015.c3d4e5f60718293a4b5c6d7e8f9a0b1c", "webmaster@example-mall.co.kr", "(광고) 쇼핑몰 50% 할인",
             says=("전 상품 50% 할인",)),
    Expected("spam/00016.d4e5f60718293a4b5c6d7e8f9a0b1c2d", "deals@example-deals.com", "Printer ink 80% off",
             says=("Printer ink cartridges 80% off",)),
    Expected("spam/00018.f60718293a4b5c6d7e8f9a0b1c2d3e4f", "drjamesokon@example-mail.com", "URGENT BUSINESS PROPOSAL",
             says=("TRANSFER THE SUM",), reply_to="jamesokon_2002@example-hotmail.com"),
    Expected("spam/00019.0718293a4b5c6d7e8f9a0b1c2d3e4f50", "rx@example-rx.com", "Re: your order",
             says=("Buy Viagra and Valium online without prescription",)),
    Expected("spam/00020.18293a4b5c6d7e8f9a0b1c2d3e4f5061", "reklama@example-spam.ru", "Реклама в интернете",
             says=("рассылка по 5 миллионам адресов",)),
    Expected("spam/00021.293a4b5c6d7e8f9a0b1c2d3e4f506172", "3d@example-bulk.biz",
             "FREE 100 million email addresses CD", says=("on CD \u2013 only $99.95",)),
    # a website mailer's address and an image alone, in a table with an empty row
    Expected("spam/00022.3a4b5c6d7e8f9a0b1c2d3e4f50617283", "webmaster@example-lotto.com", "You are a winner",
             attachments=("unnamed.gif",)),
    # GB2312 subject and body cut mid-character by the bulk mailer
    Expected("spam/00023.4b5c6d7e8f9a0b1c2d3e4f5061728394", "fapiao@example-fp.cn",
             "发票代开\uff0c税点最低\uff0c欢迎来电咨",
             says=("本公司代开各地发票",)),
    # soft hyphens, zero-width spaces and word joiners inside the words, in the subject, the plain text and the HTML
    Expected("spam_2/00007.8f9a0b1c2d3e4f5061728394a5b6c7d8", "rx-deals@example-rxshop.com",
             "Viagra and Cialis - save 80%", says=("Viagra, Cialis and Levitra from $0.99.", "No prescription")),
    # a modern newsletter: its preview line is hidden; MJML's font-size:0px column, white on its dark header, on a
    # class's background (the stylesheet's) and Outlook's mso-hide:all button (its twin in a conditional comment)
    Expected("hard_ham/00009.f0a1b2c3d4e5f60718293a4b5c6d7e8f", "tickets@events.example.com",
             "Your ticket for Northwind Summit 2024",
             says=("Northwind Summit 2024\n", "Hi Dana, thanks for registering",
                   "View your ticket <https://events.example.com/t/8812>",
                   "See the agenda <https://events.example.com/agenda>", "Unsubscribe <https://events"),
             not_says=("Doors open",)),
    # a 2002 newsletter: white on its dark nav bar and red box, on its hero's image; links in white text
    Expected("hard_ham/00010.0b1c2d3e4f5061728394a5b6c7d8e9f0", "farewatcher@example-travel.com",
             "Fall fares from $79 - Boston",
             says=("FARE WATCHER | Flights <http://www.example-travel.com/flights?src=fw> | Hotels",
                   "Fall fares from $79 each way", "Dear Marcus", "SALE ENDS FRIDAY", "To unsubscribe, click here")),
    Expected("spam_2/00001.317e78fa8ee2f54cd4890fdc09ba8176", "info@example-shop.jp", "未承諾広告※新製品のご案内",
             says=("新製品のご案内です。今なら半額\uff01",)),
    Expected("spam_2/00002.9438920e9a55591b18e60d1ed37d992b", "zyx@example-ent.com", "Víagra - lowest price",
             says=("Viagra only $2 per dose. Viagra overnight.",)),
    Expected("spam_2/00004.5d6e7f8091a2b3c4d5e6f708192a3b4c", "hgh@example-hgh.com", "Look 10 years younger with HGH",
             says=("Human Growth Hormone \u2013 look 10 years younger", "Lose weight, gain energy")),
    Expected("spam_2/00005.6e7f8091a2b3c4d5e6f708192a3b4c5d", "offers@example-fold.com",
             "Get FREE cable TV desc rambler now", says=("cable descrambler",)),
    # UTF-8 cut mid-character: still UTF-8, not Windows-1252 mojibake
    Expected("spam_2/00006.7e8f9a0b1c2d3e4f5061728394a5b6c7", "gewinn@example-lotto.de",
             "Glückwunsch \u2013 Sie haben gewonnen", says=("Herzlichen Glückwunsch!", "50.000 € gewonnen"),
             not_says=("Ã",)),
    Expected("trec07p/data/inmail.1", "RickyAmes@aol.com", "Generic Cialis, branded quality@",
             says=("Try V1agra Cialis Levitra",)),
    Expected("trec07p/data/inmail.2", "mh+debian-mirrors@example.zugschlus.de", "Re: Typo in /debian/README",
             says=("Fixed on our mirror",), reply_to="debian-mirrors@lists.debian.org"),
    # stock spam's word salad in a font of no size, at opacity 0, off the page, in boxes of no size, hidden
    Expected("trec07p/data/inmail.3", "trader.news@example-stox.com", "CDGT is about to explode",
             says=("STOCK ALERT: CDGT", "Huge news expected this week", "\nWatch CDGT trade on Monday!"),
             not_says=("copper", "reservoir", "gazebo", "committee", "harbour", "saddle", "thistle", "meridian")),
]  # fmt: skip


@pytest.mark.parametrize("expected", EXPECTED, ids=[e.name.split(".")[0] for e in EXPECTED])
def test_each_message_is_read_as_a_mail_reader_shows_it(expected: Expected) -> None:
    event = event_of(expected.name)
    assert event.person.email == expected.email
    assert event.interaction.reply_to == expected.reply_to
    assert event.interaction.subject == expected.subject
    message = event.interaction.message or ""
    for text in expected.says:
        assert text in message
    for text in expected.not_says:
        assert text not in message
    assert event.interaction.attachments_ignored == expected.attachments


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("spam/00002.d94f1b97e48ed3b553b3508d116e6a09", ("viagra", "cialis")),  # comments inside the words
        ("spam/00003.2ee33bc6eacdb11f38d052c44819ba6c", ("mortgage",)),  # base64-encoded HTML
        ("spam/00005.8c3b1c5e6e4a1d2f3b4c5d6e7f8a9b0c", ("신용대출",)),  # ks_c_5601-1987, base64
        ("spam/00019.0718293a4b5c6d7e8f9a0b1c2d3e4f50", ("viagra", "valium")),  # words cut by soft line breaks
        ("spam/00023.4b5c6d7e8f9a0b1c2d3e4f5061728394", ("发票",)),  # cut mid-character
        ("spam/00024.5c6d7e8f9a0b1c2d3e4f50617283a4b5", ("viagra", "cialis")),  # below a quote in a "reply"
        ("spam_2/00006.7e8f9a0b1c2d3e4f5061728394a5b6c7", ("gewinnspiel", "überweisen")),  # UTF-8 cut short
        ("spam_2/00007.8f9a0b1c2d3e4f5061728394a5b6c7d8", ("viagra", "cialis", "levitra", "prescription")),  # &shy;
    ],
)
def test_the_spam_rules_read_the_words_as_the_reader_sees_them(name: str, words: tuple[str, ...]) -> None:
    """What the content rules and the classifier read (the writer's own text: ``own_content``)."""
    text = person_text(event_of(name), only_own=True).lower()
    for word in words:
        assert word in text


@pytest.mark.parametrize(
    ("name", "hid"),
    [
        ("spam/00002.d94f1b97e48ed3b553b3508d116e6a09", True),
        ("spam/00025.6d7e8f9a0b1c2d3e4f50617283a4b5c6", True),
        ("trec07p/data/inmail.3", True),
        ("hard_ham/00009.f0a1b2c3d4e5f60718293a4b5c6d7e8f", True),  # a newsletter's hidden preview line: no verdict
        ("hard_ham/00010.0b1c2d3e4f5061728394a5b6c7d8e9f0", False),
        ("hard_ham/00001.7c7d6921e671bbe18ebb5f893cd9bb35", False),
        ("spam_2/00007.8f9a0b1c2d3e4f5061728394a5b6c7d8", False),  # invisible characters are no hidden words
        ("trec07p/data/inmail.1", False),
    ],
)
def test_a_message_whose_html_hid_words_is_noted_so(name: str, hid: bool) -> None:
    """The words are left out; that the message hid some is kept (``hidden_text``), a fact a reader would weigh."""
    assert ("hidden_text" in event_of(name).provenance.notes) is hid


def test_hidden_word_salad_is_not_what_the_spam_rules_read() -> None:
    """Words chosen to look like ham (Bayes poison) were what the content rules and the classifier read."""
    for name in ("spam/00025.6d7e8f9a0b1c2d3e4f50617283a4b5c6", "trec07p/data/inmail.3"):
        text = person_text(event_of(name), only_own=True).lower()
        assert not {"nightingale", "agenda", "budget", "committee", "copper"} & set(text.split())


def test_the_writer_s_words_below_a_quote_are_theirs() -> None:
    """Pine's and Mutt's bottom-posted replies: the attribution at the top opened a "history" over the whole text,
    and the content rules read nothing of what the writer wrote under the quote."""
    event = event_of("easy_ham/00008.20bc0b4ba2d99aae1c7098069f611a9b")
    assert event.interaction.history_at is None
    assert "Regeln für" in person_text(event, only_own=True)


def test_eudora_s_attribution_opens_the_history_under_a_reply() -> None:
    event = event_of("easy_ham/00005.bf27cdeaf0b8c4647ecd61b1d09da613")
    own = person_text(event, only_own=True)
    assert "Update your\nsignatures." in own and "prolific virus" not in own


@pytest.mark.parametrize(
    ("name", "footer"),
    [
        ("easy_ham/00001.7c53336b37003a9286aba55d2945844c", "_______________________________________________\nExmh"),
        ("easy_ham/00002.9c4069e25e1ef370c078db7ee85ff9ac", "--\nIrish Linux Users' Group"),
        ("easy_ham/00004.864220c5b6930b209cc287c361c99af1", "------------------------ Yahoo! Groups Sponsor"),
        ("trec07p/data/inmail.2", "-- \nTo UNSUBSCRIBE"),
    ],
)
def test_a_list_s_footer_is_not_the_writer_s(name: str, footer: str) -> None:
    """Mailman's, a list's signature-style and Yahoo! Groups' footers (its sponsor's ad and link under a labelled
    rule, which was read as the writer's words)."""
    event = event_of(name)
    at = event.interaction.list_footer_at
    assert at is not None and (event.interaction.message or "")[at:].startswith(footer)
    assert footer not in person_text(event, only_own=True)
