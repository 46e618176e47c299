"""The internal CRM as a sink: its write path (``writer``, ``rows``, ``pgcopy``), the sink, and sales' CLI and
read-only HTTP router over the read model (``pipeline.crm``)."""
