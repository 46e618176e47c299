"""The classifier's shipped prior: feature counts learned from a public labelled corpus of real mail, so that a new
deployment's classifier judges from its first message instead of waiting for reviewers' decisions (issue 14's
cold start).

The file (``prior.tsv.gz``, made by ``scripts/train_spam_prior.py``) holds public words, not keyed hashes: the
runtime's keys are keyed with the deployment's own pepper, which no shipped file can know. A process hashes the
words with its pepper once, when it first needs the prior (``keyed_prior``); both steps are cached for the life of
the process. What is in it and why no personal data is: the script's docstring and docs/processing.md.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pipeline.spam.classifier import feature_key

PRIOR_PATH = Path(__file__).with_name("prior.tsv.gz")
_HEADER = "# leadpipe spam classifier prior"


@dataclass(frozen=True)
class Prior:
    """Messages counted per class and, per feature (a word, or a keyed hash once keyed), in how many of each."""

    spam_docs: int
    ham_docs: int
    counts: Mapping[str, tuple[int, int]]
    source: str = ""


def write_prior(path: Path, spam_docs: int, ham_docs: int, counts: Mapping[str, tuple[int, int]], source: str) -> None:
    """The file format: a comment naming the source, ``docs <spam> <ham>``, then ``<feature> <spam> <ham>`` sorted
    (tab-separated; features hold no white space); gzip without a time stamp, so the same input gives the same
    bytes."""
    lines = [f"{_HEADER}: {source}", f"docs\t{spam_docs}\t{ham_docs}"]
    lines.extend(f"{feature}\t{spam}\t{ham}" for feature, (spam, ham) in sorted(counts.items()))
    with path.open("wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=9, mtime=0) as out:
        out.write(("\n".join(lines) + "\n").encode())


def read_prior(path: Path) -> Prior:
    """A prior file as written by ``write_prior``; ValueError when it is not one."""
    text = gzip.decompress(path.read_bytes()).decode()
    lines = text.splitlines()
    if len(lines) < 2 or not lines[0].startswith(_HEADER) or not lines[1].startswith("docs\t"):
        raise ValueError(f"{path} is not a leadpipe spam prior")
    _, spam_docs, ham_docs = lines[1].split("\t")
    counts: dict[str, tuple[int, int]] = {}
    for line in lines[2:]:
        feature, spam, ham = line.split("\t")
        counts[feature] = (int(spam), int(ham))
    return Prior(int(spam_docs), int(ham_docs), counts, lines[0].removeprefix(_HEADER).lstrip(": "))


def read_trec_index(index: Path) -> list[tuple[str, Path]]:
    """A labelled corpus in TREC's spam-track index format (``spam|ham PATH`` per line, in delivery order, paths
    relative to the index): what the prior is trained from and what bench/spam_corpus.py evaluates on."""
    out = []
    for line in index.read_text().splitlines():
        label, _, rel = line.strip().partition(" ")
        if label in ("spam", "ham") and rel:
            out.append((label, (index.parent / rel).resolve()))
    return out


@lru_cache(maxsize=1)
def packaged_prior() -> Prior:
    """The packaged prior, read once per process (~0.1 s), on first use."""
    return read_prior(PRIOR_PATH)


@lru_cache(maxsize=4)
def keyed_prior(pepper: bytes) -> Prior:
    """The packaged prior with its features as this deployment stores them (``feature_key``), once per pepper."""
    prior = packaged_prior()
    return Prior(
        prior.spam_docs,
        prior.ham_docs,
        {feature_key(pepper, feature): pair for feature, pair in prior.counts.items()},
        prior.source,
    )


__all__ = ["PRIOR_PATH", "Prior", "keyed_prior", "packaged_prior", "read_prior", "read_trec_index", "write_prior"]
