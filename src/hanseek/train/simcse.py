"""SimCSE (Gao et al. 2021) for any transformers text encoder, on CPU.

Unsupervised: each sentence goes through the encoder twice in one batch; dropout makes the two
vectors differ, and a cross-entropy over cosine similarities / temperature pulls the two views
together while pushing away the other sentences of the batch (in-batch negatives).
Supervised: (anchor, positive[, hard negative]) pairs; the other positives and negatives of the
batch are the negatives.

Pooling and prompts are the ones the encoder uses at inference (mean over all tokens, e5's
"query: "), so what is trained is exactly what gets served. With gradient accumulation the loss is
still computed per micro-batch: accumulation smooths the update, it does not add negatives.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hanseek.encoders.base import Kind, TextEncoder


@dataclass
class SimCSEConfig:
    max_length: int = 32
    batch_size: int = 32
    lr: float = 3e-5
    steps: int = 300
    temperature: float = 0.05
    freeze_word_embeddings: bool = True
    grad_accum: int = 1
    eval_every: int = 50
    seed: int = 42
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    prompt_kind: Kind = "query"
    threads: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StepInfo:
    step: int
    loss: float
    score: float | None = None
    metrics: dict[str, Any] | None = None


@dataclass
class TrainResult:
    model: Any
    tokenizer: Any
    best_step: int
    best_score: float | None
    history: list[StepInfo] = field(default_factory=list)
    seconds: float = 0.0
    examples: int = 0
    trainable_params: int = 0
    resumed_from: int = 0


Evaluator = Callable[[TextEncoder], tuple[float, dict[str, Any]]]
Pair = tuple[str, str] | tuple[str, str, str]


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def mean_pool(hidden: Any, mask: Any) -> Any:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def contrastive_loss(anchors: Any, candidates: Any, temperature: float) -> Any:
    """Cross-entropy of each anchor against all candidates; candidate i is anchor i's positive."""
    import torch
    import torch.nn.functional as F

    sims = F.normalize(anchors, dim=-1) @ F.normalize(candidates, dim=-1).T / temperature
    return F.cross_entropy(sims, torch.arange(anchors.shape[0], device=sims.device))


class _Batches:
    """Endless shuffled batches over a list (reshuffled every epoch, reproducible from the seed)."""

    def __init__(self, items: Sequence[Any], batch_size: int, seed: int) -> None:
        if len(items) < 2:
            raise ValueError("SimCSE needs at least two training examples")
        self.items = list(items)
        self.batch_size = min(batch_size, len(self.items))
        self.rng = random.Random(seed)
        self.order: list[int] = []
        self.epoch = 0

    def next(self) -> list[Any]:
        if len(self.order) < self.batch_size:
            fresh = list(range(len(self.items)))
            self.rng.shuffle(fresh)
            self.order += fresh
            self.epoch += 1
        take, self.order = self.order[: self.batch_size], self.order[self.batch_size :]
        return [self.items[i] for i in take]

    def state(self) -> dict[str, Any]:
        return {"order": list(self.order), "epoch": self.epoch, "rng": self.rng.getstate()}

    def restore(self, state: dict[str, Any]) -> None:
        self.order, self.epoch = list(state["order"]), int(state["epoch"])
        self.rng.setstate(state["rng"])


def _rng_states() -> dict[str, Any]:
    import torch

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    # numpy's key array as a list: a checkpoint holds only what torch's weights_only loader accepts
    numpy_state = (kind, [int(k) for k in keys], pos, has_gauss, gauss)
    return {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}


def _restore_rngs(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])


def train_simcse(
    net: Any,
    tokenizer: Any,
    config: SimCSEConfig,
    *,
    texts: Sequence[str] | None = None,
    pairs: Sequence[Pair] | None = None,
    prompts: dict[str, str] | None = None,
    evaluator: Evaluator | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    name: str = "simcse",
    checkpoint: Path | None = None,
    run_key: str = "",
) -> TrainResult:
    """Fine-tune `net` in place (unsupervised from `texts`, or supervised from `pairs`) and return it
    with the best evaluated weights restored (step 0 = the untouched model counts as a candidate).

    With `checkpoint`, the run's state is written there every `eval_every` steps, and a run started
    with a checkpoint of the same run (same config, data and `run_key`: the base model and validation
    data) on disk resumes from it; the caller removes the file once the result is saved."""
    import torch

    from hanseek.encoders.transformer import TransformersTextEncoder
    from hanseek.train import checkpoint as ckpt

    if (texts is None) == (pairs is None):
        raise ValueError("give either texts (unsupervised) or pairs (supervised)")
    if config.grad_accum < 1 or config.steps < 1 or config.batch_size < 2:
        raise ValueError("steps and grad_accum must be >= 1 and batch_size >= 2")
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    prefix = (prompts or {}).get(config.prompt_kind, "")

    if config.freeze_word_embeddings:
        emb = net.get_input_embeddings()
        emb.weight.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    warmup = max(1, int(config.steps * config.warmup_ratio))

    def lr_factor(step: int) -> float:  # linear warm-up, then linear decay to zero
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (config.steps - step) / max(1, config.steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    batches = _Batches(texts if texts is not None else pairs or [], config.batch_size, config.seed)

    def embed(batch: list[str]) -> Any:
        enc = tokenizer(
            [prefix + t for t in batch],
            truncation=True,
            max_length=config.max_length,
            padding=True,
            return_tensors="pt",
        )
        out = net(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        return mean_pool(out, enc["attention_mask"])

    def micro_loss() -> Any:
        batch = batches.next()
        if texts is not None:
            z = embed(batch + batch)  # one pass, two dropout masks per sentence
            b = len(batch)
            return contrastive_loss(z[:b], z[b:], config.temperature)
        anchors = [p[0] for p in batch]
        cands = [p[1] for p in batch] + [p[2] for p in batch if len(p) == 3]
        z = embed(anchors + cands)
        return contrastive_loss(z[: len(anchors)], z[len(anchors) :], config.temperature)

    def evaluate(step: int, loss: float) -> StepInfo:
        info = StepInfo(step, loss)
        if evaluator is not None:
            enc = TransformersTextEncoder.from_model(
                net, tokenizer, name=name, prompts=prompts, max_length=None, batch_size=64
            )
            info.score, info.metrics = evaluator(enc)
            if info.score is not None and not math.isfinite(info.score):
                # `x > nan` is always False: a NaN at step 0 would have been kept whatever followed.
                info.score = None
        return info

    run_config = {k: v for k, v in config.as_dict().items() if k != "threads"}
    key = ckpt.fingerprint(
        {**run_config, "evaluated": evaluator is not None, "prompt": prefix}, run_key, batches.items
    )
    saved = ckpt.load(checkpoint, key) if checkpoint is not None else None
    start = time.monotonic()
    if saved is None:
        first = evaluate(0, float("nan"))
        history = [first]
        if on_step:
            on_step(first)
        best_score, best_step = first.score, 0
        best_state = {k: v.detach().clone() for k, v in net.state_dict().items() if k in trainable}
        running: list[float] = []
        done, earlier_seconds = 0, 0.0
    else:
        net.load_state_dict(saved["weights"], strict=False)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        batches.restore(saved["batches"])
        _restore_rngs(saved["rngs"])
        history = [StepInfo(**h) for h in saved["history"]]
        best_score, best_step, best_state = saved["best_score"], saved["best_step"], saved["best_state"]
        running = list(saved["running"])
        done, earlier_seconds = int(saved["step"]), float(saved["seconds"])
        if on_step:
            on_step(StepInfo(done, running[-1] if running else float("nan")))

    def save_checkpoint(step: int) -> None:
        assert checkpoint is not None
        ckpt.save(
            checkpoint,
            {
                "fingerprint": key,
                "step": step,
                "weights": {k: v for k, v in net.state_dict().items() if k in trainable},
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "batches": batches.state(),
                "rngs": _rng_states(),
                "history": [asdict(h) for h in history],
                "best_score": best_score,
                "best_step": best_step,
                "best_state": best_state,
                "running": running,
                "seconds": earlier_seconds + time.monotonic() - start,
            },
        )

    net.train()
    for step in range(done + 1, config.steps + 1):
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(config.grad_accum):
            loss = micro_loss() / config.grad_accum
            loss.backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        if not math.isfinite(total):
            raise FloatingPointError(f"loss became {total} at step {step}; lower the learning rate")
        running.append(total)
        info = StepInfo(step, total)
        if evaluator is not None and (step % config.eval_every == 0 or step == config.steps):
            info = evaluate(step, float(np.mean(running[-config.eval_every :])))
            net.train()
            if info.score is not None and (best_score is None or info.score > best_score):
                best_score, best_step = info.score, step
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items() if k in trainable}
            history.append(info)
        if checkpoint is not None and step % config.eval_every == 0 and step < config.steps:
            save_checkpoint(step)
        if on_step:
            on_step(info)

    if evaluator is not None and best_score is not None:
        net.load_state_dict(best_state, strict=False)
    else:  # no step could be scored: nothing to choose by, as without validation data
        best_step = config.steps
    net.eval()
    return TrainResult(
        model=net,
        tokenizer=tokenizer,
        best_step=best_step,
        best_score=best_score,
        history=history,
        seconds=round(earlier_seconds + time.monotonic() - start, 1),
        examples=len(batches.items),
        trainable_params=sum(p.numel() for p in params),
        resumed_from=done,
    )
