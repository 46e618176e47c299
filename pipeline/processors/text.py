"""The parts of an event that the person wrote themselves: what content rules (spam, age statements) look at."""

from __future__ import annotations

from pipeline.models.contact import ContactEvent


def person_text(event: ContactEvent, *, without_list_footer: bool = False) -> str:
    """Subject line, message and the person's own turns of a transcript; never the agent's, the bot's or a quoted
    (forwarded) message's words. A turn that repeats the message (a chat's first words, a mail's body) counts once,
    or the link rules would see every link twice.

    ``without_list_footer``: the message ends where a mailing list's footer starts (``list_footer_at``, located by
    the e-mail source): the list wrote it, not the person, so the spam rules do not read it."""
    interaction = event.interaction
    message = interaction.message
    shown = message
    if without_list_footer and message and interaction.list_footer_at is not None:
        shown = message[: interaction.list_footer_at].rstrip()
    if not interaction.transcript:  # the common case, without building and filtering a list
        subject = interaction.subject
        if subject and shown:
            return f"{subject}\n{shown}"
        return subject or shown or ""
    parts = [interaction.subject or "", shown or ""]
    parts.extend(u.text for u in interaction.transcript if u.author == "person" and u.text != message)
    return "\n".join(p for p in parts if p)


def email_domain(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].lower()


def domain_and_parents(domain: str) -> list[str]:
    """``a.b.example.com`` -> [a.b.example.com, b.example.com, example.com] (not the bare TLD)."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(max(len(labels) - 1, 1))]
