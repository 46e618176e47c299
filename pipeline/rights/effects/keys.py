"""Erasure inside Kafka: destroy the subject's data keys (crypto-shredding).

Kafka logs are immutable and copied into backups; every personal field on every topic is sealed with the subject's
key, so destroying the key erases every copy at once. A later submission is a new collection under a new key
generation (``SqlKeyStore.active_key`` creates one), and the old records stay unreadable.
"""

from __future__ import annotations

from pipeline.crypto.keystore import KeyStore
from pipeline.crypto.sealing import subject_scope
from pipeline.models.rights import RightKind
from pipeline.rights.effects.base import Context, Effect, EffectResult


class KeyShredding(Effect):
    sink = "kafka"

    def __init__(self, keystore: KeyStore) -> None:
        self._keys = keystore

    def apply(self, ctx: Context) -> EffectResult:
        command = ctx.command
        if command.kind is RightKind.RETENTION_EXPIRY and not ctx.erase_subject:
            return EffectResult.not_applicable("interactions_remain")
        destroyed = self._keys.destroy(subject_scope(command.subject_key), f"{command.kind.value}:{command.request_id}")
        return EffectResult.done(keys_destroyed=destroyed, scope="subject")
