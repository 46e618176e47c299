"""Dead letters for the operator: list, show, replay (``leadpipe dlq``)."""
