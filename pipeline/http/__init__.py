"""What every HTTP router of leadpipe shares: the app factory, authentication, request dependencies, error shapes.

Ingest, CRM reads, spam review and the DPO's API hang their routers on ``create_app`` (``pipeline.api`` composes
them); none of them imports another area to get this plumbing.
"""
