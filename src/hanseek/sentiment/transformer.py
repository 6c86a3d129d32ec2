"""Transformer review classifier: a TextEncoder model (default multilingual-e5-small) + a linear head.

The classifier reads exactly what the encoder serves: the mean-pooled, L2-normalised sentence vector
of "query: "-prefixed text (e5's prompt for classification), times a fixed scale, then one logit.
Two ways to train it:
- encoder fully frozen (`freeze_layers=None`, the CPU default): the vectors are computed once and the
  head is a logistic regression on them (convex, no learning rate to tune; C picked on the dev split);
- partly or fully unfrozen: the embeddings and the lowest `freeze_layers` layers stay fixed, the rest
  is fine-tuned with AdamW (linear warm-up and decay) starting from that linear-probe head (LP-FT,
  Kumar et al. 2022: fine-tuning from a fitted head distorts the pretrained features less).

Saved as a directory: ``encoder/`` (transformers model + tokenizer), ``head.safetensors``,
``transformer.json`` (the config), next to the card written by the registry.
"""

from __future__ import annotations

import json
import math
import random
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hanseek.encoders.pooling import Windows
from hanseek.sentiment.datasets import normalize_space
from hanseek.sentiment.modelfiles import reading

Progress = Callable[[str, int, int], None]  # (phase, done, total)

_HEAD = "head.safetensors"
_CONFIG = "transformer.json"
_ENCODER = "encoder"
_C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)


@dataclass(frozen=True)
class TransformerConfig:
    base_model: str = "e5-small"
    # None: the whole encoder is frozen (linear probe). N >= 0: embeddings + the lowest N layers frozen.
    freeze_layers: int | None = None
    max_length: int = 128
    epochs: int = 1
    batch_size: int = 32
    lr: float = 3e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    seed: int = 42
    prompt: str = "query: "
    C: float | None = None  # linear-probe regularisation; None = picked on dev from a small grid

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TransformerConfig:
        return cls(**data)


def _scale(dim: int) -> float:
    # Unit-length vectors have per-dimension values ~1/sqrt(dim); scaling back to ~1 keeps the head's
    # weights and learning rate in an ordinary range.
    return math.sqrt(dim)


def prepare_text(text: str) -> str:
    """The form a review is read in, in training and in serving alike: NFC, runs of white space as
    one space, no leading or trailing space (what `read_reviews` does to the training files). Until
    session 18 served texts went to the encoder as sent, so NFD or oddly spaced text scored otherwise."""
    return normalize_space(unicodedata.normalize("NFC", text))


def _set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _fit_probe(
    x: np.ndarray, y: np.ndarray, dev: tuple[np.ndarray, np.ndarray] | None, c: float | None
) -> tuple[np.ndarray, float, float, dict[str, float]]:
    """Logistic regression head: (weights [dim], bias, chosen C, dev accuracy per C)."""
    from sklearn.linear_model import LogisticRegression

    grid = (c,) if c is not None else (_C_GRID if dev is not None else (1.0,))
    best: tuple[float, float, Any] | None = None
    scores: dict[str, float] = {}
    for cand in grid:
        clf = LogisticRegression(C=cand, max_iter=2000).fit(x, y)
        acc = float((clf.predict(dev[0]) == dev[1]).mean()) if dev is not None else 0.0
        scores[str(cand)] = round(acc, 4)
        if best is None or acc > best[0]:
            best = (acc, cand, clf)
    assert best is not None
    clf = best[2]
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0]), float(best[1]), scores


def _window_budget(counts: Sequence[int], budget: int) -> list[slice]:
    """Consecutive runs of texts whose windows add up to at most `budget` (one text alone may be more)."""
    parts: list[slice] = []
    start = total = 0
    for i, n in enumerate(counts):
        if i > start and total + n > budget:
            parts.append(slice(start, i))
            start, total = i, 0
        total += n
    if start < len(counts):
        parts.append(slice(start, len(counts)))
    return parts


class TransformerClassifier:
    """Binary review classifier; `predict_proba` gives P(positive)."""

    kind = "transformer"

    def __init__(self, net: Any, tokenizer: Any, config: TransformerConfig) -> None:
        from hanseek.encoders.transformer import TransformersTextEncoder

        self.config = config
        self.net = net
        self.tokenizer = tokenizer
        self.encoder = TransformersTextEncoder.from_model(
            net,
            tokenizer,
            name=config.base_model,
            prompts={"query": config.prompt},
            max_length=config.max_length,
        )
        self.dim = int(net.config.hidden_size)
        self.weight = np.zeros(self.dim, dtype=np.float32)
        self.bias = 0.0
        self.info: dict[str, Any] = {}

    @classmethod
    def from_base(cls, model_dir: Path | str, config: TransformerConfig) -> TransformerClassifier:
        from hanseek.encoders.transformer import load_hf

        tokenizer, net, _ = load_hf(model_dir)
        return cls(net, tokenizer, config)

    # -- inference -----------------------------------------------------------------------------

    def embed(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Scaled unit vectors [n, dim] the head reads."""
        vecs = self.encoder.encode(list(texts), kind="query", batch_size=batch_size or self.config.batch_size)
        return vecs * np.float32(_scale(self.dim))

    def proba_from_embeddings(self, x: np.ndarray) -> np.ndarray:
        z = x @ self.weight + np.float32(self.bias)
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float32)
        return self.proba_from_embeddings(self.embed([prepare_text(t) for t in texts], batch_size))

    # -- training ------------------------------------------------------------------------------

    def fit(
        self,
        texts: Sequence[str],
        labels: np.ndarray,
        dev: tuple[Sequence[str], np.ndarray] | None = None,
        progress: Progress | None = None,
        embeddings: tuple[np.ndarray, np.ndarray | None] | None = None,
    ) -> TransformerClassifier:
        """Train on (texts, labels); `dev` picks the probe's C and is scored after each epoch.
        `embeddings` = precomputed (train, dev) vectors of the frozen base model (the experiment
        shares them between models)."""
        y = np.asarray(labels, dtype=np.int64)
        if len(np.unique(y)) != 2:
            raise ValueError("training data needs both positive and negative reviews")
        if self.config.freeze_layers is not None:
            self.encoder_layers()  # a freeze_layers the encoder cannot honour fails before any work
        texts = [prepare_text(t) for t in texts]
        if dev is not None:
            dev = ([prepare_text(t) for t in dev[0]], dev[1])
        _set_seed(self.config.seed)
        say = progress or (lambda _p, _d, _t: None)
        t0 = time.perf_counter()
        if embeddings is not None:
            x_train, x_dev = embeddings
        else:
            say("encode train", 0, len(texts))
            x_train = self.embed(texts)
            x_dev = self.embed(dev[0]) if dev is not None else None
            say("encode train", len(texts), len(texts))
        dev_xy = (x_dev, np.asarray(dev[1])) if dev is not None and x_dev is not None else None
        self.weight, self.bias, c, scores = _fit_probe(x_train, y, dev_xy, self.config.C)
        self.info = {
            "probe_C": c,
            "probe_dev_accuracy_by_C": scores,
            "probe_s": round(time.perf_counter() - t0, 2),
        }
        if self.config.freeze_layers is not None:
            self._fine_tune(texts, y, dev, say)
        self.info["train_s"] = round(time.perf_counter() - t0, 2)
        return self

    def encoder_layers(self) -> Any:
        """The encoder's layers; ValueError when `freeze_layers` cannot apply to them. Until session 18
        a freeze_layers above the layer count was taken as "all of them": no layer was fine-tuned."""
        freeze = self.config.freeze_layers
        assert freeze is not None
        layers = getattr(getattr(self.net, "encoder", None), "layer", None)
        if layers is None:
            raise ValueError("freeze_layers needs a BERT-style encoder (model.encoder.layer); use 'all'")
        if not 0 <= freeze <= len(layers):
            raise ValueError(
                f"freeze_layers is {freeze} but the encoder has {len(layers)} layers: "
                f"use 0 to {len(layers)}, or 'all' for a frozen encoder"
            )
        return layers

    def _trainable(self) -> list[Any]:
        freeze = self.config.freeze_layers
        assert freeze is not None
        layers = self.encoder_layers()
        for p in self.net.parameters():
            p.requires_grad = False
        for layer in layers[freeze:]:
            for p in layer.parameters():
                p.requires_grad = True
        return [p for p in self.net.parameters() if p.requires_grad]

    def _text_vectors(self, windows: Windows, groups: Sequence[Sequence[int]]) -> Any:
        """Unit vectors [len(groups), dim] with gradients: each group is one text's windows, pooled
        and combined as `hanseek.encoders.pooling` does at inference."""
        import torch
        import torch.nn.functional as F

        flat = [w for group in groups for w in group]
        owner = torch.tensor([g for g, group in enumerate(groups) for _ in group], dtype=torch.long)
        weight = torch.tensor([float(windows.weight[w]) for w in flat])
        width = max(len(windows.ids[w]) for w in flat)
        input_ids = torch.full((len(flat), width), self.encoder.windows.pad_id, dtype=torch.long)
        mask = torch.zeros((len(flat), width), dtype=torch.long)
        for r, w in enumerate(flat):
            input_ids[r, : len(windows.ids[w])] = torch.tensor(windows.ids[w])
            mask[r, : len(windows.ids[w])] = 1
        hidden = self.net(input_ids=input_ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        means = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        acc = torch.zeros((len(groups), means.shape[1]), dtype=means.dtype)
        acc = acc.index_add(0, owner, means * weight.to(means.dtype)[:, None])
        return F.normalize(acc, dim=-1)

    def _fine_tune(
        self, texts: Sequence[str], y: np.ndarray, dev: tuple[Sequence[str], np.ndarray] | None, say: Progress
    ) -> None:
        import torch
        import torch.nn.functional as F

        cfg = self.config
        enc_params = self._trainable()
        head = torch.nn.Linear(self.dim, 1)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(self.weight)[None, :])
            head.bias.fill_(self.bias)
        params: list[Any] = [*head.parameters(), *enc_params]
        groups: list[dict[str, Any]] = [{"params": list(head.parameters()), "lr": cfg.head_lr}]
        if enc_params:
            groups.append({"params": enc_params, "lr": cfg.lr})
        opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
        # The same windows the encoder serves with: a review longer than one window is trained on
        # all of it, pooled the way `embed` pools it, so training and serving read the same vector.
        windows = self.encoder.windows.windows(self.encoder.prefixed(list(texts), "query"))
        by_text: list[list[int]] = [[] for _ in texts]
        for w, owner in enumerate(windows.owner.tolist()):
            by_text[owner].append(w)
        steps_per_epoch = math.ceil(len(texts) / cfg.batch_size)
        total = steps_per_epoch * cfg.epochs
        warm = max(1, int(cfg.warmup_ratio * total))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
        )
        scale = _scale(self.dim)
        rng = np.random.default_rng(cfg.seed)
        history: list[dict[str, float]] = []
        step = 0
        for epoch in range(cfg.epochs):
            self.net.train()
            order = rng.permutation(len(texts))
            losses: list[float] = []
            for b in range(steps_per_epoch):
                idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                loss_sum = 0.0
                # At most `batch_size` windows a forward pass, as with short reviews (a review is never
                # split: one longer than that runs alone); gradients add up to the whole batch's mean.
                for part in _window_budget([len(by_text[i]) for i in idx], cfg.batch_size):
                    ids_part = idx[part]
                    logits = head(
                        self._text_vectors(windows, [by_text[i] for i in ids_part]) * scale
                    ).squeeze(-1)
                    loss = F.binary_cross_entropy_with_logits(
                        logits, torch.from_numpy(y[ids_part]).float(), reduction="sum"
                    ) / len(idx)
                    loss.backward()
                    loss_sum += float(loss.detach())
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                losses.append(loss_sum)
                step += 1
                say(f"fine-tune epoch {epoch + 1}/{cfg.epochs}", step, total)
            self.net.eval()
            self.weight = head.weight.detach()[0].numpy().astype(np.float32).copy()
            self.bias = float(head.bias.detach()[0])
            rec = {"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4)}
            if dev is not None:
                p = self.predict_proba(dev[0])
                rec["dev_accuracy"] = round(float(((p >= 0.5) == np.asarray(dev[1])).mean()), 4)
            history.append(rec)
        for p in self.net.parameters():
            p.requires_grad = False
        self.info["epochs"] = history
        self.info["trainable_params"] = sum(int(p.numel()) for p in enc_params)

    # -- persistence ---------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        from safetensors.numpy import save_file

        from hanseek.encoders.transformer import quiet_load

        directory.mkdir(parents=True, exist_ok=True)
        with quiet_load(True):  # local files: no "Writing model shards" bar in the CLI's output
            self.net.save_pretrained(directory / _ENCODER)
        self.tokenizer.save_pretrained(directory / _ENCODER)
        save_file(
            {"weight": self.weight.astype(np.float32), "bias": np.asarray([self.bias], dtype=np.float32)},
            str(directory / _HEAD),
        )
        (directory / _CONFIG).write_text(json.dumps(self.config.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> TransformerClassifier:
        from safetensors.numpy import load_file

        with reading(_CONFIG):
            config = TransformerConfig.from_json(json.loads((directory / _CONFIG).read_text()))
        with reading(f"{_ENCODER}/"):
            model = cls.from_base(directory / _ENCODER, config)
        with reading(_HEAD):
            head = load_file(str(directory / _HEAD))
        weight, bias = head.get("weight"), head.get("bias")
        if weight is None or weight.shape != (model.dim,):
            shape = None if weight is None else weight.shape
            raise ValueError(f"{_HEAD}: weight has shape {shape}, the encoder's dimension is {model.dim}")
        if bias is None or bias.shape != (1,):
            raise ValueError(f"{_HEAD}: bias has shape {None if bias is None else bias.shape}, expected (1,)")
        # As the baseline's `_check_arrays`: until session 18 a NaN or inf head loaded and every
        # answer's probability was NaN (null in the API, invalid JSON from `predict --json`).
        for key, a in (("weight", weight), ("bias", bias)):
            if not (np.issubdtype(a.dtype, np.number) and np.isfinite(a).all()):
                raise ValueError(f"{_HEAD}: {key} holds values that are not finite numbers")
        model.weight = weight.astype(np.float32)
        model.bias = float(bias[0])
        return model
