"""The way in: the one ingest service (adapter -> normalise -> seal -> publish) and its HTTP router for sources."""
