"""The faust worker: its app (``app``), its agents, and which of them run (``worker``)."""
