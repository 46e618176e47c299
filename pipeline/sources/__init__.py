"""Source adapters, one per channel of the policy: pure ``parse(raw, ctx) -> list[ContactEvent]``.

``ADAPTERS`` maps each channel to its adapter; ``CONTENT_TYPES`` to the media types it reads. The ingest API,
the importer and the SDK all go through ``pipeline.ingest.service.IngestService``, which uses this table.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.models.common import Channel
from pipeline.models.contact import ContactEvent
from pipeline.sources import chatbot, customer, email, event, messenger, web_form, website
from pipeline.sources.base import MALFORMED_REASONS, NothingToTake, Problem, SourceContext, SourceError

Adapter = Callable[[bytes, SourceContext], list[ContactEvent]]

ADAPTERS: dict[Channel, Adapter] = {
    Channel.WEBSITE: website.parse,
    Channel.WEB_FORM: web_form.parse,
    Channel.CHATBOT: chatbot.parse,
    Channel.EMAIL: email.parse,
    Channel.MESSENGER: messenger.parse,
    Channel.EVENT: event.parse,
    Channel.CUSTOMER: customer.parse,
}

CONTENT_TYPES: dict[Channel, frozenset[str]] = {
    Channel.WEBSITE: website.CONTENT_TYPES,
    Channel.WEB_FORM: web_form.CONTENT_TYPES,
    Channel.CHATBOT: chatbot.CONTENT_TYPES,
    Channel.EMAIL: email.CONTENT_TYPES,
    Channel.MESSENGER: messenger.CONTENT_TYPES,
    Channel.EVENT: event.CONTENT_TYPES,
    Channel.CUSTOMER: customer.CONTENT_TYPES,
}


def parse(channel: Channel, raw: bytes, ctx: SourceContext) -> list[ContactEvent]:
    """The channel's adapter applied to a payload."""
    return ADAPTERS[channel](raw, ctx)


__all__ = [
    "ADAPTERS",
    "CONTENT_TYPES",
    "MALFORMED_REASONS",
    "Adapter",
    "NothingToTake",
    "Problem",
    "SourceContext",
    "SourceError",
    "parse",
]
