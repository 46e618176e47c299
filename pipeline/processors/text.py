"""The parts of an event that the person wrote themselves: what content rules (spam, age statements) look at."""

from __future__ import annotations

from pipeline.models.contact import ContactEvent


def person_text(event: ContactEvent, *, only_own: bool = False) -> str:
    """Subject line, message and the person's own turns of a transcript; never the agent's, the bot's or a quoted
    (forwarded) message's words. A turn that repeats the message (a chat's first words, a mail's body) counts once,
    or the link rules would see every link twice.

    ``only_own``: the message ends where a mailing list's footer (``list_footer_at``) or the history under a reply
    (``history_at``) starts, both located by the e-mail source: the list or the answered message wrote it, not the
    person, so the spam rules do not read it."""
    interaction = event.interaction
    message = interaction.message
    shown = message
    if only_own and message and (cut := own_end(event)) is not None:
        shown = message[:cut].rstrip()
    if not interaction.transcript:  # the common case, without building and filtering a list
        subject = interaction.subject
        if subject and shown:
            return f"{subject}\n{shown}"
        return subject or shown or ""
    parts = [interaction.subject or "", shown or ""]
    parts.extend(u.text for u in interaction.transcript if u.author == "person" and u.text != message)
    return "\n".join(p for p in parts if p)


def own_end(event: ContactEvent) -> int | None:
    """Where the person's own words end in the message: the first of a list's footer and a reply's history."""
    interaction = event.interaction
    cuts = [at for at in (interaction.list_footer_at, interaction.history_at) if at is not None]
    return min(cuts) if cuts else None


def email_domain(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].lower()


def domain_and_parents(domain: str) -> list[str]:
    """``a.b.example.com`` -> [a.b.example.com, b.example.com, example.com] (not the bare TLD)."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(max(len(labels) - 1, 1))]
