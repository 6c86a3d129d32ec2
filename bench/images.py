"""Image benchmark: ingest throughput, and search latency/recall at 100k stored image vectors.

Ingest: real photos (../shared/data/images, else the sample photos that ship with scikit-learn and
matplotlib) through `ImageService.add` in batches of 16: decode, sha256 dedup, EfficientNet-Lite0
vectors and labels, e5 label/caption vectors, thumbnails, one transaction per batch. Each photo is
uploaded in several variants (colour-shifted, so every upload is new). Reported next to the encoder
alone (forward passes only), which is the bulk of the cost.

Search: `--rows` image rows (100k) and their vectors loaded with binary COPY into the service's own
tables (1280-d, the CNN's dimension), HNSW index built after the load. Vectors are clustered random
directions (topic centre + noise, cos ≈ 0.6 to the centre), as real image features cluster; queries
are drawn the same way. Scenarios: unfiltered, one tag (1 of 20, ~5k candidates) and a 30-day window
(~1/6 of rows). Paths: exact (filter, then exact distance), HNSW (iterative scans), and auto (the
planner's choice). Recall@10 of HNSW/auto against exact, which is checked against numpy.
Latencies are end-to-end through `ImageService._fuse` (search + row hydration) on a warm pool.

    python -m bench.images [--rows 100000] [--queries 40] [--ingest-images 48]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench._util import emit, percentiles_ms
from hanseek.config import Settings, load_settings
from hanseek.store.bulk import copy_rows
from hanseek.store.db import Database
from hanseek.store.server import stop_server
from hanseek.store.vectors import create_hnsw_index

K, TAGS, DAYS, TOPICS = 10, 20, 180, 2000
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def log(msg: str) -> None:
    print(f"[bench.images] {msg}", file=sys.stderr, flush=True)


def photos() -> list[Image.Image]:
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images" / "skimage"
    paths = sorted(shared.glob("*")) if shared.is_dir() else []
    if not paths:
        import matplotlib
        import sklearn

        sk = Path(sklearn.__file__).parent / "datasets" / "images"
        paths = [
            sk / "china.jpg",
            sk / "flower.jpg",
            Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
        ]
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(im.convert("RGB"))
    return out


def uploads(n: int) -> list[tuple[str, bytes]]:
    from PIL import ImageEnhance

    base = photos()
    out = []
    for i in range(n):
        im = ImageEnhance.Brightness(base[i % len(base)]).enhance(0.85 + 0.02 * (i // len(base)))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=88)
        out.append((f"photo{i}.jpg", buf.getvalue()))
    return out


def bench_ingest(svc: Any, n: int) -> dict[str, Any]:
    from hanseek.images.service import Upload

    files = uploads(n)
    encoder = svc.encoder
    images = [Image.open(io.BytesIO(data)).convert("RGB") for _, data in files[:16]]
    encoder.encode_images(images[:2])  # warm-up
    t = time.perf_counter()
    encoder.encode_images(images)
    enc_s = time.perf_counter() - t
    svc.add([Upload(files[0][1], files[0][0])])  # warm-up (text encoder, spaces)
    t = time.perf_counter()
    added = 0
    for start in range(1, n, 16):
        chunk = files[start : start + 16]
        added += sum(
            r.status == "added" for r in svc.add([Upload(d, name, tags=["bench"]) for name, d in chunk])
        )
    total_s = time.perf_counter() - t
    return {
        "images": added,
        "images_per_s": round(added / total_s, 2),
        "encoder_only_images_per_s": round(len(images) / enc_s, 2),
        "encoder": encoder.name,
        "mean_bytes": int(np.mean([len(d) for _, d in files])),
    }


class Vectors:
    def __init__(self, dim: int, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.dim = dim
        self.centres = self.rng.standard_normal((TOPICS, dim), dtype=np.float32)
        self.centres /= np.linalg.norm(self.centres, axis=1, keepdims=True)
        self.noise = float(np.sqrt((1 / 0.6**2 - 1) / dim))

    def draw(self, n: int) -> np.ndarray:
        v = self.centres[self.rng.integers(0, TOPICS, n)] + self.noise * self.rng.standard_normal(
            (n, self.dim), dtype=np.float32
        )
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def load_rows(db: Database, space: Any, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    gen = Vectors(space.dim)
    vecs = gen.draw(n)
    tags = gen.rng.integers(0, TAGS, n)
    seconds = gen.rng.integers(0, DAYS * 86400, n)
    with db.connection() as conn:
        start_row = conn.execute("SELECT coalesce(max(id), 0) FROM images").fetchone()
        first = int(start_row[0]) + 1 if start_row else 1
        ids = np.arange(first, first + n)

        def image_rows() -> Any:
            for j in range(n):
                sha = hashlib.sha256(f"bench-{j}".encode()).hexdigest()
                yield (
                    int(ids[j]),
                    sha,
                    "JPEG",
                    "image/jpeg",
                    "jpg",
                    100_000,
                    640,
                    480,
                    [f"tag{int(tags[j])}"],
                    T0 + timedelta(seconds=int(seconds[j])),
                )

        cols = ["id", "sha256", "format", "mime", "ext", "bytes", "width", "height", "tags", "created_at"]
        t = time.perf_counter()
        copy_rows(conn, "images", cols, image_rows())
        conn.execute("SELECT setval('images_id_seq', %s)", (int(ids[-1]),))
        conn.execute(f"DROP INDEX IF EXISTS {space.table}_embedding_hnsw")
        copy_rows(
            conn,
            space.table,
            ["image_id", "embedding"],
            ((int(i), v) for i, v in zip(ids, vecs, strict=True)),
        )
        log(f"COPY {n} rows: {time.perf_counter() - t:.1f}s")
    with db.connection() as conn:
        conn.execute(f"ANALYZE images; ANALYZE {space.table}")
    t = time.perf_counter()
    with db.connection() as conn:
        create_hnsw_index(conn, space.table)
    log(f"HNSW build: {time.perf_counter() - t:.1f}s")
    return ids, vecs, tags, seconds


def bench_search(svc: Any, n_rows: int, n_queries: int) -> dict[str, Any]:
    from hanseek.images.repo import ImageFilters

    t = time.perf_counter()
    ids, vecs, tags, seconds = load_rows(svc.db, svc.image_space, n_rows)
    load_s = time.perf_counter() - t
    gen = Vectors(svc.image_space.dim, seed=1)
    gen.centres = Vectors(svc.image_space.dim, seed=0).centres  # same topics as the stored vectors
    scenarios: dict[str, tuple[ImageFilters, np.ndarray]] = {
        "unfiltered": (ImageFilters(), np.ones(n_rows, dtype=bool)),
        "one_tag": (ImageFilters(tags=("tag7",)), tags == 7),
        "30_days": (
            ImageFilters(created_from=T0 + timedelta(days=60), created_to=T0 + timedelta(days=90)),
            (seconds >= 60 * 86400) & (seconds < 90 * 86400),
        ),
    }
    out: dict[str, Any] = {"rows": n_rows, "dim": svc.image_space.dim, "load_and_index_s": round(load_s, 1)}
    for name, (filters, mask) in scenarios.items():
        queries = gen.draw(n_queries)
        for path in ("exact", "hnsw"):  # warm caches and plans before timing
            svc._fuse(
                [(svc.image_space, queries[0], "image")], k=K, min_score=None, filters=filters, path=path
            )
        times: dict[str, list[float]] = {"exact": [], "hnsw": [], "auto": []}
        recall: dict[str, list[float]] = {"hnsw": [], "auto": []}
        exact_ok = 0
        auto_paths: list[str] = []
        for q in queries:
            got: dict[str, list[int]] = {}
            for path in ("exact", "hnsw", "auto"):
                t = time.perf_counter()
                res = svc._fuse(
                    [(svc.image_space, q, "image")], k=K, min_score=None, filters=filters, path=path
                )
                times[path].append(time.perf_counter() - t)
                got[path] = [h.image["id"] for h in res.hits]
                if path == "auto":
                    auto_paths.append(res.paths[svc.image_space.name])
            cand = np.flatnonzero(mask)
            brute = ids[cand[np.argsort(-(vecs[cand] @ q), kind="stable")[:K]]].tolist()
            exact_ok += got["exact"] == brute
            for path in ("hnsw", "auto"):
                recall[path].append(len(set(got[path]) & set(got["exact"])) / K)
        exact_p50 = float(np.median(times["exact"]))
        entry: dict[str, Any] = {
            "candidates": int(mask.sum()),
            "exact_equals_numpy": f"{exact_ok}/{n_queries}",
            "auto_chose": {p: auto_paths.count(p) for p in sorted(set(auto_paths))},
        }
        for path in ("exact", "hnsw", "auto"):
            entry[path] = percentiles_ms(times[path]) | {
                "p50_vs_exact": round(float(np.median(times[path])) / exact_p50, 3)
            }
            if path in recall:
                entry[path][f"recall@{K}"] = round(float(np.mean(recall[path])), 3)
        out[name] = entry
        log(f"{name}: exact p50 {entry['exact']['p50_ms']} ms, hnsw p50 {entry['hnsw']['p50_ms']} ms")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--ingest-images", type=int, default=48)
    args = ap.parse_args()
    from hanseek.encoders.registry import load_text_encoder
    from hanseek.images.service import ImageService

    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    text_encoder = load_text_encoder(load_settings())  # the converted e5-small under ./data/models
    root = Path(tempfile.mkdtemp(prefix="hanseek-bench-images-"))
    settings = Settings(data_dir=root, database_url=None, pool_min_size=1, pool_max_size=2)
    settings.ensure_dirs()
    result: dict[str, Any] = {"benchmark": "images"}
    try:
        db = Database.open(settings)
        try:
            db.migrate()
            svc = ImageService.build(db, settings, text_encoder=lambda: text_encoder)
            log("ingest")
            result["ingest"] = bench_ingest(svc, args.ingest_images)
            log(f"search at {args.rows} vectors")
            result["search"] = bench_search(svc, args.rows, args.queries)
        finally:
            stop_server(settings.pgdata_dir, immediate=True)  # throw-away data: skip the checkpoint
            db.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["total_seconds"] = round(time.perf_counter() - t0, 1)
    # Other work on the machine inflates latencies: report how busy it was.
    result["load_average"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    emit(result)


if __name__ == "__main__":
    main()
