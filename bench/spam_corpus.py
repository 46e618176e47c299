"""The spam filter on a labelled corpus of real e-mail kept outside the project, through ``leadpipe spam``'s path.

Usage: ``.venv/bin/python bench/spam_corpus.py --index CORPUS/full/index [--sa-rules] [--newer-ham N]
[--newer-spam N] [--learn N] [--prior N] [--policy FILE] [--dump FILE]``

The index is TREC's spam-track format (one ``spam|ham PATH`` line per message, in delivery order; paths relative to
the index). Time split: the first ``--older-fraction`` of the messages is the past, the rest the future. On an
evenly spaced sample of the future (``--newer-ham``, ``--newer-spam``), through the adapter, the engine, the
classifier and the chain exactly as ``leadpipe spam score`` runs them (``SpamPath``):

- cold start: an empty engine Bayes and an empty classifier's store; the classifier starts from the shipped prior
  when the policy enables it (``spam.classifier.prior``; it was learned from the older 60 % of TREC 2007, so score
  the newer part of that corpus only); ``--prior N``: the store first learns N older messages of each kind from
  before the learning window;
- after learning the most recent ``--learn`` older messages of each kind as reviewer decisions would
  (``SpamPath.learn``, what ``leadpipe spam learn`` does): both parts.

For each: spam caught at the best cut that flags <= 0.5 % of ham (chosen on the sample itself: an upper bound), and
what the packaged verdict does (score >= the channel's threshold): spam caught and ham flagged. ``--dump`` writes
one JSON line per scored message (label, phase, engine and classifier verdicts, reasons) for calibrating other
weights without scoring again (``--rescore DUMP --policy FILE``: each phase whole and its older and newer half, to
choose on one and check on the other). Prints load averages. Never point it at
SpamAssassin's public corpus: that one is reserved for acceptance.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _spam_devset import build_devset
from spam_eval import at_threshold, caught_at_cut

from pipeline.agents.app import policy_for
from pipeline.config import explicit_settings, get_settings
from pipeline.kafka.launcher import free_port
from pipeline.models.common import Channel
from pipeline.models.contact import ContactEvent
from pipeline.models.spam import ClassifierVerdict, EngineVerdict
from pipeline.policy.model import load_policy
from pipeline.processors import ChainContext, compile_policy, run_chain
from pipeline.processors.chain import Passed, Quarantined
from pipeline.runtime import Runtime
from pipeline.spam.cli import Item, SpamPath
from pipeline.spam.launcher import LocalSpamEngine, _service_root
from pipeline.spam.prior import read_trec_index

PEPPER = "bench-corpus-pepper"


def evenly(items: list[tuple[str, Path]], count: int) -> list[tuple[str, Path]]:
    if count >= len(items):
        return items
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def item_of(path: Path) -> Item:
    return Item(str(path), path.read_bytes(), "message/rfc822")


def score_sample(
    path: SpamPath, sample: list[tuple[str, Path]], phase: str, dump: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    rows = []
    started = time.perf_counter()
    for start in range(0, len(sample), 100):
        chunk = sample[start : start + 100]
        scored = path.score([item_of(p) for _, p in chunk], Channel.EMAIL)
        if len(scored) != len(chunk):
            raise SystemExit("an mbox among the corpus files: one message per file expected")
        for (label, file), each in zip(chunk, scored, strict=True):
            verdict = each.verdict
            row: dict[str, Any] = {"file": file.name, "label": label, "phase": phase}
            if verdict is None:
                row.update(outcome=each.outcome, detail=each.rejected)
            else:
                row.update(
                    outcome=each.outcome,
                    score=verdict.score,
                    threshold=verdict.threshold,
                    flagged=verdict.is_spam,
                    reasons=[(r.code, r.weight) for r in verdict.reasons],
                    engine=each.engine.model_dump(mode="json") if each.engine is not None else None,
                    classifier=each.classifier.model_dump(mode="json") if each.classifier is not None else None,
                )
            rows.append(row)
    elapsed = time.perf_counter() - started
    print(f"{phase}: scored {len(sample)} in {elapsed:.1f} s ({len(sample) / elapsed:.0f}/s), load {os.getloadavg()}")
    dump.extend(rows)
    return rows


def learn(path: SpamPath, items: list[tuple[str, Path]]) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        for start in range(0, len(items), 100):
            chunk = items[start : start + 100]
            for label in ("spam", "ham"):
                batch = [item_of(p) for lab, p in chunk if lab == label]
                if batch:
                    counts.update(path.learn(batch, Channel.EMAIL, label, pool))  # type: ignore[arg-type]
    path.signals.reload()
    print(f"learned {len(items)} in {time.perf_counter() - started:.1f} s: {dict(counts)}")
    return counts


def report(name: str, rows: list[dict[str, Any]], table: list[str]) -> None:
    judged = [r for r in rows if "score" in r]
    rejected = len(rows) - len(judged)
    scores = [(r["score"], r["label"] == "spam", r["threshold"]) for r in judged]
    chain = caught_at_cut([(s, y) for s, y, _ in scores])
    at_caught, at_flagged = at_threshold(scores)
    engine = caught_at_cut([((r["engine"] or {}).get("score", 0.0), r["label"] == "spam") for r in judged])
    nb = caught_at_cut([((r["classifier"] or {}).get("log_odds", 0.0), r["label"] == "spam") for r in judged])
    rules = caught_at_cut(
        [
            (
                sum(w for c, w in r["reasons"] if c not in ("spam_engine", "classifier", "spam_engine_unavailable")),
                r["label"] == "spam",
            )
            for r in judged
        ]
    )
    table.append(
        f"| {name} | {chain[0]:.1%} | **{at_caught:.1%} / {at_flagged:.2%}** | {engine[0]:.1%} | {nb[0]:.1%} | "
        f"{rules[0]:.1%} | {rejected} |"
    )
    print(table[-1], flush=True)


def rescore(rows: list[dict[str, Any]], policy: Path | None) -> list[dict[str, Any]]:
    """The chain again over dumped engine and classifier verdicts with another policy (no engine needed)."""
    compiled = compile_policy(load_policy(policy))
    out = []
    for row in rows:
        if "score" not in row:
            out.append(row)
            continue
        event_id = uuid.uuid4()
        event = ContactEvent.model_validate(
            {
                "event_id": event_id,
                "channel": "email",
                "occurred_at": datetime.now(UTC),
                "received_at": datetime.now(UTC),
                "subject_key": "sk_rescore_000000000000",
                "person": {"email": "someone@example.org"},
                "interaction": {"kind": "email"},
                "provenance": {"source_id": "rescore"},
            }
        )
        engine = (
            EngineVerdict.model_validate(row["engine"]) if row["engine"] and row["engine"]["kind"] == "scored" else None
        )
        classifier = ClassifierVerdict.model_validate(row["classifier"]) if row["classifier"] else None
        ctx = ChainContext(
            policy=compiled,
            now=datetime.now(UTC),
            pepper=PEPPER.encode(),
            engine={event_id: engine} if engine else {},
            classifier={event_id: classifier} if classifier else {},
        )
        outcome = run_chain(event, ctx).outcome
        assert isinstance(outcome, Passed | Quarantined)
        spam = outcome.tagged.tags.spam
        own = [(c, w) for c, w in row["reasons"] if c not in ("spam_engine", "classifier")]
        new = [(r.code, r.weight) for r in spam.reasons if r.code in ("spam_engine", "classifier")]
        score = sum(w for _, w in own + new)
        out.append({**row, "score": score, "threshold": spam.threshold, "reasons": own + new})
    return out


TABLE_HEAD = [
    "| system | chain, best cut <= 0.5 % ham | **packaged verdict: caught / ham flagged** | engine alone, best cut | "
    "own classifier alone, best cut | policy rules alone, best cut | rejected by the adapter |",
    "|---|---|---|---|---|---|---|",
]


def devset_corpus(folder: Path) -> Path:
    """The dev set's e-mails (``bench/_spam_devset.py``) written as a TREC index: the script runs without a corpus."""
    per_group = int(os.environ.get("BENCH_SPAM_PER_GROUP", "40"))
    lines = []
    for n, item in enumerate(i for i in build_devset(per_group=per_group) if i.raw is not None):
        (folder / f"m{n:05d}.eml").write_bytes(item.raw or b"")
        lines.append(f"{item.label} m{n:05d}.eml")
    index = folder / "index"
    index.write_text("\n".join(lines) + "\n")
    return index


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=Path)
    parser.add_argument("--older-fraction", type=float, default=0.6)
    parser.add_argument("--newer-ham", type=int, default=1500)
    parser.add_argument("--newer-spam", type=int, default=1000)
    parser.add_argument("--learn", type=int, default=500)
    parser.add_argument("--prior", type=int, default=0, help="older messages of each kind the classifier learns first")
    parser.add_argument("--sa-rules", action="store_true")
    parser.add_argument("--policy", type=Path, default=None)
    parser.add_argument("--dump", type=Path, default=None)
    parser.add_argument("--rescore", type=Path, default=None, help="a --dump file: the chain again, no engine")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    table = list(TABLE_HEAD)
    if args.rescore:
        rows = [orjson.loads(line) for line in args.rescore.read_bytes().splitlines()]
        for phase in dict.fromkeys(r["phase"] for r in rows):
            scored = rescore([r for r in rows if r["phase"] == phase], args.policy)
            name = f"{phase} ({args.policy or 'packaged policy'})"
            report(name, scored, table)
            half = len(scored) // 2  # the sample is in delivery order: choose on the older half, check on the newer
            report(f"{name}, older half", scored[:half], table)
            report(f"{name}, newer half", scored[half:], table)
        print("\n".join(table))
        return

    from_env = os.environ.get("BENCH_SPAM_CORPUS_INDEX")
    index = args.index or (Path(from_env) if from_env else None)
    if index is None:  # no real corpus given: the dev set's e-mails, in the same format (the figures mean little)
        index = devset_corpus(Path(tempfile.mkdtemp(prefix="spam-corpus-")))
        print(f"no --index: the synthetic dev set's e-mails as a stand-in corpus ({index})")
    corpus = read_trec_index(index)
    position = {c: i for i, c in enumerate(corpus)}
    cut = int(len(corpus) * args.older_fraction)
    older, newer = corpus[:cut], corpus[cut:]
    sample = sorted(
        evenly([c for c in newer if c[0] == "ham"], args.newer_ham)
        + evenly([c for c in newer if c[0] == "spam"], args.newer_spam),
        key=position.__getitem__,
    )
    window = [c for c in older if c[0] == "spam"][-args.learn :] + [c for c in older if c[0] == "ham"][-args.learn :]
    window.sort(key=position.__getitem__)
    print(
        f"corpus {len(corpus)} ({sum(c[0] == 'spam' for c in corpus)} spam); older {len(older)}, newer {len(newer)}; "
        f"sample {sum(c[0] == 'ham' for c in sample)} ham + {sum(c[0] == 'spam' for c in sample)} spam; "
        f"learning window {len(window)}"
    )

    root = _service_root(get_settings().cache_dir / ("spam-corpus-sa" if args.sa_rules else "spam-corpus"))
    ports = sorted({free_port() for _ in range(6)})[:3]
    engine = LocalSpamEngine(root, port=ports[0], controller_port=ports[1], redis_port=ports[2], sa_rules=args.sa_rules)
    engine.down()
    engine.copy_regex_cache_from(LocalSpamEngine.for_tests())
    if (root / "redis").exists():
        shutil.rmtree(root / "redis")
    engine.up()
    settings = explicit_settings(
        home=Path("/tmp/leadpipe-spam-corpus"),
        subject_key_pepper=PEPPER,
        spam_engine_url=engine.url,
        spam_engine_controller_url=engine.controller_url,
        spam_engine_redis_port=engine.redis_port,
        spam_engine_timeout_s=30.0,
        spam_engine_concurrency=4,
        policy_file=args.policy,
    )
    dump: list[dict[str, Any]] = []
    path = SpamPath(settings, Runtime(settings), policy_for(settings))
    try:
        if args.prior:
            before = older[: len(older) - 2 * args.learn]
            prior = [c for c in before if c[0] == "spam"][-args.prior :] + [c for c in before if c[0] == "ham"][
                -args.prior :
            ]
            prior.sort(key=position.__getitem__)
            learn(path, prior)
        report(
            "cold start" + (f" (classifier prior: {args.prior} of each)" if args.prior else ""),
            score_sample(path, sample, "cold", dump),
            table,
        )
        learn(path, window)
        report(f"after learning {args.learn} of each", score_sample(path, sample, "learned", dump), table)
    finally:
        path.close()
        engine.down()
    if args.dump:
        args.dump.write_bytes(b"\n".join(orjson.dumps(r) for r in dump))
    print(f"engine: rspamd offline{' with SpamAssassin stock rules' if args.sa_rules else ''}")
    print("\n".join(table))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
