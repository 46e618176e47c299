"""The history under a reply or a forward (``pipeline.sources.replies``), as mail clients write it."""

from __future__ import annotations

import time

import pytest

from pipeline.sources.replies import history_line, split_history

CAMPAIGN = "> FREE TRIAL - LIMITED OFFER!!!\n> Click here: https://example.com/offer\n"


@pytest.mark.parametrize(
    ("text", "own", "sender", "subject", "history"),
    [
        (  # Gmail
            "Yes, we are interested.\n\nBest,\nAna\n\nOn Tue, Jun 4, 2024 at 9:00 AM Tom Sales <tom@example.com> "
            "wrote:\n" + CAMPAIGN,
            "Yes, we are interested.\n\nBest,\nAna",
            "Tom Sales <tom@example.com>",
            None,
            "FREE TRIAL - LIMITED OFFER!!!\nClick here: https://example.com/offer",
        ),
        (  # Gmail wraps a long attribution
            "Sounds good.\n\nOn Tue, Jun 4, 2024 at 9:00 AM Tom Sales <\ntom@example.com> wrote:\n\n> Hello Ana\n",
            "Sounds good.",
            "Tom Sales <tom@example.com>",
            None,
            "Hello Ana",
        ),
        (  # German Gmail
            "Ja gerne.\n\nAm Di., 4. Juni 2024 um 09:00 Uhr schrieb Tom Sales <tom@example.com>:\n> Angebot\n",
            "Ja gerne.",
            "Tom Sales <tom@example.com>",
            None,
            "Angebot",
        ),
        (  # French
            "D'accord.\n\nLe mar. 4 juin 2024 à 09:00, Tom Sales <tom@example.com> a écrit :\n> Offre\n",
            "D'accord.",
            "Tom Sales <tom@example.com>",
            None,
            "Offre",
        ),
        (  # Outlook, a rule and the answered message's header block
            "Please call me.\n\n________________________________\nFrom: Tom Sales <tom@example.com>\n"
            "Sent: Tuesday, June 4, 2024 9:00 AM\nTo: Ana <ana@customer.es>\nSubject: Limited offer\n\nFREE TRIAL\n",
            "Please call me.",
            "Tom Sales <tom@example.com>",
            "Limited offer",
            "FREE TRIAL",
        ),
        (  # German Outlook without a rule
            "Bitte anrufen.\n\nVon: Tom Sales <tom@example.com>\nGesendet: Dienstag, 4. Juni 2024 09:00\n"
            "An: Ana\nBetreff: Angebot\n\nGRATIS testen\n",
            "Bitte anrufen.",
            "Tom Sales <tom@example.com>",
            "Angebot",
            "GRATIS testen",
        ),
        (  # Gmail's forward
            "FYI, a lead for you\n\n---------- Forwarded message ---------\nFrom: Ana García <ana@customer.es>\n"
            "Date: Tue, Jun 4, 2024 at 9:00 AM\nSubject: Quote request\nTo: <tom@example.com>\n\nPlease quote.\n",
            "FYI, a lead for you",
            "Ana García <ana@customer.es>",
            "Quote request",
            "Please quote.",
        ),
        (  # Apple Mail's forward, no note
            "Begin forwarded message:\n\nFrom: Ana García <ana@customer.es>\nSubject: Quote request\n\nPlease.\n",
            "",
            "Ana García <ana@customer.es>",
            "Quote request",
            "Please.",
        ),
        ("Yes please.\n\n> Do you want the offer?\n> Reply yes or no.\n", "Yes please.", None, None, "Do you want"),
        # Gmail's attributions in languages the worded pattern lacks: a line naming an address, ending in a colon,
        # quoted lines after it
        (
            "はい。\n\n2024年6月4日(火) 9:00 Tom <tom@example.com>:\n> 見積もり\n",
            "はい。",
            "Tom <tom@example.com>",
            None,
            "見積",
        ),
        (
            "Да.\n\nвт, 4 июн. 2024 \u0433. в 09:00, Tom <tom@example.com>:\n> Предложение\n",
            "Да.",
            "Tom <tom@example.com>",
            None,
            "Предложение",
        ),
        (
            "好的。\n\nTom <tom@example.com> 于2024年6月4日周二 09:00写道\uff1a\n> 报价\n",
            "好的。",
            "Tom <tom@example.com>",
            None,
            "报价",
        ),
        (
            "Tak.\n\nwt., 4 cze 2024 o 09:00 Tom <tom@example.com> napisał(a):\n> Oferta\n",
            "Tak.",
            "Tom <tom@example.com>",
            None,
            "Oferta",
        ),
    ],
)
def test_the_history_under_a_reply_or_forward(
    text: str, own: str, sender: str | None, subject: str | None, history: str
) -> None:
    found = split_history(text)
    assert found is not None
    cut, told = found
    assert text[:cut].rstrip() == own
    assert (told.sender, told.subject) == (sender, subject)
    assert told.text.startswith(history)


@pytest.mark.parametrize(
    "text",
    [
        "Hello, on Monday my colleague wrote: we need 20 licences. Can you help?\nThanks",
        "> earlier point\nMy answer is yes.\n> another point\nAnd yes here too.",  # answers between the quotes
        "Quote: 12,000 EUR\nFrom: our catalogue\nPrice: see below",  # label lines, no header block
        "> a single quoted line\nthat is all",
        "Write to our team <team@example.com>:\nwe answer within a day.",  # an address and a colon, nothing quoted
    ],
)
def test_a_writers_own_text_has_no_history(text: str) -> None:
    assert split_history(text) is None


HOSTILE = {
    "attribution openers on every line": "Le x\n" * 10_000,
    "long opener lines": ("On " + "a" * 290 + "\n") * 170,
    "verbs without a colon": ("On a wrote b schrieb c " * 12 + "\n") * 180,
    "quote marks only": "> q\n" * 12_000,
    "a rule and header lines": ("_" * 30 + "\nFrom: x\n") * 1300,
    "attributions each answered below": "On a, b wrote:\n> q\nanswer\n" * 2000,
}


def _best_of(runs: int, text: str) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        split_history(text)
        times.append(time.perf_counter() - start)
    return min(times)


def test_a_hostile_text_costs_about_what_a_normal_one_does() -> None:
    """Relative, not wall-clock: 50 KB shaped to make the patterns backtrack against 50 KB of prose, best of 5 (an
    attribution allowed to span any number of lines cost ~400x a normal text on the first shape; the email adapter's
    hostile-message test uses the same bound)."""
    normal = _best_of(5, ("Thanks for the offer, we will call you on Monday. " * 1000)[:50_000])
    for name, text in HOSTILE.items():
        hostile = _best_of(5, text[:50_000])
        assert hostile < 30 * normal + 0.005, f"{name}: {hostile * 1000:.1f} ms against {normal * 1000:.2f} ms"


@pytest.mark.parametrize(
    ("block", "subject"),
    [  # Outlook's header block in its localised editions: any space before the colon, or a full-width one
        (("De: Tom <tom@example.com>", "Enviado el: martes, 4 de junio de 2024 9:00", "Asunto: Oferta"), "Oferta"),
        (("De\u00a0: Tom <tom@example.com>", "Envoyé\u00a0: mardi 4 juin 2024 09:00", "Objet\u00a0: Offre"), "Offre"),
        (("От: Tom <tom@example.com>", "Отправлено: 4 июня 2024 9:00", "Тема: Предложение"), "Предложение"),
        (("差出人: Tom <tom@example.com>", "送信日時: 2024年6月4日 9:00", "件名: 見積もり"), "見積もり"),
        (("差出人\uff1aTom <tom@example.com>", "送信日時\uff1a2024年6月4日", "件名\uff1a見積もり"), "見積もり"),
        (("发件人: Tom <tom@example.com>", "发送时间: 2024年6月4日 9:00", "主题: 报价"), "报价"),
        (("Från: Tom <tom@example.com>", "Skickat: den 4 juni 2024 09:00", "Ämne: Offert"), "Offert"),
        (("Fra: Tom <tom@example.com>", "Sendt: 4. juni 2024 09:00", "Emne: Tilbud"), "Tilbud"),
        (("Od: Tom <tom@example.com>", "Odesláno: úterý 4. června 2024 9:00", "Předmět: Nabídka"), "Nabídka"),
        (("Kimden: Tom <tom@example.com>", "Gönderildi: 4 Haziran 2024 Salı 09:00", "Konu: Teklif"), "Teklif"),
    ],
)
def test_outlooks_header_block_in_its_localised_editions(block: tuple[str, ...], subject: str) -> None:
    header = "\n".join(block)
    text = f"Please call me.\n\n{header}\n\nFREE TRIAL\n"
    found = split_history(text)
    assert found is not None
    cut, told = found
    assert text[:cut].rstrip() == "Please call me."
    assert (told.sender, told.subject, told.text) == ("Tom <tom@example.com>", subject, "FREE TRIAL")


def test_a_forward_apple_mail_quoted_names_its_sender() -> None:
    text = "FYI\n\n> Begin forwarded message:\n> \n> From: Ana <ana@customer.es>\n> Subject: Quote\n> \n> Please.\n"
    found = split_history(text)
    assert found is not None and (found[1].sender, found[1].subject, found[1].text) == (
        "Ana <ana@customer.es>",
        "Quote",
        "Please.",
    )


@pytest.mark.parametrize(
    ("lines", "own"),
    [  # a Greek client's: Outlook's rule and sender line, an attribution, a separator
        (("Yes.", "", "Ivan", "_" * 32, "Από: Tom <tom@example.com>", "Tel.: +30 21 0123 4567"), "Yes.\n\nIvan"),
        (("Yes.", "", "Ivan", "", "Στις 4/6/2024 Tom <tom@example.com> έγραψε:", "Tel.: 1"), "Yes.\n\nIvan"),
        (("Yes.", "", "---- Αρχικό μήνυμα ----", "Tel.: 1"), "Yes."),
    ],
)
def test_a_line_that_may_open_a_history_bounds_the_writers_own_words(lines: tuple[str, ...], own: str) -> None:
    """Forms ``split_history`` does not know: in a reply, nothing below them is surely the writer's."""
    text = "\n".join(lines)
    found = history_line(text)
    assert found is not None and text[:found].rstrip() == own


def test_a_signature_has_no_history_line() -> None:
    assert history_line("Yes.\n\nIvan\nTel.: +49 30 1234567\nE-Mail: ivan@client.ru\n-- \nSent from my phone\n") is None


@pytest.mark.parametrize(
    "text",
    [  # Pine's and Mutt's bottom-posted replies, as mailing lists write them: the writer's words under the quote
        "On Thu, 22 Aug 2002, Justin Mason wrote:\n\n> Any rules for German spam?\n\nWe built a few.\nJoerg\n",
        "On Sun, Apr 08, 2007 at 01:04:23PM -0400, Joey Hess wrote:\n> There's a typo.\n\nFixed.\n\n-- \nMarc\n",
        "Hi Tom,\n\nOn Tue, Jun 4, 2024 Tom <tom@example.com> wrote:\n> Price?\n12,000 EUR.\n> Date?\nMonday.\n",
        "Tom <tom@example.com> 于2024年6月4日周二 09:00写道\uff1a\n> 报价\n\n好的\uff0c请发合同。\n",
    ],
)
def test_words_written_below_the_quote_are_the_writer_s(text: str) -> None:
    """An attribution at the top opened a "history" over the whole message, and the content rules read nothing of
    what the writer wrote under the quote (a spammer's "reply" put its offer there)."""
    assert split_history(text) is None


@pytest.mark.parametrize(
    "tail",
    [
        "",
        "\n-- \nTo UNSUBSCRIBE, email to debian-mirrors-request@lists.debian.org\n",
        "\n" + "_" * 47 + "\nList footer\n",
    ],
)
def test_a_signature_or_a_list_s_footer_under_the_quote_is_no_answer_to_it(tail: str) -> None:
    text = "Yes please.\n\nOn Tue, Jun 4, 2024 at 9:00 AM Tom <tom@example.com> wrote:\n> FREE TRIAL\n" + tail
    found = split_history(text)
    assert found is not None and text[: found[0]].rstrip() == "Yes please."


def test_eudora_s_attribution_opens_a_history() -> None:
    text = "We got hit too.\n\nAt 08:29 AM 8/22/2002 -0400, Keith Dawson wrote:\n>Klez continues to wreak havoc.\n"
    found = split_history(text)
    assert found is not None and text[: found[0]].rstrip() == "We got hit too."
