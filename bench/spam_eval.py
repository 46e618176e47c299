"""How well the spam filter separates spam from ham on leadpipe's own development set (bench/_spam_devset.py).

Usage: ``.venv/bin/python bench/spam_eval.py [--sa-rules] [--per-group N] [--learn N]`` (or ``BENCH_SPAM_PER_GROUP``,
``BENCH_SPAM_LEARN``)

Starts its own rspamd + Redis (``LocalSpamEngine`` under its own directory, Bayes emptied first), then, on the
*newer* 30 % of the set (time split):

- cold start: the policy's rules alone, the engine alone, and the chain (policy + engine);
- after learning the most recent N older reviewer decisions of each kind (default 500): the engine with its Bayes
  trained on them, leadpipe's own classifier alone, and the chain (policy + engine + classifier).

For each: spam caught at the best cut that flags <= 0.5 % of ham (the cut is chosen on the same newer items, as
in issue 14's table; so it is an upper bound of what a fixed threshold gives), and caught / ham flagged at the
threshold configured in policy.yaml. Prints the load average. Never reads SpamAssassin's public corpus.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _spam_devset import DevItem, build_devset

from pipeline.config import get_settings
from pipeline.kafka.launcher import free_port
from pipeline.models.spam import ClassifierVerdict, EngineResult, EngineVerdict
from pipeline.policy.model import load_policy
from pipeline.processors import ChainContext, compile_policy, run_chain
from pipeline.processors.chain import Passed, Quarantined
from pipeline.spam.engine import SpamEngineClient
from pipeline.spam.launcher import LocalSpamEngine, _service_root
from pipeline.spam.render import render_message
from pipeline.spam.signals import SpamSignals

PEPPER = b"bench-pepper"
MAX_HAM_FLAGGED = 0.005


def caught_at_cut(scores: Sequence[tuple[float, bool]], max_ham: float = MAX_HAM_FLAGGED) -> tuple[float, float]:
    """(spam caught, cut): the lowest cut that flags at most ``max_ham`` of ham (score >= cut flags)."""
    ham = sorted((s for s, spam in scores if not spam), reverse=True)
    spam_scores = [s for s, spam in scores if spam]
    allowed = int(len(ham) * max_ham)
    # flagging the `allowed` highest ham is fine; the cut must stay above the next one
    cut = ham[allowed] + 1e-9 if allowed < len(ham) else float("-inf")
    caught = sum(1 for s in spam_scores if s >= cut) / max(len(spam_scores), 1)
    return caught, cut


def at_threshold(scores: Sequence[tuple[float, bool, float]]) -> tuple[float, float]:
    """(spam caught, ham flagged) at each event's own threshold."""
    spam = [s >= t for s, is_spam, t in scores if is_spam]
    ham = [s >= t for s, is_spam, t in scores if not is_spam]
    return sum(spam) / max(len(spam), 1), sum(ham) / max(len(ham), 1)


def score_all(client: SpamEngineClient, items: Sequence[DevItem]) -> dict[object, EngineResult]:
    out: dict[object, EngineResult] = {}
    for start in range(0, len(items), 200):
        chunk = items[start : start + 200]
        results = client.score_many([render_message(i.event, i.raw) for i in chunk], budget_s=60)
        out.update({i.event.event_id: r for i, r in zip(chunk, results, strict=True)})
    return out


def chain_scores(
    items: Sequence[DevItem],
    engine: dict[object, EngineResult] | None,
    classifier: dict[object, ClassifierVerdict] | None,
    policy: Path | None = None,
) -> list[tuple[float, bool, float]]:
    compiled = compile_policy(load_policy(policy))
    ctx = ChainContext(
        policy=compiled,
        now=datetime.now(UTC),
        pepper=PEPPER,
        engine=engine or {},  # type: ignore[arg-type]
        classifier=classifier or {},  # type: ignore[arg-type]
    )
    out = []
    for item in items:
        outcome = run_chain(item.event, ctx).outcome
        if not isinstance(outcome, Passed | Quarantined):
            raise SystemExit(f"unexpected outcome {outcome} for {item.template}")
        spam = outcome.tagged.tags.spam
        out.append((spam.score, item.label == "spam", spam.threshold))
    return out


def report(name: str, scores: Sequence[tuple[float, bool, float]], rows: list[str]) -> None:
    caught, cut = caught_at_cut([(s, y) for s, y, _ in scores])
    at_caught, at_flagged = at_threshold(scores)
    rows.append(f"| {name} | {caught:.1%} (cut {cut:.2f}) | {at_caught:.1%} caught, {at_flagged:.2%} ham flagged |")
    print(rows[-1], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sa-rules", action="store_true", help="rspamd with SpamAssassin's stock rules")
    parser.add_argument(
        "--policy",
        type=Path,
        action="append",
        default=None,
        help="another policy file (thresholds, weights) to try; repeat to compare several on the same verdicts",
    )
    parser.add_argument("--per-group", type=int, default=int(os.environ.get("BENCH_SPAM_PER_GROUP", "240")))
    parser.add_argument(
        "--learn",
        type=int,
        default=int(os.environ.get("BENCH_SPAM_LEARN", "500")),
        help="older decisions of each kind to learn",
    )
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()}")
    items = build_devset(per_group=args.per_group)
    older = [i for i in items if not i.newer]
    newer = [i for i in items if i.newer]
    print(
        f"dev set: {len(items)} items; older {len(older)} "
        f"({sum(i.label == 'spam' for i in older)} spam), newer {len(newer)} "
        f"({sum(i.label == 'spam' for i in newer)} spam)"
    )

    root = _service_root(get_settings().cache_dir / ("spam-eval-sa" if args.sa_rules else "spam-eval"))
    ports = {free_port() for _ in range(6)}
    port, controller, redis_port = sorted(ports)[:3]
    engine = LocalSpamEngine(root, port=port, controller_port=controller, redis_port=redis_port, sa_rules=args.sa_rules)
    engine.down()  # one left by an interrupted run
    engine.copy_regex_cache_from(LocalSpamEngine.for_tests())  # the test engine's, when it ran before: seconds, not 40
    if (root / "redis").exists():
        shutil.rmtree(root / "redis")  # an empty Bayes: cold start means cold
    started = time.perf_counter()
    engine.up()
    print(f"engine up in {time.perf_counter() - started:.1f} s (SpamAssassin rules: {engine.sa_rules})")
    rows = ["| system (newer part) | caught at <= 0.5 % ham flagged | at the policy's thresholds |", "|---|---|---|"]
    try:
        evaluate(engine, older, newer, args.learn, rows, args.policy or [None])
    finally:
        engine.down()
    print("\n".join(rows))
    print(f"load average after: {os.getloadavg()}")


def evaluate(
    engine: LocalSpamEngine,
    older: list[DevItem],
    newer: list[DevItem],
    learn: int,
    rows: list[str],
    policies: Sequence[Path | None] = (None,),
) -> None:
    """The rows above; the chain's rows once per policy file (None: the packaged one), on the same verdicts."""
    policy = policies[0]
    with SpamEngineClient(engine.url, engine.controller_url, timeout_s=30, concurrency=4) as client:
        started = time.perf_counter()
        cold = score_all(client, newer)
        print(f"scored {len(newer)} in {time.perf_counter() - started:.1f} s")
        report("policy rules alone (today's chain)", chain_scores(newer, None, None, policy), rows)
        engine_only = [
            (r.score if isinstance(r, EngineVerdict) else 0.0, i.label == "spam", 6.0)
            for i, r in ((i, cold[i.event.event_id]) for i in newer)
        ]
        report("engine alone, cold (its 'add header' score 6 as threshold)", engine_only, rows)
        report("chain: policy + engine, cold", chain_scores(newer, cold, None, policy), rows)
        learned = load_policy(policy).spam.classifier
        prior = learned.prior
        # the classifier in memory: its store is tested
        signals = SpamSignals(client, None, PEPPER, prior=prior, smoothing=learned.smoothing)
        shipped = {i.event.event_id: signals.verdict(i.event, cold[i.event.event_id], i.raw) for i in newer}
        for each in policies:
            name = f"chain ({each or 'packaged policy'}): policy + engine + classifier with the shipped prior only"
            report(f"{name} (prior on: {prior.enabled}), cold", chain_scores(newer, cold, shipped, each), rows)
            for label, part in by_channel(newer).items():
                report(f"{name}, cold, {label} only", chain_scores(part, cold, shipped, each), rows)

        spam_older = [i for i in older if i.label == "spam"][-learn:]
        ham_older = [i for i in older if i.label == "ham"][-learn:]
        train = sorted(spam_older + ham_older, key=lambda i: i.event.received_at)
        started = time.perf_counter()
        older_verdicts = score_all(client, train)  # the engine's symbols at decision time: NB features
        outcomes = client.learn_many(
            [(render_message(i.event, i.raw), "spam" if i.label == "spam" else "ham") for i in train]
        )
        learned = sum(o.status == "learned" for o in outcomes)
        print(
            f"learned {learned}/{len(train)} in the engine in {time.perf_counter() - started:.1f} s "
            f"({len(spam_older)} spam, {len(ham_older)} ham)"
        )
        for item in train:
            signals.model.add(signals.keys(item.event, older_verdicts[item.event.event_id], item.raw), item.label)
        warm = score_all(client, newer)
        engine_warm = [
            (r.score if isinstance(r, EngineVerdict) else 0.0, i.label == "spam", 6.0)
            for i, r in ((i, warm[i.event.event_id]) for i in newer)
        ]
        report(f"engine alone with Bayes ({learned} learned)", engine_warm, rows)
        classifier = {i.event.event_id: signals.verdict(i.event, warm[i.event.event_id], i.raw) for i in newer}
        nb_only = [(v.log_odds, i.label == "spam", 0.0) for i, v in ((i, classifier[i.event.event_id]) for i in newer)]
        report("own naive Bayes alone (log odds, cut 0; e-mail with the prior)", nb_only, rows)
        for each in policies:
            name = f"chain ({each or 'packaged policy'})"
            report(f"{name}: policy + engine + own classifier", chain_scores(newer, warm, classifier, each), rows)
            for label, part in by_channel(newer).items():
                report(f"{name}, {label} only", chain_scores(part, warm, classifier, each), rows)
            report(f"{name}: policy + engine (Bayes) only", chain_scores(newer, warm, None, each), rows)


def by_channel(items: Sequence[DevItem]) -> dict[str, list[DevItem]]:
    """E-mail apart from the channels whose text is rendered into a message (forms, chat, messenger)."""
    mail = [i for i in items if i.raw is not None]
    rendered = [i for i in items if i.raw is None]
    return {"e-mail": mail, "forms, chat and messenger": rendered}


if __name__ == "__main__":
    main()
