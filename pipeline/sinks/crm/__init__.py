"""The internal CRM as a sink: its write path (``writer``, ``rows``, ``pgcopy``) and the sink (``sink``). Sales read
it through ``pipeline.crm`` (the read model, its CLI and HTTP router)."""
