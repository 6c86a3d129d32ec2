"""Could searching near each read find a random reader's neighbours? Exact (numpy) check on
bench.feed's synthetic posts, no index involved.

A random reader's vector is the mean of 20 posts of unrelated topics: a nearly flat query, which an
HNSW graph search misses (docs/feed.md, Benchmark). One way out would be multi-probe: search near
each of the 20 reads, take the union and rescore it against the mean. This measures the best case of
that idea: what share of the mean's exact top 20 lies in the union of each read's exact top K.

    python -m bench.flat_probe [--posts 600000] [--users 30]

Prints JSON: per K, that share (mean over users) and the union's size.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from bench._util import emit
from bench.feed import Data

TOP = 20
DEPTHS = (50, 200, 1000)


def top_k(scores: np.ndarray, k: int) -> set[int]:
    return set(np.argpartition(-scores, k)[:k].tolist())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=600_000, help="the first N of bench.feed's posts")
    ap.add_argument("--users", type=int, default=30)
    args = ap.parse_args()
    data = Data(1_000_000, "clustered")
    data.materialize()
    vecs = data.vecs[: args.posts]
    rng = np.random.default_rng(2)
    share: dict[int, list[float]] = {k: [] for k in DEPTHS}
    union_size: dict[int, list[int]] = {k: [] for k in DEPTHS}
    for _ in range(args.users):
        reads = rng.choice(len(vecs), 20, replace=False)
        q = vecs[reads].sum(0)
        q /= np.linalg.norm(q)
        s = vecs @ q
        s[reads] = -np.inf  # a feed never shows what was read
        truth = top_k(s, TOP)
        per_read = []
        for r in reads:
            sr = vecs @ vecs[r]
            sr[reads] = -np.inf
            per_read.append(np.argsort(-sr)[: max(DEPTHS)])
        for k in DEPTHS:
            union = {int(i) for idx in per_read for i in idx[:k]}
            share[k].append(len(truth & union) / TOP)
            union_size[k].append(len(union))
    out: dict[str, Any] = {
        "bench": "flat_probe",
        "posts": len(vecs),
        "users": args.users,
        "reads_per_user": 20,
        "depths": [
            {
                "k_per_read": k,
                "share_of_exact_top20_in_union": round(float(np.mean(share[k])), 3),
                "union_size_median": int(np.median(union_size[k])),
            }
            for k in DEPTHS
        ],
    }
    emit(out)


if __name__ == "__main__":
    main()
