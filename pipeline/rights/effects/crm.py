"""The internal CRM's part of each request, through the CRM repository's rights methods."""

from __future__ import annotations

from pipeline.models.rights import RightKind
from pipeline.rights.bodies import RectificationBody
from pipeline.rights.effects.base import Context, Effect, EffectError, EffectResult, Handover
from pipeline.sinks.crm.repository import CrmRepository, FlagChange

NOT_IN_CRM = "subject_not_in_crm"


def _flag(change: FlagChange) -> EffectResult:
    if not change.found:
        return EffectResult.not_applicable(NOT_IN_CRM)
    return EffectResult.done(changed=change.changed, purposes_stopped=change.purposes_stopped)


class CrmEffect(Effect):
    sink = "crm"

    def __init__(self, repository: CrmRepository) -> None:
        self.repository = repository

    def handover(self, subject_key: str) -> Handover:
        view = self.repository.show(subject_key)
        if view is None:
            return Handover()
        emails = {i.value for i in view.identities if i.kind == "email"}
        if view.email:
            emails.add(view.email.lower())
        return Handover(emails=tuple(sorted(emails)))

    def apply(self, ctx: Context) -> EffectResult:
        command, repo = ctx.command, self.repository
        key, request_id = command.subject_key, command.request_id
        kind = command.kind
        if kind is RightKind.ERASURE:
            erased = repo.erase_subject(key, request_id, at=ctx.now)
            if not erased.found:
                return EffectResult.not_applicable(NOT_IN_CRM)
            return EffectResult.done(**erased.evidence())
        if kind is RightKind.RETENTION_EXPIRY:
            deleted = repo.delete_interactions(key, command.event_ids, request_id)
            evidence: dict[str, object] = {
                "interactions_deleted": deleted.deleted,
                "remaining_interactions": deleted.remaining,
            }
            if deleted.remaining == 0:  # nothing left: the subject is erased entirely (policy section 8)
                erased = repo.erase_subject(key, request_id, at=ctx.now)
                evidence["subject_erased"] = erased.found
                evidence |= {f"erasure_{k}": v for k, v in erased.evidence().items() if k != "found"}
            return EffectResult.done(**evidence)
        if kind is RightKind.OBJECTION:
            return _flag(repo.set_marketing_objection(key, request_id, objected=True))
        if kind is RightKind.RESTRICTION:
            return _flag(repo.set_restriction(key, request_id, restricted=True))
        if kind is RightKind.UNRESTRICTION:
            return _flag(repo.set_restriction(key, request_id, restricted=False))
        if kind is RightKind.RECTIFICATION:
            if command.sealed is None:
                raise EffectError("missing_values", "a rectification without sealed values", retryable=False)
            body = ctx.open(command.sealed, RectificationBody)
            rectified = repo.rectify(key, request_id, {str(k): v for k, v in body.changes.items()})
            if not rectified.found:
                return EffectResult.not_applicable(NOT_IN_CRM)
            return EffectResult.done(changed_fields=list(rectified.changed_fields))
        if kind is RightKind.CONSENT_WITHDRAWAL:
            withdrawn = repo.withdraw_consent(key, request_id, [p.value for p in command.purposes])
            if not withdrawn.found:
                return EffectResult.not_applicable(NOT_IN_CRM)
            return EffectResult.done(
                purposes_withdrawn=list(withdrawn.purposes_withdrawn), purposes_stopped=withdrawn.purposes_stopped
            )
        return EffectResult.not_applicable(f"no_crm_effect_for_{kind.value}")
