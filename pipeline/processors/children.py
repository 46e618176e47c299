"""Children (policy section 12): "no data of individuals under 16". An event that states or implies a younger age
is dropped, keeping only a counter and the reason."""

from __future__ import annotations

from datetime import date

from pipeline.models.contact import ContactEvent
from pipeline.processors.compiled import CompiledPolicy, has_digit


def _age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def child_evidence(event: ContactEvent, text: str, compiled: CompiledPolicy) -> str | None:
    """Which signal shows the person is under the minimum age (a non-personal code), or None.

    The age patterns run one by one only on a text their union matches (most texts need that one search), and
    not even the union runs on a text without a digit when the policy's patterns all need one (``age_needs_digit``:
    a digit check costs a tenth of the union's search).
    """
    minimum = compiled.policy.children.minimum_age
    person = event.person
    if person.stated_age is not None and person.stated_age < minimum:
        return "stated_age"
    if person.birth_date is not None and _age_on(person.birth_date, event.occurred_at.date()) < minimum:
        return "birth_date"
    if not text or (compiled.age_needs_digit and not has_digit(text)):
        return None
    if compiled.age_union is None or compiled.age_union.search(text) is not None:
        for pattern in compiled.age_patterns:
            for match in pattern.finditer(text):
                if int(match.group("age")) < minimum:
                    return "age_statement"
    return None
