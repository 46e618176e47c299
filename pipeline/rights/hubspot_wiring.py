"""HubSpot's part of the rights machinery: the effect and the export reader over the sinks' gateway.

With an access token that is the real ``HubSpotGateway`` (one rate budget per process, shared with the sink);
without one it is the dry run, like the sink. The gateway is built lazily, once per worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pipeline.policy.model import load_policy
from pipeline.rights.effects.base import Context, Effect, EffectResult
from pipeline.rights.effects.export import ContactReader
from pipeline.rights.effects.hubspot import ExportReader, HubSpotEffect
from pipeline.runtime import Runtime
from pipeline.sinks.hubspot.sink import make_gateway


class LazyHubSpot(Effect):
    """Builds the gateway on first use and makes sure leadpipe's custom properties exist before writing them."""

    sink = "hubspot"

    def __init__(
        self, factory: Callable[[], Any], consent_subscriptions: tuple[str, ...], direct_marketing: frozenset[str]
    ) -> None:
        self._factory = factory
        self._consent = consent_subscriptions
        self._direct_marketing = direct_marketing
        self._lock = threading.Lock()
        self._gateway: Any = None
        self._effect: HubSpotEffect | None = None
        self._properties_ready = False

    def gateway(self) -> Any:
        with self._lock:
            if self._gateway is None:
                self._gateway = self._factory()
                self._effect = HubSpotEffect(self._gateway, self._consent, self._direct_marketing)
            return self._gateway

    def apply(self, ctx: Context) -> EffectResult:
        gateway = self.gateway()
        if not self._properties_ready:
            gateway.ensure_properties()  # restriction writes leadpipe_processing_restricted
            self._properties_ready = True
        assert self._effect is not None
        return self._effect.apply(ctx)

    def reader(self) -> ContactReader | None:
        return ExportReader(self.gateway())

    def close(self) -> None:
        if self._gateway is not None:
            self._gateway.close()


def hubspot_parts(runtime: Runtime) -> tuple[LazyHubSpot, Callable[[], ContactReader | None]]:
    """(effect, export reader factory) over the gateway the settings select (real or dry run)."""
    settings = runtime.settings
    policy = load_policy(settings.policy_file)
    direct_marketing = frozenset(p.value for p, rule in policy.purposes.items() if rule.direct_marketing)
    effect = LazyHubSpot(
        lambda: make_gateway(settings), settings.rights_hubspot_consent_subscriptions, direct_marketing
    )
    return effect, effect.reader
