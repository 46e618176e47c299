"""The internal CRM's database as every part reads it: its tables (``schema``), the read model (``read``, ``views``)
and sales' way in over it: ``leadpipe crm`` (``cli``) and the read-only HTTP router (``api``).

Who writes it lives elsewhere: accepted events through the sink's write path (``pipeline.sinks.crm.writer``), each
data-subject right through its effect (``pipeline.rights.effects.crm``).
"""
