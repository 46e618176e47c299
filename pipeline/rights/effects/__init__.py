"""What a rights request does in each place personal data lives: one ``Effect`` per sink.

Every effect is idempotent (a command may be redelivered, a failed sink is tried again) and answers with evidence
(counts, HubSpot correlation ids and status codes) that ends up on ``rights.status`` and in the tracker.
"""

from pipeline.rights.effects.base import Context, Effect, EffectError, EffectResult, Handover

__all__ = ["Context", "Effect", "EffectError", "EffectResult", "Handover"]
