"""Which sinks each kind of request must reach, and in which order (pure data, shared by the desk and executor)."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.models.rights import RightKind

#: Which sinks each request must reach, in order. Suppression goes first so the chain stops taking the subject's
#: events before anything is deleted; a retention expiry asks the CRM first whether anything is left, and a
#: withdrawal of all consent asks it which purposes rested on consent. ``export`` deletes an erased subject's
#: access and portability exports that still wait to be delivered.
PLAN: Mapping[RightKind, tuple[str, ...]] = {
    RightKind.ERASURE: ("suppression", "kafka", "crm", "hubspot", "export"),
    RightKind.RETENTION_EXPIRY: ("crm", "suppression", "kafka", "hubspot", "export"),
    RightKind.OBJECTION: ("suppression", "crm", "hubspot"),
    RightKind.RESTRICTION: ("suppression", "crm", "hubspot"),
    RightKind.UNRESTRICTION: ("suppression", "crm", "hubspot"),
    RightKind.CONSENT_WITHDRAWAL: ("crm", "suppression", "hubspot"),  # the CRM knows what rested on consent
    RightKind.RECTIFICATION: ("crm", "hubspot"),
    RightKind.ACCESS: ("export",),
    RightKind.PORTABILITY: ("export",),
}
