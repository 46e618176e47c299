"""``leadpipe dpo <request>``: every request command takes the same identity and waiting options and hands the right
kind and its own fields to the one submit path (no broker: ``_submit`` is recorded), run by its operator: here, on
the embedded default without a key, the bootstrapped admin (recorded with ``auth: local``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipeline.config import get_settings
from pipeline.identity.operator import operator
from pipeline.models.common import Purpose
from pipeline.models.rights import RightKind
from pipeline.rights import cli

COMMON = ["--phone", "+4721929300", "--region", "NO", "--wait", "--timeout", "5"]


@pytest.fixture
def submitted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[tuple[Any, ...]]]:
    monkeypatch.setenv("LEADPIPE_HOME", str(tmp_path))
    monkeypatch.setenv("LEADPIPE_ENVIRONMENT", "development")
    monkeypatch.delenv("LEADPIPE_DATABASE_URL", raising=False)
    monkeypatch.delenv("LEADPIPE_API_KEY", raising=False)
    get_settings.cache_clear()
    calls: list[tuple[Any, ...]] = []

    def record(kind: RightKind, wait: bool, timeout: float, **kw: Any) -> None:
        by = operator()
        calls.append((kind, wait, timeout, kw))
        assert (by.display_name, by.auth) == ("Administrator", "local")

    monkeypatch.setattr(cli, "_submit", record)
    yield calls
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("command", "own", "kind", "extra"),
    [
        ("erase", ["--yes"], RightKind.ERASURE, {"visitor_id": None}),
        ("object", [], RightKind.OBJECTION, {}),
        ("restrict", [], RightKind.RESTRICTION, {}),
        ("unrestrict", [], RightKind.UNRESTRICTION, {}),
        (
            "rectify",
            ["--set", "last_name=Berg", "--clear", "position"],
            RightKind.RECTIFICATION,
            {"rectify": {"last_name": "Berg", "position": None}, "old_address": None},
        ),
        (
            "withdraw-consent",
            ["--purpose", "further_contact"],
            RightKind.CONSENT_WITHDRAWAL,
            {"purposes": (Purpose.FURTHER_CONTACT,)},
        ),
        ("export", [], RightKind.PORTABILITY, {}),
        ("access", [], RightKind.ACCESS, {}),
    ],
)
def test_each_request_command_submits_its_kind_with_the_common_options(
    submitted: list[Any], command: str, own: list[str], kind: RightKind, extra: dict[str, Any]
) -> None:
    result = CliRunner().invoke(cli.dpo_app, [command, *own, *COMMON])
    assert result.exit_code == 0, result.output
    options = {"email": None, "phone": "+4721929300", "region": "NO", "subject_key": None}
    assert submitted == [(kind, True, 5.0, {**options, **extra})]


def test_defaults_and_the_erasure_confirmation(submitted: list[Any]) -> None:
    refused = CliRunner().invoke(cli.dpo_app, ["erase", "--email", "a@example.com"], input="n\n")
    assert refused.exit_code != 0 and submitted == []
    result = CliRunner().invoke(cli.dpo_app, ["object", "--email", "a@example.com"])
    assert result.exit_code == 0, result.output
    options = {"email": "a@example.com", "phone": None, "region": None, "subject_key": None}
    assert submitted == [(RightKind.OBJECTION, False, 60.0, options)]


def test_a_malformed_rectification_is_refused_before_anything_is_submitted(submitted: list[Any]) -> None:
    result = CliRunner().invoke(cli.dpo_app, ["rectify", "--email", "a@example.com", "--set", "no-equals-sign"])
    assert result.exit_code == 2 and "field=value" in result.output and submitted == []


def test_the_bootstrapped_admin_s_key_is_written_once_to_a_private_file(submitted: list[Any], tmp_path: Path) -> None:
    assert CliRunner().invoke(cli.dpo_app, ["object", "--email", "a@example.com"]).exit_code == 0
    key_file = tmp_path / "secrets" / "bootstrap-admin-key"
    assert key_file.read_text().startswith("lpk_") and key_file.stat().st_mode & 0o777 == 0o600


def test_a_website_visitor_is_erased_by_its_cookie_id(submitted: list[Any]) -> None:
    result = CliRunner().invoke(cli.dpo_app, ["erase", "--visitor-id", "ajs-123", "--yes"])
    assert result.exit_code == 0, result.output
    [(kind, _, _, options)] = submitted
    assert kind is RightKind.ERASURE and options["visitor_id"] == "ajs-123" and options["email"] is None


def test_the_other_subjects_with_the_person_s_phone_are_named_after_the_request(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from contextlib import contextmanager
    from types import SimpleNamespace

    from pipeline.rights.dpo import Submitted

    monkeypatch.setenv("LEADPIPE_HOME", str(tmp_path))
    monkeypatch.setenv("LEADPIPE_ENVIRONMENT", "development")
    monkeypatch.delenv("LEADPIPE_DATABASE_URL", raising=False)
    monkeypatch.delenv("LEADPIPE_API_KEY", raising=False)
    get_settings.cache_clear()
    command = SimpleNamespace(request_id="r-1", subject_key="sk_ana", due_at=datetime(2027, 1, 6, tzinfo=UTC))

    class Tools:
        def request(self, kind: RightKind, **kw: Any) -> Submitted:
            return Submitted(command, related=("sk_called",))  # type: ignore[arg-type]

    @contextmanager
    def tools() -> Iterator[Tools]:
        yield Tools()

    monkeypatch.setattr(cli, "_tools", tools)
    result = CliRunner().invoke(cli.dpo_app, ["object", "--email", "ana@example.com"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "request r-1 (objection) for subject sk_ana published" in result.output
    assert "1 other subject(s) with a phone number of this person's (sk_called)" in result.output
    assert "ana@example.com" not in result.output


def _with_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, answer: Callable[..., Any]) -> None:
    """``leadpipe dpo`` over stand-in tools whose ``request`` is ``answer`` (no broker, no database)."""
    from contextlib import contextmanager

    monkeypatch.setenv("LEADPIPE_HOME", str(tmp_path))
    monkeypatch.setenv("LEADPIPE_ENVIRONMENT", "development")
    monkeypatch.delenv("LEADPIPE_DATABASE_URL", raising=False)
    monkeypatch.delenv("LEADPIPE_API_KEY", raising=False)
    get_settings.cache_clear()

    class Tools:
        def request(self, kind: RightKind, **kw: Any) -> Any:
            return answer(kind, **kw)

        def wait(self, request_id: str, timeout: float) -> None:
            return None  # nothing confirms: no worker runs

    @contextmanager
    def tools() -> Iterator[Tools]:
        yield Tools()

    monkeypatch.setattr(cli, "_tools", tools)


def test_a_request_issued_for_the_subject_holding_the_number_says_so_by_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from pipeline.rights.dpo import Submitted

    command = SimpleNamespace(request_id="r-1", subject_key="sk_dmitry", due_at=datetime(2027, 1, 6, tzinfo=UTC))
    seen: list[dict[str, Any]] = []

    def answer(kind: RightKind, **kw: Any) -> Submitted:
        seen.append(kw)
        return Submitted(command, named_key="sk_number", found_by="identity", in_crm=True)  # type: ignore[arg-type]

    _with_tools(monkeypatch, tmp_path, answer)
    phone = ["--phone", "8 916 123-45-67", "--region", "RU"]
    result = CliRunner().invoke(cli.dpo_app, ["object", *phone, "--subject-key", "sk_dmitry"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert seen[0]["subject_key"] == "sk_dmitry"
    assert "nobody under the key of what was named (sk_number)" in result.output
    assert "the one subject holding it is sk_dmitry" in result.output
    assert "916" not in result.output


def test_a_person_the_crm_does_not_hold_is_noted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from pipeline.rights.dpo import Submitted

    command = SimpleNamespace(request_id="r-1", subject_key="sk_nobody", due_at=datetime(2027, 1, 6, tzinfo=UTC))
    _with_tools(monkeypatch, tmp_path, lambda kind, **kw: Submitted(command, named_key="sk_nobody", in_crm=False))  # type: ignore[arg-type]
    result = CliRunner().invoke(cli.dpo_app, ["access", "--email", "nobody@example.com"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "the CRM holds nobody under sk_nobody" in result.output and "HubSpot is still searched" in result.output
    assert "nobody@example.com" not in result.output


@pytest.mark.parametrize(
    ("refusal", "hint", "says"),
    [
        ("ambiguous", "--phone", "2 subjects in the CRM hold this phone number and none is keyed by it (sk_a, sk_b)"),
        ("clear_email", "--set/--clear", "email: an e-mail address cannot be cleared, only corrected"),
        ("region", "--region", "region: not a country"),
    ],
)
def test_refusals_are_exit_2_and_clear(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, refusal: str, hint: str, says: str
) -> None:
    from pipeline.rights.commands import AmbiguousSubject, corrected, named

    def answer(kind: RightKind, **kw: Any) -> Any:
        if refusal == "ambiguous":
            raise AmbiguousSubject("phone", ["sk_a", "sk_b"])
        if refusal == "region":
            named(phone=kw["phone"], region=kw["region"])
        corrected(kw["rectify"])  # as DpoTools.request checks the corrections

    _with_tools(monkeypatch, tmp_path, answer)
    args = {
        "ambiguous": ["erase", "--phone", "+4930123456", "--yes"],
        "clear_email": ["rectify", "--email", "ana@example.com", "--clear", "email"],
        "region": ["access", "--phone", "912 345 678", "--region", "Spain-ish"],
    }[refusal]
    result = CliRunner().invoke(cli.dpo_app, args)
    get_settings.cache_clear()
    text = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2, result.output
    assert says in text and hint in text
    assert "pydantic" not in text and "input_value" not in text and "ana@example.com" not in text


def test_a_wait_that_runs_out_says_the_request_stands_and_what_carries_it_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``--wait`` that ran out printed nothing (or "timed out"): the DPO could not tell a stopped worker from a slow
    one, nor that the request was recorded."""
    from types import SimpleNamespace

    from pipeline.rights.dpo import Submitted

    command = SimpleNamespace(request_id="r-9", subject_key="sk_ana", due_at=datetime(2027, 1, 6, tzinfo=UTC))
    _with_tools(monkeypatch, tmp_path, lambda kind, **kw: Submitted(command))  # type: ignore[arg-type]
    result = CliRunner().invoke(cli.dpo_app, ["object", "--email", "ana@example.com", "--wait", "--timeout", "1"])
    get_settings.cache_clear()
    assert result.exit_code == 4, result.output
    assert "is `leadpipe worker` running?" in result.output and "leadpipe dpo show r-9" in result.output
