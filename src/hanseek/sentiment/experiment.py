"""Cross-domain experiment: does a model trained on one review domain classify the others, and does
training on all domains help?

One model per domain and one on all domains together; each is scored on every domain's held-out test
split. Caps (`train_size` per domain, `test_size` per domain) are applied as stratified samples with
fixed seeds, and the "all" model trains on exactly the union of the per-domain training samples.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from hanseek.files import shared_mode, write_text_atomic
from hanseek.sentiment.datasets import DomainData, Reviews, concat
from hanseek.sentiment.training import AnalyzerFactory, Say, TrainOptions, accuracy, evaluate, fit

ALL = "all"


@dataclass
class ExperimentResult:
    kind: str
    domains: list[str]
    train_sets: list[str]
    matrix: dict[str, dict[str, float]]  # train set -> test domain -> accuracy
    sizes: dict[str, dict[str, int]]  # train set -> {"train", "dev"}; "test/<domain>" -> {"test"}
    seconds: dict[str, float]
    config: dict[str, Any]
    notes: list[str]
    created: str = dataclasses.field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _EmbeddingCache:
    """Frozen-encoder vectors by text, so the per-domain and all-domain heads share one pass."""

    def __init__(self, base_dir: Path | str, opts: TrainOptions, say: Say) -> None:
        from hanseek.sentiment.transformer import TransformerClassifier

        self.model = TransformerClassifier.from_base(base_dir, opts.transformer)
        if opts.transformer.freeze_layers is not None:
            self.model.encoder_layers()  # refuses a freeze_layers the encoder cannot honour, before any work
        self.vectors: dict[str, np.ndarray] = {}
        self.say = say

    def __call__(self, texts: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        step = 256
        for i in range(0, len(todo), step):
            chunk = todo[i : i + step]
            self.vectors.update(zip(chunk, self.model.embed(chunk), strict=True))
            self.say("encode (frozen encoder)", min(i + step, len(todo)), len(todo))
        return (
            np.stack([self.vectors[t] for t in texts]) if texts else np.zeros((0, self.model.dim), np.float32)
        )


def run(
    data: Sequence[DomainData],
    opts: TrainOptions,
    *,
    analyzer_factory: AnalyzerFactory,
    base_model_dir: Any = None,
    test_size: int | None = None,
    say: Say | None = None,
) -> ExperimentResult:
    report = say or (lambda _p, _d, _t: None)
    domains = [d.name for d in data]
    seed = opts.seed
    trains = {d.name: d.train.sample(opts.train_size, seed) for d in data}
    devs = {d.name: d.dev.sample(opts.dev_size, seed + 2) for d in data}
    tests = {d.name: d.test.sample(test_size, seed + 3) for d in data}
    sets: dict[str, tuple[Reviews, Reviews]] = {n: (trains[n], devs[n]) for n in domains}
    if len(data) > 1:
        sets[ALL] = (
            concat(trains.values(), ALL),
            concat(devs.values(), ALL),
        )
    uncapped = dataclasses.replace(opts, train_size=None, dev_size=None)
    frozen = opts.kind == "transformer" and opts.transformer.freeze_layers is None
    cache = _EmbeddingCache(base_model_dir(opts.transformer.base_model), opts, report) if frozen else None
    morph_cache: dict[str, str] = {}

    matrix: dict[str, dict[str, float]] = {}
    sizes: dict[str, dict[str, int]] = {}
    seconds: dict[str, float] = {}
    for name, (tr, dv) in sets.items():
        report(f"train on {name}", 0, 0)
        t0 = time.perf_counter()
        fitted = fit(
            uncapped,
            tr,
            dv,
            analyzer_factory=analyzer_factory,
            base_model_dir=base_model_dir,
            say=report,
            morph_cache=morph_cache,
            embeddings=cache,
        )
        report(f"evaluate {name}", 0, 0)
        if cache is not None:
            model: Any = fitted.model
            row = {
                d: round(accuracy(model.proba_from_embeddings(cache(t.texts)), t.labels), 4)
                for d, t in tests.items()
            }
        else:
            row = {
                d.removeprefix("test/"): a
                for d, a in evaluate(fitted.model, {f"test/{k}": v for k, v in tests.items()}).items()
            }
        matrix[name] = row
        sizes[name] = {"train": fitted.train_size, "dev": fitted.dev_size}
        seconds[name] = round(time.perf_counter() - t0, 1)
        del fitted
    for d, t in tests.items():
        sizes[f"test/{d}"] = {"test": len(t)}
    notes = [f"{d.name}: {'; '.join(d.notes)}" for d in data]
    if opts.kind == "baseline" and opts.baseline_uses_dev:
        notes.append("baseline: fixed hyper-parameters, so it trains on train + dev")
    if frozen:
        notes.append(
            "transformer: encoder frozen, logistic-regression head on its sentence vectors (C picked on dev)"
        )
    config = {
        **uncapped.config_json(),
        "train_size_cap_per_domain": opts.train_size,
        "dev_size_cap_per_domain": opts.dev_size,
        "test_size_cap_per_domain": test_size,
        "seed": seed,
        "machine": {"cpus": _cpus(), "python": platform.python_version()},
    }
    return ExperimentResult(opts.kind, domains, list(sets), matrix, sizes, seconds, config, notes)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# ---------------------------------------------------------------- reports


def to_markdown(res: ExperimentResult) -> str:
    head = "| trained on \\ tested on | " + " | ".join(res.domains) + " | train size | seconds |"
    sep = "|---|" + "---:|" * (len(res.domains) + 2)
    rows = []
    for name in res.train_sets:
        cells = []
        for d in res.domains:
            acc = res.matrix[name][d]
            cells.append(f"**{acc:.4f}**" if d == name else f"{acc:.4f}")
        rows.append(
            f"| {name} | " + " | ".join(cells) + f" | {res.sizes[name]['train']:,} | {res.seconds[name]} |"
        )
    tests = ", ".join(f"{d} {res.sizes[f'test/{d}']['test']:,}" for d in res.domains)
    lines = [
        f"# Sentiment cross-domain experiment: {res.kind}",
        "",
        f"Accuracy on each domain's held-out test split (rows: training data; bold: in-domain). "
        f"Created {res.created}.",
        "",
        head,
        sep,
        *rows,
        "",
        f"Test sizes: {tests}.",
        "",
        "## Setup",
        "",
        *[f"- {n}" for n in res.notes],
        "",
        "```json",
        json.dumps(res.config, indent=2, ensure_ascii=False),
        "```",
        "",
    ]
    return "\n".join(lines)


def heatmap(res: ExperimentResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.array([[res.matrix[r][c] for c in res.domains] for r in res.train_sets])
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(res.domains), 1.2 + 0.8 * len(res.train_sets)))
    im = ax.imshow(values, cmap="viridis", vmin=max(0.5, float(values.min()) - 0.02), vmax=1.0)
    ax.set_xticks(range(len(res.domains)), labels=res.domains)
    ax.set_yticks(range(len(res.train_sets)), labels=res.train_sets)
    ax.set_xlabel("tested on")
    ax.set_ylabel("trained on")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(
                j,
                i,
                f"{values[i, j]:.3f}",
                ha="center",
                va="center",
                color="white" if values[i, j] < 0.8 else "black",
            )
    ax.set_title(f"sentiment accuracy ({res.kind})")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report_paths(out_dir: Path, stem: str) -> tuple[Path, Path, Path]:
    """The report's .md, .json and .png; checked (and the folder made) before a run, so a bad
    `--out`/`--stem` does not cost the experiment."""
    if not stem or "/" in stem or stem in (".", ".."):
        raise ValueError(f"report name {stem!r} must be a plain file name")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / f"{stem}.md", out_dir / f"{stem}.json", out_dir / f"{stem}.png"
    for p in paths:
        if p.is_dir():
            raise ValueError(f"{p} is a directory")
    return paths


def write_report(res: ExperimentResult, out_dir: Path, stem: str) -> list[Path]:
    """Write all three files, or none: each goes to a temporary beside it, and they are renamed into
    place once the heatmap (the step most likely to fail) is drawn."""
    md, js, png = report_paths(out_dir, stem)
    tmp_png = png.with_name(f".{png.name}.tmp.png")
    try:
        heatmap(res, tmp_png)
        write_text_atomic(md, to_markdown(res) + f"\n![heatmap]({png.name})\n")
        write_text_atomic(js, json.dumps(res.to_json(), indent=2, ensure_ascii=False) + "\n")
        os.chmod(tmp_png, shared_mode())
        os.replace(tmp_png, png)
    finally:
        tmp_png.unlink(missing_ok=True)
    return [md, js, png]
