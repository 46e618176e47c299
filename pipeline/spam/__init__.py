"""The spam engine at the edge: a local rspamd + Redis launcher, its HTTP client, the classifier leadpipe owns.

Pure parts (``render``, ``classifier``) may be used anywhere; ``engine`` and ``launcher`` do I/O and belong to the
edges (agents, CLI, tests). The chain reads only their results, as input data (``pipeline.models.spam``).
"""
