"""Anonymous website visitors (policy section 2; the policy file's ``visitors``): kept only with their consent.

An event keyed by a visitor key (``normalize.is_visitor_key``: no e-mail or phone, only the cookie id's HMAC) was
collected by a cookie that is not strictly necessary, which needs the visitor's consent (ePrivacy Directive 5(3)).
It is kept only when the consent-manager choices it carries (``provenance.cookie_consent``) grant one of the
policy's categories and deny none of them; otherwise the chain drops it (``no_consent``). An event naming a person
is the person's and is not checked here.
"""

from __future__ import annotations

from pipeline.models.contact import ContactEvent
from pipeline.normalize import is_visitor_key
from pipeline.processors.compiled import CompiledPolicy


def visitor_consented(event: ContactEvent, compiled: CompiledPolicy) -> bool:
    """Whether the event grants one of the policy's analytics categories and denies none of them."""
    wanted = compiled.visitor_consent_categories
    granted = False
    for category, value in event.provenance.cookie_consent.items():
        if category in wanted:
            if not value:
                return False
            granted = True
    return granted


def lacks_consent(event: ContactEvent, compiled: CompiledPolicy) -> bool:
    """Whether the event is an anonymous visitor's without the consent the policy requires (the chain drops it)."""
    return is_visitor_key(event.subject_key) and not visitor_consented(event, compiled)
