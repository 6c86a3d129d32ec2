"""SimCSE on a tiny random BERT: the objective, freezing, checkpoint keeping, reproducibility."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hanseek.encoders.base import TextEncoder
from hanseek.encoders.transformer import load_hf
from hanseek.train.checkpoint import CheckpointMismatch
from hanseek.train.simcse import SimCSEConfig, StepInfo, contrastive_loss, train_simcse
from tests.fixtures.encoders import TINY_TEXTS

TEXTS = [f"{t} {i}" for i, t in enumerate(TINY_TEXTS * 4)]


def _cfg(**kw: Any) -> SimCSEConfig:
    base: dict[str, Any] = {
        "max_length": 24,
        "batch_size": 8,
        "lr": 1e-3,
        "steps": 12,
        "eval_every": 4,
        "seed": 7,
    }
    base.update(kw)
    return SimCSEConfig(**base)


def test_contrastive_loss_value() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = contrastive_loss(a, a, temperature=0.5)
    expected = -math.log(math.exp(2) / (math.exp(2) + math.exp(0)))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    swapped = contrastive_loss(a, a.flip(0), temperature=0.05)
    assert float(swapped) > 10


def test_unsupervised_training_learns_and_freezes_embeddings(tiny_bert_dir: Path) -> None:
    tok, net, _ = load_hf(tiny_bert_dir)
    emb_before = net.get_input_embeddings().weight.detach().clone()
    layer_before = net.encoder.layer[0].attention.self.query.weight.detach().clone()
    steps: list[StepInfo] = []
    result = train_simcse(net, tok, _cfg(steps=30, eval_every=100), texts=TEXTS, on_step=steps.append)
    assert [s.step for s in steps] == list(range(31))  # step 0 (before training) then every step
    losses = [s.loss for s in steps[1:]]
    assert np.mean(losses[-8:]) < np.mean(losses[:8])  # the two dropout views get easier to match
    assert torch.equal(net.get_input_embeddings().weight, emb_before)
    assert not torch.equal(net.encoder.layer[0].attention.self.query.weight, layer_before)
    assert result.best_step == 30 and not net.training
    assert result.trainable_params < sum(p.numel() for p in net.parameters())


def test_best_checkpoint_is_restored(tiny_bert_dir: Path) -> None:
    tok, net, _ = load_hf(tiny_bert_dir)
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    calls: list[int] = []

    def worse_every_time(enc: TextEncoder) -> tuple[float, dict[str, Any]]:
        calls.append(1)
        assert enc.encode(["검증 문장"]).shape == (1, enc.dim)
        return -float(len(calls)), {"calls": len(calls)}

    result = train_simcse(net, tok, _cfg(), texts=TEXTS, evaluator=worse_every_time)
    assert len(calls) == 4  # step 0, 4, 8, 12
    assert result.best_step == 0 and result.best_score == -1.0
    for k, v in net.state_dict().items():
        assert torch.equal(v, initial[k]), k


def test_a_nan_validation_score_is_no_candidate(tiny_bert_dir: Path) -> None:
    """`x > nan` is always False: a NaN at step 0 (Spearman of tied values) was kept whatever the
    later steps scored, and the NaN went into hanseek.json and the catalogue (not JSON)."""
    scores = iter([math.nan, 0.2, 0.5, 0.3])

    def nan_first(enc: TextEncoder) -> tuple[float, dict[str, Any]]:
        return next(scores), {}

    tok, net, _ = load_hf(tiny_bert_dir)
    result = train_simcse(net, tok, _cfg(), texts=TEXTS, evaluator=nan_first)
    assert result.best_step == 8 and result.best_score == 0.5
    assert [h.score for h in result.history] == [None, 0.2, 0.5, 0.3]

    tok, net, _ = load_hf(tiny_bert_dir)
    result = train_simcse(net, tok, _cfg(), texts=TEXTS, evaluator=lambda enc: (math.nan, {}))
    assert result.best_score is None and result.best_step == 12  # nothing to choose by: the last step
    assert all(h.score is None for h in result.history)


def test_supervised_pairs_and_grad_accumulation(tiny_bert_dir: Path) -> None:
    tok, net, _ = load_hf(tiny_bert_dir)
    pairs = [(TINY_TEXTS[i], TINY_TEXTS[i] + " 정말", TINY_TEXTS[(i + 3) % 10]) for i in range(10)]
    result = train_simcse(net, tok, _cfg(steps=4, grad_accum=2, eval_every=2), pairs=pairs)
    assert result.examples == 10 and all(math.isfinite(h.loss) for h in result.history[1:])


def test_same_seed_same_model(tiny_bert_dir: Path) -> None:
    weights = []
    for _ in range(2):
        tok, net, _ = load_hf(tiny_bert_dir)
        train_simcse(net, tok, _cfg(steps=5), texts=TEXTS)
        weights.append(net.encoder.layer[1].output.dense.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def test_rejects_bad_arguments(tiny_bert_dir: Path) -> None:
    tok, net, _ = load_hf(tiny_bert_dir)
    with pytest.raises(ValueError, match="either texts"):
        train_simcse(net, tok, _cfg(), texts=TEXTS, pairs=[("a", "b")])
    with pytest.raises(ValueError, match="at least two"):
        train_simcse(net, tok, _cfg(), texts=["only one"])


def _pair_cosine(enc: TextEncoder) -> tuple[float, dict[str, Any]]:
    v = enc.encode([TINY_TEXTS[0], TINY_TEXTS[1]])
    return float(v[0] @ v[1]), {}


class _Killed(Exception):
    pass


def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    tok, net, _ = load_hf(tiny_bert_dir)
    whole = train_simcse(
        net, tok, _cfg(), texts=TEXTS, evaluator=_pair_cosine, checkpoint=tmp_path / "whole.pt"
    )
    expected = {k: v.clone() for k, v in net.state_dict().items()}

    def kill_after_step_9(info: StepInfo) -> None:
        if info.step == 9:
            raise _Killed

    tok, net, _ = load_hf(tiny_bert_dir)
    with pytest.raises(_Killed):
        train_simcse(
            net, tok, _cfg(), texts=TEXTS, evaluator=_pair_cosine,
            checkpoint=tmp_path / "run.pt", on_step=kill_after_step_9,
        )  # fmt: skip
    assert (tmp_path / "run.pt").is_file()  # written at step 8 (eval_every 4)

    tok, net, _ = load_hf(tiny_bert_dir)  # a new process: the untouched base model again
    seen: list[int] = []
    resumed = train_simcse(
        net, tok, _cfg(), texts=TEXTS, evaluator=_pair_cosine,
        checkpoint=tmp_path / "run.pt", on_step=lambda i: seen.append(i.step),
    )  # fmt: skip
    assert resumed.resumed_from == 8 and seen == [8, 9, 10, 11, 12]
    assert (resumed.best_step, resumed.best_score) == (whole.best_step, whole.best_score)
    assert [(h.step, h.score) for h in resumed.history] == [(h.step, h.score) for h in whole.history]
    for k, v in net.state_dict().items():
        assert torch.equal(v, expected[k]), k


def test_a_checkpoint_of_another_run_is_refused(tiny_bert_dir: Path, tmp_path: Path) -> None:
    tok, net, _ = load_hf(tiny_bert_dir)
    train_simcse(net, tok, _cfg(steps=8), texts=TEXTS, checkpoint=tmp_path / "run.pt")
    for other in ({"cfg": _cfg(steps=8, lr=5e-4)}, {"cfg": _cfg(steps=8), "texts": TEXTS[:-1]}):
        tok, net, _ = load_hf(tiny_bert_dir)
        with pytest.raises(CheckpointMismatch, match="--restart"):
            train_simcse(
                net, tok, other["cfg"], texts=other.get("texts", TEXTS), checkpoint=tmp_path / "run.pt"
            )
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointMismatch, match="cannot be read"):
        train_simcse(net, tok, _cfg(steps=8), texts=TEXTS, checkpoint=tmp_path / "broken.pt")
