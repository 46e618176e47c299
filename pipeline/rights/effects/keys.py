"""Erasure inside Kafka: destroy the subject's data keys (crypto-shredding).

Kafka logs are immutable and copied into backups; every personal field on every topic is sealed with the subject's
key, so destroying the key erases every copy at once. A later submission is a new collection under a new key
generation (``SqlKeyStore.active_key`` creates one), and the old records stay unreadable.

A corrected e-mail address destroys the OLD key's data keys the same way: every sealed copy made under it holds the
old address, and no ciphertext can be rewritten, so destroying the key is the only way it leaves the logs and their
backups. The person's history lives on in the CRM and HubSpot under the new key. It runs after every other sink
confirmed: until then the request's own sealed details (the new address) are needed, and they are under that key.
"""

from __future__ import annotations

from pipeline.crypto.keystore import KeyStore
from pipeline.crypto.sealing import subject_scope
from pipeline.models.rights import RightKind, SinkStatus
from pipeline.rights.effects.base import Context, Effect, EffectResult
from pipeline.rights.plan import rekeys


class KeyShredding(Effect):
    sink = "kafka"

    def __init__(self, keystore: KeyStore) -> None:
        self._keys = keystore

    def apply(self, ctx: Context) -> EffectResult:
        command = ctx.command
        if command.kind is RightKind.RETENTION_EXPIRY and not ctx.erase_subject:
            return EffectResult.not_applicable("interactions_remain")
        if rekeys(command):
            waiting = ctx.unfinished()
            if waiting:  # the retry timer runs the request again; this step follows once the others confirmed
                return EffectResult(SinkStatus.PENDING, {"waiting_for": waiting})
            destroyed = self._keys.destroy(subject_scope(command.subject_key), f"rekeyed:{command.request_id}")
            return EffectResult.done(keys_destroyed=destroyed, scope="subject (the corrected address's key)")
        destroyed = self._keys.destroy(subject_scope(command.subject_key), f"{command.kind.value}:{command.request_id}")
        return EffectResult.done(keys_destroyed=destroyed, scope="subject")
