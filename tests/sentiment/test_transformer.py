"""Transformer classifier: tiny random BERT fine-tunes, saves and loads; e5-small linear probe learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hanseek.sentiment.datasets import DomainData
from hanseek.sentiment.training import accuracy
from hanseek.sentiment.transformer import TransformerClassifier, TransformerConfig, _window_budget

pytestmark = pytest.mark.slow


def test_tiny_fine_tune_save_load(tiny_bert_dir: Path, game: DomainData, tmp_path: Path) -> None:
    tr, dv = game.train.sample(160, 1), game.dev.sample(40, 2)
    cfg = TransformerConfig(
        base_model=str(tiny_bert_dir), freeze_layers=1, epochs=2, batch_size=16, max_length=48
    )
    clf = TransformerClassifier.from_base(tiny_bert_dir, cfg)
    before = [p.detach().clone() for p in clf.net.encoder.layer[1].parameters()]
    frozen_before = [p.detach().clone() for p in clf.net.encoder.layer[0].parameters()]
    clf.fit(tr.texts, tr.labels, dev=(dv.texts, dv.labels))
    assert [e["epoch"] for e in clf.info["epochs"]] == [1, 2]
    assert all(np.isfinite(e["loss"]) and 0 <= e["dev_accuracy"] <= 1 for e in clf.info["epochs"])
    # Layer 1 was trained, layer 0 (and the embeddings) stayed frozen.
    assert any(
        not np.allclose(a, b) for a, b in zip(before, clf.net.encoder.layer[1].parameters(), strict=True)
    )
    assert all(
        np.allclose(a, b) for a, b in zip(frozen_before, clf.net.encoder.layer[0].parameters(), strict=True)
    )
    texts = ["재밌다", "별로", "버그가 너무 많아요 환불"]
    p = clf.predict_proba(texts)
    clf.save(tmp_path / "m")
    assert {f.name for f in (tmp_path / "m").iterdir()} == {"encoder", "head.safetensors", "transformer.json"}
    loaded = TransformerClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict_proba(texts), p, atol=1e-5)
    assert loaded.config == cfg


def test_frozen_probe_on_e5_learns(e5_model_dir: Path, movie: DomainData) -> None:
    tr, dv, te = movie.train.sample(300, 1), movie.dev.sample(100, 2), movie.test.sample(150, 3)
    clf = TransformerClassifier.from_base(e5_model_dir, TransformerConfig(max_length=64))
    clf.fit(tr.texts, tr.labels, dev=(dv.texts, dv.labels))
    assert clf.info["probe_C"] in (0.1, 0.3, 1.0, 3.0, 10.0)
    # 300 training reviews, frozen encoder: ~0.75 measured, chance 0.5.
    assert accuracy(clf.predict_proba(te.texts), te.labels) > 0.65


def test_fine_tune_reads_the_vector_it_serves(tiny_bert_dir: Path) -> None:
    """Training pools every window of a long review as `embed` does, not only the first window."""
    import torch

    clf = TransformerClassifier.from_base(
        tiny_bert_dir, TransformerConfig(base_model=str(tiny_bert_dir), freeze_layers=1, max_length=16)
    )
    texts = ["짧은 리뷰", "처음에는 정말 재미있었는데 " * 6 + "마지막 결말이 너무 실망스러웠고 돈이 아까웠다"]
    win = clf.encoder.windows.windows(clf.encoder.prefixed(texts, "query"))
    groups = [[w for w, o in enumerate(win.owner.tolist()) if o == t] for t in range(len(texts))]
    assert len(groups[1]) > 2  # the long review spans several windows
    with torch.no_grad():
        trained = clf._text_vectors(win, groups).numpy()
    served = clf.embed(texts) / np.sqrt(clf.dim)
    np.testing.assert_allclose(trained, served, atol=1e-5)


def test_window_budget_keeps_reviews_whole_and_forward_passes_small() -> None:
    counts = [1, 1, 3, 1, 9, 1, 1]
    parts = _window_budget(counts, 4)
    assert parts == [slice(0, 2), slice(2, 4), slice(4, 5), slice(5, 7)]
    assert [i for p in parts for i in range(len(counts))[p]] == list(range(len(counts)))
    assert _window_budget([], 4) == [] and _window_budget([5], 4) == [slice(0, 1)]


def test_fine_tuning_trains_on_every_window_within_the_budget(
    tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = TransformerConfig(
        base_model=str(tiny_bert_dir), freeze_layers=1, max_length=16, batch_size=4, epochs=1
    )
    clf = TransformerClassifier.from_base(tiny_bert_dir, cfg)
    long_review = "처음에는 정말 재미있었는데 " * 6 + "마지막 결말이 너무 실망스러웠고 돈이 아까웠다"
    texts = ["재밌다", "별로", long_review, "최고의 영화", "지루했다", "또 보고 싶다"]
    n_long = len(clf.encoder.windows.windows(clf.encoder.prefixed([long_review], "query")).ids)
    assert n_long > cfg.batch_size  # the long review alone is over the budget
    seen: list[list[list[int]]] = []
    real = clf._text_vectors

    def spy(windows: object, groups: list[list[int]]) -> object:
        seen.append([list(g) for g in groups])
        return real(windows, groups)  # type: ignore[arg-type]

    monkeypatch.setattr(clf, "_text_vectors", spy)
    clf.fit(texts, np.array([1, 0, 0, 1, 0, 1]))
    groups = [g for call in seen for g in call]
    assert sorted(len(g) for g in groups) == sorted([1] * 5 + [n_long])  # every text once, whole
    assert all(sum(map(len, call)) <= cfg.batch_size or len(call) == 1 for call in seen)
    assert np.isfinite(clf.info["epochs"][0]["loss"])
