"""Train the classifier's shipped prior from a public labelled real-mail corpus in TREC's index format.

Usage: ``.venv/bin/python scripts/train_spam_prior.py --index /work/data/trec07p/full/index
[--older-fraction 0.6] [--min-docs 5] [--min-name-docs 30] [--out pipeline/spam/prior.tsv.gz]``

Each message of the first ``--older-fraction`` of the index (delivery order: the newer rest stays unseen, so the
packaged threshold can be calibrated on it) goes through the e-mail adapter exactly as ingest runs it, and its
features are the classifier's (``classifier.features``: the person's words, link hosts, the headers as received;
no engine symbols, which depend on the engine's version and configuration). Per feature: in how many spam and ham
messages it occurred.

What is kept, and why (no personal data in the package):
- features seen in at least ``--min-docs`` messages: a public corpus's common vocabulary, not any one message;
- never a token with an ``@`` or with 5 or more digits (e-mail addresses, phone and account numbers);
- a word that appears in a display name of ``From``/``To``/``Cc`` or as an address's local part anywhere in the
  corpus (a person's name) only when seen in at least ``--min-name-docs`` messages (then it is a common word:
  "team", "news", "support");
- the sender's domain only when seen in ``--min-name-docs`` messages (a mail provider, a large sender).

The runtime stores words as keyed hashes with a per-deployment pepper; the prior cannot be shipped that way (the
pepper is the deployment's), so it is shipped as these public words and hashed with the deployment's pepper when a
process first needs it (``pipeline.spam.prior``). Never point this at SpamAssassin's public corpus: it is reserved
for acceptance.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import time
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.ingest.service import Submission, parse_submission
from pipeline.models.common import Channel
from pipeline.processors.text import person_text
from pipeline.spam.classifier import HEADER_PREFIX, features
from pipeline.spam.prior import PRIOR_PATH, read_trec_index, write_prior

_DIGITS = re.compile(r"\d")
_NAME_WORD = re.compile(r"[^\W\d_]{2,}")
_HEADERS = BytesHeaderParser(policy=compat32)


def name_words(raw: bytes) -> set[str]:
    """Words of the display names and local parts in From, To and Cc (people's names, lower case)."""
    end = raw.find(b"\n\n")
    try:
        headers = _HEADERS.parsebytes(raw[: end if end > 0 else 65536][:65536])
    except Exception:
        return set()
    values = [str(v) for name in ("from", "to", "cc", "reply-to") for v in headers.get_all(name) or []]
    try:
        pairs = getaddresses(values)
    except Exception:
        return set()
    out: set[str] = set()
    for display, address in pairs:
        out.update(w.lower() for w in _NAME_WORD.findall(display))
        out.update(w.lower() for w in _NAME_WORD.findall(address.partition("@")[0]))
    return out


def personal(feature: str) -> bool:
    """A token that names or reaches a person whatever its frequency: an address, a phone or account number."""
    return "@" in feature or len(_DIGITS.findall(feature)) >= 5


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--older-fraction", type=float, default=0.6)
    parser.add_argument("--min-docs", type=int, default=5)
    parser.add_argument("--min-name-docs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=PRIOR_PATH)
    args = parser.parse_args()
    if "spamassassin" in str(args.index).lower():
        raise SystemExit("SpamAssassin's public corpus is reserved for acceptance: never train on it")
    corpus = read_trec_index(args.index)
    training = corpus[: int(len(corpus) * args.older_fraction)]
    print(f"load average before: {os.getloadavg()}; training on the first {len(training)} of {len(corpus)}")
    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    docs = [0, 0]
    names: collections.Counter[str] = collections.Counter()
    rejected: collections.Counter[str] = collections.Counter()
    pepper, now = b"prior-training", datetime.now(UTC)
    started = time.perf_counter()
    for n, (label, path) in enumerate(training, start=1):
        raw = path.read_bytes()
        parsed = parse_submission(Submission("spam-prior", Channel.EMAIL, raw, "message/rfc822"), pepper, now)
        if not parsed.accepted:
            rejected[parsed.problems[0].reason] += 1
            continue
        index = 0 if label == "spam" else 1
        for event in parsed.events:
            docs[index] += 1
            for feature in features(person_text(event), None, raw):
                counts[feature][index] += 1
        names.update(name_words(raw))
        if n % 5000 == 0:
            print(f"  {n} messages, {len(counts)} features, {time.perf_counter() - started:.0f} s", flush=True)
    kept: dict[str, tuple[int, int]] = {}
    dropped: collections.Counter[str] = collections.Counter()
    for feature, (spam, ham) in counts.items():
        seen = spam + ham
        word = feature.removeprefix(f"{HEADER_PREFIX}subject:")
        if seen < args.min_docs:
            dropped["rare"] += 1
        elif personal(feature):
            dropped["address or number"] += 1
        elif word in names and seen < args.min_name_docs:
            dropped["name"] += 1
        elif feature.startswith(f"{HEADER_PREFIX}from-domain:") and seen < args.min_name_docs:
            dropped["sender domain"] += 1
        else:
            kept[feature] = (spam, ham)
    source = f"{args.index.parent.parent.name} first {args.older_fraction:g} ({len(training)} messages)"
    write_prior(args.out, docs[0], docs[1], kept, source)
    print(
        f"{docs[0]} spam + {docs[1]} ham messages in {time.perf_counter() - started:.0f} s (rejected {dict(rejected)});"
        f" {len(counts)} features, kept {len(kept)}, dropped {dict(dropped)}; wrote {args.out} "
        f"({args.out.stat().st_size / 1e6:.2f} MB)"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
