"""The console: the browser pages of sales, spam reviewers and the DPO, served by ``leadpipe serve`` at ``/``.

Server-rendered (Jinja2) over the same services as the API and the CLI (``pipeline.crm.read``,
``pipeline.review.service``, ``pipeline.rights.dpo``), signed in with the identity provider's browser session
(``pipeline.identity``), with htmx vendored from the npm registry (``scripts/vendor-console-assets.sh``).
"""
