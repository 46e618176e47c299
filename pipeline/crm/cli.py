"""``leadpipe crm search|show`` for sales (``crm:read``).

These print personal data (that is their job): they read the CRM the sales team is entitled to, and nothing they
print is logged. A restricted subject (policy 9.4) is shown as its key and status only: its data is kept, not
processed further; only an operator with ``crm:read_restricted`` (the DPO) sees it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.clikit import DATABASE, exits, needs
from pipeline.config import get_settings
from pipeline.crm.read import CrmReadModel
from pipeline.crm.views import SubjectSummary
from pipeline.db import disposing_engine, ensure_schema
from pipeline.identity.operator import operator, operator_command
from pipeline.identity.permissions import Permission, allowed
from pipeline.normalize import VISITOR_KEY_PREFIX

crm_app = typer.Typer(help="Find contacts in the internal CRM (sales).", no_args_is_help=True)

EXIT_NOT_FOUND = 2


@contextmanager
def _read_model() -> Iterator[CrmReadModel]:
    settings = get_settings()
    url = settings.resolved_database_url
    if url.startswith("sqlite:///"):
        settings.home.mkdir(parents=True, exist_ok=True)
    with disposing_engine(url) as engine:
        ensure_schema(engine)
        yield CrmReadModel(engine)


def resolve_subject(read: CrmReadModel, ref: str) -> str | None:
    """A subject key from a subject key (``sk_...``, or an anonymous website visitor's ``vk_...``), an e-mail address
    or a phone number."""
    ref = ref.strip()
    if ref.startswith(("sk_", VISITOR_KEY_PREFIX)):
        return ref
    if "@" in ref:
        return read.subject_key_for(email=ref)
    return read.subject_key_for(phone=ref)


def _summary_table(hits: list[SubjectSummary]) -> Table:
    table = Table("subject key", "name", "e-mail", "phone", "company", "interactions", "last seen", "status")
    for hit in hits:
        name = " ".join(p for p in (hit.first_name, hit.last_name) if p) or "-"
        status = hit.status + (", objected to marketing" if hit.marketing_objected else "")
        status += ", data withheld (policy 9.4)" if hit.withheld else ""
        last = hit.last_seen_at.strftime("%Y-%m-%d") if hit.last_seen_at else "-"
        table.add_row(
            hit.subject_key,
            name,
            hit.email or "-",
            hit.phone or "-",
            hit.company or "-",
            str(hit.interactions),
            last,
            status,
        )
    return table


@crm_app.command("search")
@operator_command(Permission.CRM_READ)
@needs(DATABASE)
@exits({EXIT_NOT_FOUND: "no contact matches (also a usage error)"})
def search(
    email: Annotated[str | None, typer.Option("--email", help="Exact e-mail (case-insensitive)")] = None,
    phone: Annotated[str | None, typer.Option("--phone", help="Exact phone number, E.164")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Part of the first or last name")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document per line")] = False,
) -> None:
    """Contacts matching every given criterion.

    Example: leadpipe crm search --name garcia

    Example: leadpipe crm search --email ana@example.com --json
    """
    if not (email or phone or name):
        raise typer.BadParameter("give --email, --phone or --name")
    full = allowed(operator(), Permission.CRM_READ_RESTRICTED)
    with _read_model() as read:
        found = read.search(email=email, phone=phone, name=name, limit=limit)
        hits = found if full else [hit.for_sales() for hit in found]
    if as_json:
        for hit in hits:
            sys.stdout.write(hit.model_dump_json() + "\n")
    else:
        console = Console() if sys.stdout.isatty() else Console(width=240)  # piped: do not squeeze to 80 columns
        console.print(_summary_table(hits) if hits else "no contact found")
    if not hits:
        raise typer.Exit(EXIT_NOT_FOUND)


@crm_app.command("show")
@operator_command(Permission.CRM_READ)
@needs(DATABASE)
@exits({EXIT_NOT_FOUND: "no such contact (also a usage error)"})
def show(
    ref: Annotated[str, typer.Argument(help="Subject key (sk_... or vk_...), e-mail address or phone number")],
) -> None:
    """Everything about one contact: profile, status, identities, interactions with legal basis, consents (JSON).

    Example: leadpipe crm show ana@example.com
    """
    with _read_model() as read:
        key = resolve_subject(read, ref)
        view = read.show(key) if key else None
    if view is None:
        typer.echo("no contact found", err=True)
        raise typer.Exit(EXIT_NOT_FOUND)
    shown = view if allowed(operator(), Permission.CRM_READ_RESTRICTED) else view.for_sales()
    sys.stdout.write(shown.model_dump_json(indent=2) + "\n")
