"""Spam review (policy section 8: requests are filtered "at the server level, as well as by company employees
manually"): list quarantined events, look at one, release it or confirm it as spam. Decisions are events on
``contacts.review.decisions``; the worker's review agent (``pipeline.agents.review``) carries them out."""
