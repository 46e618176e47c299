"""The parts of an event that the person wrote themselves: what content rules (spam, age statements) look at."""

from __future__ import annotations

from pipeline.models.contact import ContactEvent


def person_text(event: ContactEvent) -> str:
    """Subject line, message and the person's own turns of a transcript; never the agent's, the bot's or a quoted
    (forwarded) message's words. A turn that repeats the message (a chat's first words, a mail's body) counts once,
    or the link rules would see every link twice."""
    interaction = event.interaction
    if not interaction.transcript:  # the common case, without building and filtering a list
        subject, message = interaction.subject, interaction.message
        if subject and message:
            return f"{subject}\n{message}"
        return subject or message or ""
    parts = [interaction.subject or "", interaction.message or ""]
    message = interaction.message
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
