"""``python -m pipeline`` is the ``leadpipe`` command (used when the console script is not on PATH)."""

from pipeline.cli import main

main()
