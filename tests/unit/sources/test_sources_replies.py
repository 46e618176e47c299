"""The history under a reply or a forward (``pipeline.sources.replies``), as mail clients write it."""

from __future__ import annotations

import time

import pytest

from pipeline.sources.replies import split_history

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
