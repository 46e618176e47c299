"""The processing policy: ``policy.yaml`` (the data), ``model`` (its validating loader, base layer) and ``cli``
(``leadpipe policy check``, an entry point). Nothing here but the package: the two halves sit in different layers."""
