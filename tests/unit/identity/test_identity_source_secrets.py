"""Two HMAC secrets active at once per source, checked with the ingest API's own signature function."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from starlette.datastructures import Headers

from pipeline.config import SourceAuth
from pipeline.identity.source_secrets import active_secrets, check_any
from pipeline.ingest import signatures
from pipeline.ingest.api import sign

NOW = datetime(2026, 6, 1, tzinfo=UTC)
BODY = b"your-email=ana%40example.com"


def auth(**kw: object) -> SourceAuth:
    return SourceAuth.model_validate({"channel": "web_form", **kw})


def checker(headers: dict[str, str]):  # type: ignore[no-untyped-def]
    given = Headers(headers)
    return lambda secret: signatures.problem("leadpipe", secret, BODY, given.get, tolerance_s=300, now=time.time())


def test_old_and_new_secret_both_verify_during_the_overlap() -> None:
    source = auth(
        hmac_secrets=[
            {"id": "2026-06", "secret": "new-secret"},
            {"id": "2026-01", "secret": "old-secret", "not_after": (NOW + timedelta(days=7)).isoformat()},
        ]
    )
    active = active_secrets(source, NOW)
    assert [s.id for s in active] == ["2026-06", "2026-01"]
    assert "new-secret" not in repr(active)
    assert check_any(active, checker(sign("new-secret", BODY))).matched == "2026-06"
    assert check_any(active, checker(sign("old-secret", BODY))).matched == "2026-01"
    refused = check_any(active, checker(sign("guess", BODY)))
    assert refused.matched is None and refused.problem == "bad_signature"


def test_the_old_secret_ends_at_not_after() -> None:
    source = auth(
        hmac_secrets=[{"id": "old", "secret": "old-secret", "not_after": NOW.isoformat()}], hmac_secret="current"
    )
    assert [s.id for s in active_secrets(source, NOW)] == ["old", "hmac_secret"]
    later = active_secrets(source, NOW + timedelta(seconds=1))
    assert [s.id for s in later] == ["hmac_secret"]
    assert check_any(later, checker(sign("old-secret", BODY))).problem == "bad_signature"
    assert check_any([], checker(sign("x", BODY))).problem == "no_active_secret"


def test_a_stale_timestamp_is_reported_as_such() -> None:
    active = active_secrets(auth(hmac_secret="current"), NOW)
    old = sign("current", BODY, timestamp=int(time.time()) - 3600)
    assert check_any(active, checker(old)).problem == "stale_timestamp"


def test_at_most_two_secrets_with_distinct_ids() -> None:
    with pytest.raises(ValidationError, match="at most two"):
        auth(hmac_secret="a", hmac_secrets=[{"id": "x", "secret": "b"}, {"id": "y", "secret": "c"}])
    with pytest.raises(ValidationError, match="must differ"):
        auth(hmac_secrets=[{"id": "x", "secret": "b"}, {"id": "x", "secret": "c"}])
