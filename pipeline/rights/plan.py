"""Which sinks each kind of request must reach, and in which order (pure data, shared by the desk and executor)."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.models.rights import RightKind, RightsCommand

#: Which sinks each request must reach, in order. Suppression goes first so the chain stops taking the subject's
#: events before anything is deleted; a retention expiry asks the CRM first whether anything is left, and a
#: withdrawal of all consent asks it which purposes rested on consent. ``export`` deletes an erased subject's
#: access and portability exports that still wait to be delivered.
PLAN: Mapping[RightKind, tuple[str, ...]] = {
    RightKind.ERASURE: ("suppression", "kafka", "crm", "hubspot", "export"),
    RightKind.RETENTION_EXPIRY: ("crm", "suppression", "kafka", "hubspot", "export"),
    RightKind.OBJECTION: ("suppression", "crm", "hubspot"),
    RightKind.OBJECTION_LIFTED: ("suppression", "crm", "hubspot"),
    RightKind.RESTRICTION: ("suppression", "crm", "hubspot"),
    RightKind.UNRESTRICTION: ("suppression", "crm", "hubspot"),
    RightKind.CONSENT_WITHDRAWAL: ("crm", "suppression", "hubspot"),  # the CRM knows what rested on consent
    RightKind.RECTIFICATION: ("crm", "hubspot"),
    RightKind.ACCESS: ("export",),
    RightKind.PORTABILITY: ("export",),
}

#: A corrected e-mail address moves the person to the key the new address gives. The suppression state moves first
#: (the chain treats the new key as the person at once, and the old key as erased: an event of the old address
#: received before the correction is never written), then the CRM and HubSpot; exports made under the old key (they
#: hold the old address) are deleted; the old key's data keys are destroyed last, once every other sink confirmed
#: (the request's sealed details are under them).
REKEY_PLAN: tuple[str, ...] = ("suppression", "crm", "hubspot", "export", "kafka")


def rekeys(command: RightsCommand) -> bool:
    """Whether the command corrects the e-mail address to one that gives another subject key."""
    return command.new_subject_key is not None and command.new_subject_key != command.subject_key


def plan_for(command: RightsCommand) -> tuple[str, ...]:
    """The sinks ``command`` must reach, in order."""
    return REKEY_PLAN if rekeys(command) else PLAN[command.kind]
