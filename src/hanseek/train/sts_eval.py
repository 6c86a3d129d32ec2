"""Sentence-encoder evaluation: KorSTS Spearman and ParaKQC paraphrase retrieval.

KorSTS (dev): Spearman correlation x100 between cosine similarity and the gold 0-5 score.
ParaKQC: 1,000 sets of 10 paraphrases (consecutive lines). Every sentence of the chosen sets queries
all the others; its 9 set-mates are the relevant answers. recall@k = relevant answers in the top k
divided by min(k, 9) (so recall@1 is "the nearest neighbour is a paraphrase"); MRR uses the rank of
the first paraphrase. Sets can be restricted to a range so that a model adapted on some sets is
scored only on the others.
"""

from __future__ import annotations

import csv
import math
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hanseek.encoders.base import Kind, TextEncoder

PARAKQC_SET_SIZE = 10


def default_data_root() -> Path:
    """The shared data sets folder: $HANSEEK_SHARED_DATA, else ../shared/data from the working dir."""
    env = os.environ.get("HANSEEK_SHARED_DATA")
    return Path(env) if env else Path.cwd().parent / "shared" / "data"


@dataclass(frozen=True)
class StsPairs:
    first: list[str]
    second: list[str]
    scores: np.ndarray

    def head(self, n: int) -> StsPairs:
        """The first `n` pairs."""
        return StsPairs(self.first[:n], self.second[:n], self.scores[:n])


def load_korsts(path: Path) -> StsPairs:
    """KorSTS TSV (header; sentence1/sentence2 in columns 6/7; quotes are literal characters)."""
    first: list[str] = []
    second: list[str] = []
    scores: list[float] = []
    with Path(path).open(encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(rows, [])
        missing = [c for c in ("score", "sentence1", "sentence2") if c not in header]
        if missing:
            raise ValueError(f"{path}: not a KorSTS file (its header lacks {', '.join(missing)})")
        i_score, i_a, i_b = header.index("score"), header.index("sentence1"), header.index("sentence2")
        for n, row in enumerate(rows, start=2):
            if len(row) <= max(i_score, i_a, i_b):
                continue
            try:
                score = float(row[i_score])
            except ValueError:
                raise ValueError(f"{path}:{n}: score {row[i_score]!r} is not a number") from None
            first.append(row[i_a])
            second.append(row[i_b])
            scores.append(score)
    if not scores:
        raise ValueError(f"no pairs in {path}")
    return StsPairs(first, second, np.asarray(scores, dtype=np.float64))


def check_rankable(pairs: StsPairs, source: Path | str) -> StsPairs:
    """Refuse pairs whose Spearman correlation is undefined (NaN): fewer than two, or one gold score
    for all. NaN made every validation lose to step 0 and is not JSON, so the saved model could
    not be registered and `eval sts -o` wrote an unreadable file."""
    n = len(pairs.scores)
    if n < 2:
        raise ValueError(f"{source}: {n} STS pair to score; a Spearman correlation needs at least 2")
    if float(np.ptp(pairs.scores)) == 0.0:
        raise ValueError(
            f"{source}: all {n} gold scores are {float(pairs.scores[0]):g}; "
            "a Spearman correlation needs differing scores"
        )
    return pairs


_PARAKQC_LINE = re.compile(r"([0-9]+)\t([0-9]+)\t(.*\S.*)")


def load_parakqc(path: Path, sets: tuple[int, int] | None = None) -> list[list[str]]:
    """Paraphrase sets (lists of 10 sentences), optionally only sets [start, end).

    Lines are `topic id<TAB>intention id<TAB>sentence` and the 10 lines of a set share both ids:
    cutting any text file into groups of 10 gave made-up metrics for a file that is not ParaKQC."""
    with Path(path).open(encoding="utf-8-sig", newline="") as fh:
        lines = [(n, line.rstrip("\r\n")) for n, line in enumerate(fh, start=1) if line.strip()]
    if len(lines) < PARAKQC_SET_SIZE:
        raise ValueError(f"{path}: no complete paraphrase set (a set is {PARAKQC_SET_SIZE} lines)")
    sentences: list[str] = []
    set_ids: tuple[str, str] = ("", "")
    for i, (n, line) in enumerate(lines):
        m = _PARAKQC_LINE.fullmatch(line)
        if m is None:
            raise ValueError(f"{path}:{n}: not ParaKQC (want topic id<TAB>intention id<TAB>sentence)")
        if i % PARAKQC_SET_SIZE == 0:
            set_ids = (m[1], m[2])
        elif (m[1], m[2]) != set_ids:
            raise ValueError(
                f"{path}:{n}: not ParaKQC (ids {m[1]}/{m[2]} differ from {set_ids[0]}/{set_ids[1]} "
                f"of the set's first line; a set is {PARAKQC_SET_SIZE} consecutive lines)"
            )
        sentences.append(m[3])
    groups = [sentences[i : i + PARAKQC_SET_SIZE] for i in range(0, len(sentences), PARAKQC_SET_SIZE)]
    groups = [g for g in groups if len(g) == PARAKQC_SET_SIZE]
    if sets is not None:
        groups = groups[sets[0] : sets[1]]
    if not groups:
        where = f" in sets {sets[0]}:{sets[1]}" if sets is not None else ""
        raise ValueError(f"{path}: no complete paraphrase set{where} (a set is {PARAKQC_SET_SIZE} lines)")
    return groups


def spearman_x100(pred: np.ndarray, gold: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(pred, gold).statistic) * 100.0


Progress = Callable[[int], None]


def encode_in_chunks(
    encoder: TextEncoder, texts: list[str], kind: Kind, on_progress: Progress | None = None, chunk: int = 512
) -> np.ndarray:
    """encode() in slices so a progress bar can follow long evaluations."""
    parts = []
    for a in range(0, len(texts), chunk):
        parts.append(encoder.encode(texts[a : a + chunk], kind=kind))
        if on_progress:
            on_progress(len(texts[a : a + chunk]))
    return np.vstack(parts) if parts else np.zeros((0, encoder.dim), dtype=np.float32)


def sts_score(
    encoder: TextEncoder, pairs: StsPairs, kind: Kind = "query", on_progress: Progress | None = None
) -> dict[str, Any]:
    # Symmetric task: both sides get the same prompt ("query: " for e5, as its authors advise).
    texts = pairs.first + pairs.second
    vec = encode_in_chunks(encoder, texts, kind, on_progress)
    n = len(pairs.first)
    cos = (vec[:n] * vec[n:]).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's warning for tied cosines: the null below says it
        rho = spearman_x100(cos, pairs.scores)
    # Undefined when every cosine ties (a collapsed model): null, as NaN is not JSON.
    return {"pairs": n, "spearman": round(rho, 2) if math.isfinite(rho) else None}


def retrieval_metrics(
    vectors: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (1, 10), chunk: int = 1024
) -> dict[str, float]:
    """Leave-one-out retrieval: every row queries all other rows; rows with the same label are relevant.

    Processed in chunks of queries so memory stays O(chunk x n) rather than O(n^2).
    """
    labels = np.asarray(labels)
    n = len(labels)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    n_rel = counts[inverse] - 1
    sums = {k: 0.0 for k in ks}
    rr = 0.0
    kmax = min(max(ks), n - 1)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        sims = vectors[a:b] @ vectors.T
        sims[np.arange(b - a), np.arange(a, b)] = -np.inf
        rel = labels[None, :] == labels[a:b, None]
        rel[np.arange(b - a), np.arange(a, b)] = False
        top = np.argpartition(-sims, kmax - 1, axis=1)[:, :kmax]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1), axis=1)
        top_rel = np.take_along_axis(rel, top, axis=1)
        for k in ks:
            denom = np.minimum(k, np.maximum(n_rel[a:b], 1))
            sums[k] += float((top_rel[:, :k].sum(axis=1) / denom).sum())
        # rank of the first relevant item = 1 + items scoring strictly higher than the best relevant one
        best_rel = np.where(rel, sims, -np.inf).max(axis=1)
        rank = 1 + (sims > best_rel[:, None]).sum(axis=1)
        rr += float(np.where(np.isfinite(best_rel), 1.0 / rank, 0.0).sum())
    out = {f"recall_at_{k}": round(sums[k] / n, 4) for k in ks}
    out["mrr"] = round(rr / n, 4)
    out["queries"] = float(n)
    return out


def paraphrase_score(
    encoder: TextEncoder, groups: list[list[str]], kind: Kind = "query", on_progress: Progress | None = None
) -> dict[str, Any]:
    texts = [s for g in groups for s in g]
    labels = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    vec = encode_in_chunks(encoder, texts, kind, on_progress)
    metrics = retrieval_metrics(vec, labels)
    return {"sets": len(groups), "queries": int(metrics.pop("queries")), **metrics}


def evaluate(
    encoder: TextEncoder,
    *,
    korsts: StsPairs | None,
    parakqc: list[list[str]] | None,
    kind: Kind = "query",
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """Both evaluations (whichever data is given) as a JSON-ready dict."""
    result: dict[str, Any] = {"model": encoder.name, "dim": encoder.dim, "kind": kind}
    backend = getattr(encoder, "backend", None)
    if backend:
        result["backend"] = backend
    if korsts is not None:
        result["korsts"] = sts_score(encoder, korsts, kind, on_progress)
    if parakqc is not None:
        result["parakqc"] = paraphrase_score(encoder, parakqc, kind, on_progress)
    return result


def texts_to_encode(korsts: StsPairs | None, parakqc: list[list[str]] | None) -> int:
    return (2 * len(korsts.first) if korsts else 0) + (sum(len(g) for g in parakqc) if parakqc else 0)
