"""``leadpipe spam score|learn|rebuild`` and ``leadpipe spam engine up|down|status``.

``score`` and ``learn`` read files through the worker's own path: the channel's adapter (``parse_submission``,
as ingest runs it), the engine and the classifier (``SpamSignals.for_batch``, as the processing agent calls it) and
the chain (``run_chain``). An operator can test one message; an evaluation can run from outside on a whole corpus.
Files: .eml (or any file without a known extension, e.g. maildir entries), mbox, and the import formats (CSV,
JSON Lines, JSON arrays: pass ``--channel``); a directory is read recursively (maildir's cur/ and new/ included).
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import orjson
import typer

from pipeline.clikit import DATABASE, KAFKA, exits, needs
from pipeline.config import Settings, get_settings
from pipeline.crypto.sealing import KeyDestroyedError
from pipeline.identity.operator import operator, operator_command, without_operator
from pipeline.identity.permissions import Permission
from pipeline.importer import FORMATS, ImportRecord, is_mail, iter_records
from pipeline.ingest.service import Submission, UnsupportedContentType, parse_submission
from pipeline.kafka.consumer import read_to_end
from pipeline.kafka.producer import ConfirmingPublisher, Outgoing
from pipeline.kafka.raw import RawRecordReader
from pipeline.models.common import Channel
from pipeline.models.contact import ContactEvent
from pipeline.models.review import ReviewDecision
from pipeline.models.rights import AuditRecord
from pipeline.models.spam import ClassifierVerdict, EngineResult, EngineUnavailable
from pipeline.models.tagged import SpamVerdict
from pipeline.policy.model import load_policy
from pipeline.processors import ChainContext, Dropped, Failed, Passed, Quarantined, compile_policy, run_chain
from pipeline.processors.compiled import CompiledPolicy
from pipeline.runtime import Runtime
from pipeline.sources.base import Problem
from pipeline.spam.engine import Label
from pipeline.spam.launcher import CHART_ENGINE, LocalSpamEngine, SpamEngineLaunchError, rspamd_config
from pipeline.spam.render import email_of_payload
from pipeline.spam.signals import SpamSignals
from pipeline.topics import AUDIT_TOPIC, REVIEW_DECISIONS_TOPIC, raw_topic

engine_app = typer.Typer(help="The local spam engine (rspamd + Redis from Debian's packages).", no_args_is_help=True)
spam_app = typer.Typer(help="Spam filtering (policy section 8).", no_args_is_help=True)

#: Why the ``spam engine`` commands act for nobody (like ``leadpipe kafka up``).
LOCAL_ENGINE = "the local spam engine's processes and configuration files (like the local broker's)"

#: What ``score`` says and ``learn`` refuses with when the engine is switched off.
ENGINE_OFF = "the spam engine is off (LEADPIPE_SPAM_ENGINE_ENABLED=false)"

#: Source id of files read by ``spam score|learn``: the same file gives the same event ids (learning is idempotent).
SOURCE_ID = "spam-cli"
BATCH = 100

ChannelOption = Annotated[Channel, typer.Option(help="The channel the files come from (e-mail: .eml, mbox, maildir).")]
FormatOption = Annotated[
    str | None, typer.Option("--format", help=f"Override the format ({'|'.join(FORMATS)}); default: by extension.")
]


@dataclass(frozen=True)
class Item:
    """One message of a file: where it came from, its bytes as received and their content type."""

    name: str
    raw: bytes
    content_type: str
    skipped: str | None = None
    """Why the file is no message and is not scored (``not_a_message``: a corpus's ``cmds``, TREC's index)."""


def read_items(paths: Sequence[Path], fmt: str | None = None) -> Iterator[Item]:
    """Every message of the files and directories, in path order (a file of unknown extension is one e-mail), read
    one file at a time; a file that is no message is one item with ``skipped`` set."""
    for path in paths:
        if not path.exists():
            raise typer.BadParameter(f"{path} does not exist")
        records: Iterable[ImportRecord]
        if path.is_dir():
            records, several = iter_records(path, fmt, mail=True), True
        else:  # one file: whether it holds several messages names them
            records = listed = list(iter_records(path, fmt, mail=True))
            several = len(listed) > 1
        for record in records:
            file, _, where = record.where.rpartition(": ") if path.is_dir() else ("", "", record.where)
            name = f"{path}/{file}" if file else str(path)
            many = where != "file" and (bool(file) or several)
            yield Item(f"{name} ({where})" if many else name, record.raw, record.content_type, record.skipped)


def _batches(items: Iterator[Item], size: int = BATCH) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class Scored:
    """One message through the worker's path: its event and raw form, or why the adapter rejected it."""

    item: Item
    event: ContactEvent | None
    raw: bytes | None
    rejected: str | None = None
    verdict: SpamVerdict | None = None
    outcome: str = "rejected"
    engine: EngineResult | None = None
    classifier: ClassifierVerdict | None = None
    no_sender: bool = False
    """Mail without a sender (Enron-Spam's corpus has none): judged on its content, as the worker never will (it
    dead-letters it ``no_identity``: no contact to keep)."""


#: What a sender-less message is parsed with for ``spam score`` alone: the engine still gets the message as it is.
_NO_SENDER = b"From: no-sender@example.com\n"


class SpamPath:
    """Adapter, engine, classifier and chain, as the worker runs them, for files."""

    def __init__(self, settings: Settings, runtime: Runtime, policy: CompiledPolicy) -> None:
        self.settings = settings
        self.runtime = runtime
        self.policy = policy
        # Off (LEADPIPE_SPAM_ENGINE_ENABLED=false), as the worker runs without it: the policy's rules alone.
        self.signals = (
            SpamSignals.from_settings(settings, runtime.pepper, policy.policy.spam.classifier)
            if settings.spam_engine_enabled
            else None
        )

    def close(self) -> None:
        if self.signals is not None:
            self.signals.close()

    def parse(self, batch: Sequence[Item], channel: Channel) -> list[Scored]:
        out: list[Scored] = []
        now = datetime.now(UTC)
        for item in batch:
            if item.skipped is not None:
                why = f"{item.skipped}: it opens with no header field (a corpus's cmds or index, a README)"
                out.append(Scored(item, None, None, rejected=why, outcome="skipped"))
                continue
            try:
                parsed = parse_submission(
                    Submission(SOURCE_ID, channel, item.raw, item.content_type), self.runtime.pepper, now
                )
            except UnsupportedContentType as exc:
                out.append(Scored(item, None, None, rejected=f"unsupported_content_type: {exc}"))
                continue
            no_sender = False
            if (
                not parsed.accepted
                and channel is Channel.EMAIL
                and _only_no_sender(parsed.problems)
                and is_mail(item.raw[:4096])  # a message without a sender, not text without any header
            ):
                # a corpus without senders (Enron-Spam) still has content to judge: parsed with a stand-in sender
                again = parse_submission(
                    Submission(SOURCE_ID, channel, _NO_SENDER + item.raw, item.content_type), self.runtime.pepper, now
                )
                if again.accepted and again.ignored is None:
                    parsed, no_sender = again, True
            if not parsed.accepted:
                problem = parsed.problems[0]
                out.append(Scored(item, None, None, rejected=f"{problem.reason}: {problem.message}"))
                continue
            if parsed.ignored is not None:  # a receipt: nothing to score, and said so
                out.append(Scored(item, None, None, rejected=f"no_contact: {parsed.ignored}"))
                continue
            raws: list[bytes | None] = [None] * len(parsed.events)
            if channel is Channel.EMAIL:
                raws = [item.raw] * len(parsed.events)  # split_records gave one message per item
            out.extend(Scored(item, e, r, no_sender=no_sender) for e, r in zip(parsed.events, raws, strict=True))
        return out

    def score(self, batch: Sequence[Item], channel: Channel) -> list[Scored]:
        scored = self.parse(batch, channel)
        judged = [s for s in scored if s.event is not None]
        engine: dict[UUID, EngineResult] = {}
        classifier: dict[UUID, ClassifierVerdict] = {}
        if self.signals is not None:
            engine, classifier = self.signals.for_batch([(s.event, s.raw) for s in judged if s.event is not None])
        ctx = ChainContext(
            policy=self.policy, now=datetime.now(UTC), pepper=self.runtime.pepper, engine=engine, classifier=classifier
        )
        for each in judged:
            if each.event is None:
                continue
            each.engine = engine.get(each.event.event_id)
            each.classifier = classifier.get(each.event.event_id)
            outcome = run_chain(each.event, ctx).outcome
            each.outcome = "dead_letter" if each.no_sender else outcome.label  # what the worker would do with it
            if isinstance(outcome, Passed | Quarantined):
                each.verdict = outcome.tagged.tags.spam
            elif isinstance(outcome, Dropped):
                each.rejected = f"dropped: {outcome.reason.value}"
            elif isinstance(outcome, Failed):
                each.rejected = f"failed at {outcome.stage}: {outcome.reason}"
        return scored

    def learn(self, batch: Sequence[Item], channel: Channel, label: Label, pool: ThreadPoolExecutor) -> dict[str, int]:
        """Score (the engine's symbols are features the classifier learns), then teach both parts each message,
        as a reviewer's decision would: counts by part and status, and ``rejected`` for what the adapter refused."""
        counts: dict[str, int] = {}
        signals = self.signals
        if signals is None:  # the commands refuse before reading a file (_require_engine)
            raise RuntimeError(ENGINE_OFF)
        scored = self.score(batch, channel)
        counts["rejected"] = sum(1 for s in scored if s.event is None and s.outcome != "skipped")
        if skipped := sum(1 for s in scored if s.outcome == "skipped"):
            counts["skipped (not a message)"] = skipped
        learnable = [s for s in scored if s.event is not None]
        for outcomes in pool.map(lambda s: signals.learn(s.event, s.raw, label, s.engine), learnable):
            for part, outcome in zip(("engine", "classifier"), outcomes, strict=True):
                if outcome is not None:
                    key = f"{part} {outcome.status}"
                    counts[key] = counts.get(key, 0) + 1
        return counts


def _only_no_sender(problems: Sequence[Problem]) -> bool:
    """Whether a message was refused only for having no sender (nothing else is wrong with it)."""
    fatal = [p for p in problems if p.fatal]
    return bool(fatal) and all(p.reason == "no_identity" for p in fatal)


def score_line(scored: Scored) -> dict[str, Any]:
    """One JSON line: the verdict, score and threshold, every policy rule and engine symbol with its weight."""
    line: dict[str, Any] = {"file": scored.item.name}
    event = scored.event
    if event is not None:
        line.update(event_id=str(event.event_id), channel=event.channel.value)
    verdict = scored.verdict
    if verdict is None:
        skipped = scored.outcome == "skipped"
        line.update(verdict="rejected" if event is None and not skipped else scored.outcome, detail=scored.rejected)
        return line
    line.update(
        verdict="spam" if verdict.is_spam else "ham",
        outcome=scored.outcome,
        score=verdict.score,
        threshold=verdict.threshold,
        reasons=[{"code": r.code, "weight": r.weight, "detail": r.detail} for r in verdict.reasons],
        engine=verdict.engine.model_dump(mode="json") if verdict.engine is not None else None,
        classifier=verdict.classifier.model_dump(mode="json") if verdict.classifier is not None else None,
    )
    if scored.no_sender:
        line["note"] = "no sender: judged on its content; the worker would dead-letter it (no_identity)"
    return line


def _require_engine(settings: Settings) -> None:
    """Teaching needs the engine and the classifier's store: refused at once when the engine is switched off."""
    if not settings.spam_engine_enabled:
        raise typer.BadParameter(ENGINE_OFF + ": there is nothing to teach; set it to true and start the engine")


def _path(settings: Settings) -> SpamPath:
    return SpamPath(settings, Runtime(settings), compile_policy(load_policy(settings.policy_file)))


@dataclass
class ScoreSummary:
    """What ``spam score`` saw, counted: every item is a verdict, a rejection by reason, or a skipped file."""

    items: int = 0
    verdicts: collections.Counter[str] = field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    rejected: collections.Counter[str] = field(default_factory=collections.Counter)
    skipped: int = 0
    engine_unavailable: int = 0
    no_sender: int = 0

    def add(self, scored: Scored) -> None:
        self.items += 1
        self.no_sender += scored.no_sender and scored.verdict is not None
        if scored.outcome == "skipped":
            self.skipped += 1
        elif scored.verdict is not None:
            self.verdicts["spam" if scored.verdict.is_spam else "ham"] += 1
            self.outcomes[scored.outcome] += 1
        else:  # refused by the adapter, a receipt, or dropped or failed by the chain
            self.rejected[(scored.rejected or "unknown").partition(":")[0]] += 1
        if isinstance(scored.engine, EngineUnavailable):
            self.engine_unavailable += 1

    def lines(self) -> list[str]:
        judged = sum(self.verdicts.values())
        out = [
            f"{self.items} read = {judged} judged ({self.verdicts['spam']} spam, {self.verdicts['ham']} ham) "
            f"+ {sum(self.rejected.values())} not judged + {self.skipped} skipped (not a message)"
        ]
        if self.outcomes:
            out.append("  as the worker would: " + ", ".join(f"{k} {v}" for k, v in self.outcomes.most_common()))
        if self.no_sender:
            out.append(
                f"  of the judged, {self.no_sender} without a sender: judged on their content; the worker would "
                "dead-letter them (no_identity: no contact to keep)"
            )
        if self.rejected:
            out.append("  not judged: " + ", ".join(f"{k} {v}" for k, v in self.rejected.most_common()))
        if self.engine_unavailable:
            out.append(f"  the engine gave no verdict for {self.engine_unavailable} (spam_engine_unavailable)")
        return out


@operator_command(Permission.REVIEW_READ)
def score(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories (.eml, mbox, maildir, import formats).")],
    channel: ChannelOption = Channel.EMAIL,
    fmt: FormatOption = None,
    each: Annotated[
        bool | None,
        typer.Option(
            "--each/--summary",
            help="One JSON line per message on stdout (default when stdout is not a terminal), or the summary alone.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Score messages through the worker's path; one JSON line per message with the verdict and every signal.

    The counts (judged as spam or ham, what the worker would do, what was not judged and why, files that are no
    message) end the output on stderr; on a terminal they are all that is shown unless --each.

    Example: leadpipe spam score suspicious.eml ~/Maildir/cur

    Example: leadpipe spam score --summary spam-corpus/
    """
    settings = get_settings()
    spam = _path(settings)
    if spam.signals is None:
        typer.echo(f"{ENGINE_OFF}: the policy's rules alone score (as the worker does)", err=True)
    if each is None:
        each = not sys.stdout.isatty()
    summary = ScoreSummary()
    warned = False
    try:
        for batch in _batches(read_items(paths, fmt)):
            for scored in spam.score(batch, channel):
                summary.add(scored)
                if each:
                    typer.echo(orjson.dumps(score_line(scored)).decode())
                if not warned and isinstance(scored.engine, EngineUnavailable):
                    warned = True
                    typer.echo(
                        f"the spam engine at {settings.spam_engine_url} gave no verdict ({scored.engine.reason}): "
                        "such messages wait for review (spam_engine_unavailable); start it (leadpipe spam engine up) "
                        "or score with the policy's rules alone (LEADPIPE_SPAM_ENGINE_ENABLED=false)",
                        err=True,
                    )
            if not each and sys.stderr.isatty():
                typer.echo(f"\r{summary.items} scored", nl=False, err=True)
    finally:
        spam.close()
    if not each and sys.stderr.isatty():
        typer.echo("", err=True)
    for line in summary.lines():
        typer.echo(line, err=True)


@operator_command(Permission.REVIEW_DECIDE)
@needs(KAFKA)
@exits({1: "the engine or the classifier's store did not answer: some messages were not learned (run it again)"})
def learn(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories (.eml, mbox, maildir, import formats).")],
    spam_: Annotated[bool, typer.Option("--spam", help="The messages are spam.")] = False,
    ham: Annotated[bool, typer.Option("--ham", help="The messages are not spam.")] = False,
    channel: ChannelOption = Channel.EMAIL,
    fmt: FormatOption = None,
) -> None:
    """Teach the engine and the classifier from a mailbox export (bootstrap); idempotent per message; audited.

    Example: leadpipe spam learn --spam junk-2025.mbox
    """
    if spam_ == ham:
        raise typer.BadParameter("pass exactly one of --spam and --ham")
    label: Label = "spam" if spam_ else "ham"
    settings = get_settings()
    _require_engine(settings)
    path = _path(settings)
    counts: collections.Counter[str] = collections.Counter()
    try:
        with ThreadPoolExecutor(max(settings.spam_engine_concurrency // 2, 1)) as pool:
            for batch in _batches(read_items(paths, fmt)):
                counts.update(path.learn(batch, channel, label, pool))
    finally:
        path.close()
        _audit(
            settings,
            f"spam.learned_{label}",
            {
                "label": label,
                "channel": channel.value,
                "sources": sorted(p.name for p in paths),
                "messages": dict(counts),
            },
        )
    typer.echo(f"learned as {label}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if any(k.endswith("unavailable") for k in counts):
        raise typer.Exit(1)


@operator_command(Permission.REVIEW_DECIDE)
@needs(KAFKA, DATABASE)
@exits({1: "the engine or the classifier's store did not answer: some decisions were not learned (run it again)"})
def rebuild(
    clear: Annotated[
        bool, typer.Option(help="Forget the classifier's counts first (a new pepper, a corrupt store).")
    ] = False,
) -> None:
    """Teach every reviewer decision on contacts.review.decisions again (a lost Redis, a new engine); audited.

    Example: leadpipe spam rebuild --clear
    """
    settings = get_settings()
    _require_engine(settings)
    runtime = Runtime(settings)
    signals = SpamSignals.from_settings(settings, runtime.pepper)
    reader = RawRecordReader(settings, raw_topic(Channel.EMAIL))
    counts: dict[str, int] = {}
    try:
        if clear and signals.store is not None:
            signals.store.clear()
            signals.reload()
        for record in read_to_end(settings, [REVIEW_DECISIONS_TOPIC]):
            try:
                decision = ReviewDecision.model_validate_json(record.value or b"")
                event = runtime.codec.open_contact(decision.record)
            except KeyDestroyedError:
                counts["erased"] = counts.get("erased", 0) + 1
                continue
            except ValueError:
                counts["unreadable"] = counts.get("unreadable", 0) + 1
                continue
            raw = None
            if event.channel is Channel.EMAIL:
                found = reader.find(record.partition, {event.event_id: event.received_at})
                if event.event_id in found:
                    raw_record = found[event.event_id]
                    raw = email_of_payload(runtime.codec.sealer.open(raw_record.sealed), raw_record)
            label: Label = "ham" if decision.decision == "release" else "spam"
            outcomes = signals.learn(event, raw, label, decision.record.tags.spam.engine)
            for part, outcome in zip(("engine", "classifier"), outcomes, strict=True):
                if outcome is not None:
                    key = f"{part} {outcome.status}"
                    counts[key] = counts.get(key, 0) + 1
    finally:
        reader.close()
        signals.close()
        _audit(settings, "spam.rebuilt", {"cleared": clear, "decisions": counts})
    typer.echo(
        "rebuilt from the review decisions: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
    )
    if any(k.endswith("unavailable") for k in counts):
        raise typer.Exit(1)


def _audit(settings: Settings, action: str, detail: dict[str, Any]) -> None:
    """Teaching the filter is a person's action: its audit record names them, what they taught and how much (counts
    and file names only: never message content)."""
    by = operator()
    publisher = ConfirmingPublisher(settings)
    try:
        publisher.publish([Outgoing(AUDIT_TOPIC, None, AuditRecord.new(by.actor, action, principal=by, detail=detail))])
    finally:
        publisher.close()


@engine_app.command("up")
@without_operator(LOCAL_ENGINE)
@exits({1: "rspamd or Redis could not start (the message says why)"})
def engine_up() -> None:
    """Start rspamd and its Redis (or adopt the running ones) on the ports of LEADPIPE_SPAM_ENGINE_*.

    Example: leadpipe spam engine up
    """
    try:
        status = LocalSpamEngine.from_settings(get_settings()).up()
    except SpamEngineLaunchError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(str(status))


@engine_app.command("down")
@without_operator(LOCAL_ENGINE)
def engine_down() -> None:
    """Stop rspamd and Redis (the learned statistics stay on disk).

    Example: leadpipe spam engine down
    """
    stopped = LocalSpamEngine.from_settings(get_settings()).down()
    typer.echo("stopped" if stopped else "was not running")


@engine_app.command("config")
@without_operator(LOCAL_ENGINE)
def engine_config(
    out: Annotated[Path, typer.Argument(help="Directory to write local.d/ and override.d/ into.")],
    chart: Annotated[
        bool, typer.Option(help="The Helm chart's engine (all interfaces, Redis in the same pod) instead of ours.")
    ] = False,
) -> None:
    """Write the engine's offline rspamd configuration (`--chart`: the Helm chart's).

    Example: leadpipe spam engine config --chart deploy/helm/leadpipe/files/rspamd
    """
    settings = get_settings()
    if chart:
        files = rspamd_config(*CHART_ENGINE)
    else:
        engine = LocalSpamEngine.from_settings(settings)
        files = rspamd_config(
            "127.0.0.1", engine.port, engine.controller_port, f"127.0.0.1:{engine.redis_port}", sa_rules=engine.sa_rules
        )
    for name, text in files.items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    typer.echo(f"{len(files)} files written under {out}")


@engine_app.command("status")
@without_operator(LOCAL_ENGINE)
@exits({1: "the engine is not running"})
def engine_status() -> None:
    """Whether the engine runs, where, and how many messages its Bayes learned.

    Example: leadpipe spam engine status
    """
    settings = get_settings()
    status = LocalSpamEngine.from_settings(settings).status()
    typer.echo(str(status))
    if not status.running:
        raise typer.Exit(1)


spam_app.command("score")(score)
spam_app.command("learn")(learn)
spam_app.command("rebuild")(rebuild)
spam_app.add_typer(engine_app, name="engine")

__all__ = ["SpamPath", "engine_app", "learn", "read_items", "rebuild", "score", "score_line", "spam_app"]
