"""SentimentService: train, load and serve review classifiers (the API and CLI are thin shells over it).

Which model answers: the one asked for by name, else the default (``hanseek sentiment train`` makes
the first model it trains the default; ``hanseek sentiment default NAME`` changes it). With no trained
model at all, a small baseline is trained once from the bundled NSMC demo subset
(``hanseek/data/demo/reviews_movie.tsv``, a few seconds) and saved as ``demo-baseline``, so a fresh
install answers instead of failing; its card states that it is a demo model and its held-out accuracy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import hanseek
from hanseek.config import Settings
from hanseek.sentiment import registry
from hanseek.sentiment.baseline import BaselineClassifier, BaselineConfig
from hanseek.sentiment.datasets import (
    LABEL_NAMES,
    DomainData,
    DomainSource,
    concat,
    find_source,
    load_domain,
    read_reviews,
    split,
    valid_unicode,
)
from hanseek.sentiment.modelfiles import file_of
from hanseek.sentiment.registry import ModelCard, ModelLoadError, ModelNotFound
from hanseek.sentiment.training import Say, TrainOptions, evaluate, fit
from hanseek.sentiment.transformer import TransformerClassifier
from hanseek.text.analyzer import KoreanAnalyzer

log = logging.getLogger("hanseek.sentiment")

DEMO_MODEL = "demo-baseline"
DEMO_REVIEWS = Path(hanseek.__file__).parent / "data" / "demo" / "reviews_movie.tsv"
PREDICT_CHUNK = 512


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float  # of `label`
    positive_probability: float  # P(positive), named as in the API


@dataclass
class _Loaded:
    card: ModelCard
    model: Any
    stamp: float


def _describe(e: BaseException, directory: Path) -> str:
    """One line saying what is wrong with the model in `directory`, with no path above it."""
    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        errors = e.errors()
        if not errors:
            return f"{registry.CARD} is not a valid model card"
        where = ".".join(str(x) for x in errors[0]["loc"]) or "the document"
        return f"{registry.CARD} is not a valid model card ({where}: {errors[0]['msg']})"
    if isinstance(e, OSError) and e.filename:
        return f"{_relative(str(e.filename), directory)}: {e.strerror or type(e).__name__}"
    text = _relative(str(e), directory).strip()
    line = (text.splitlines()[0].strip() if text else "") or type(e).__name__
    if len(line) > 300:
        line = line[:299] + "…"
    # The file a reader named, unless the message starts with it already (the shape checks' do).
    if (name := file_of(e)) and not line.startswith(name.rstrip("/")):
        line = f"{name}: {line}"
    return line


def _relative(text: str, directory: Path) -> str:
    """`text` with the model directory's path (and anything above it) cut out."""
    for prefix in (str(directory.resolve()), str(directory)):
        text = text.replace(prefix + "/", "").replace(prefix, ".")
    return text


class SentimentService:
    def __init__(self, settings: Settings, *, analyzer: KoreanAnalyzer | None = None) -> None:
        self.settings = settings
        self.root = registry.models_root(settings)
        self._given_analyzer = analyzer
        self._analyzers: dict[str, KoreanAnalyzer] = {}
        self._models: dict[str, _Loaded] = {}
        self._lock = threading.RLock()
        self._load_locks: dict[str, threading.Lock] = {}
        # Its own lock: a model's loader asks for an analyzer while `resolve` may hold `_lock`.
        self._analyzer_lock = threading.Lock()

    # -- resources -------------------------------------------------------------------------------

    def analyzer(self, kiwi_model: str) -> KoreanAnalyzer:
        """One frozen analyzer per Kiwi model type (a given analyzer, in tests, serves all)."""
        if self._given_analyzer is not None:
            return self._given_analyzer
        with self._analyzer_lock:
            a = self._analyzers.get(kiwi_model)
            if a is None:
                a = KoreanAnalyzer(model_type=kiwi_model, frozen=True)
                self._analyzers[kiwi_model] = a
            return a

    def base_model_dir(self, name: str) -> Path | str:
        from hanseek.encoders.registry import resolve_model

        info = resolve_model(self.settings, name)
        return info.path if info.path is not None else info.name

    def close(self) -> None:
        with self._lock:
            self._models.clear()
            self._analyzers.clear()

    # -- models ----------------------------------------------------------------------------------

    def cards(self) -> list[ModelCard]:
        return registry.list_cards(self.root)

    def default_model(self) -> str | None:
        return registry.default_name(self.root)

    def set_default(self, name: str) -> None:
        registry.set_default(self.root, name)

    def delete(self, name: str) -> None:
        with self._lock:
            registry.delete_model(self.root, name)
            self._models.pop(name, None)

    def _model_lock(self, name: str) -> threading.Lock:
        with self._lock:
            lock = self._load_locks.get(name)
            if lock is None:
                lock = self._load_locks[name] = threading.Lock()
            return lock

    def _load(self, name: str) -> _Loaded:
        directory = registry.model_dir(self.root, name)
        card_path = directory / registry.CARD
        if not card_path.is_file():
            raise ModelNotFound(f"no sentiment model named {name!r}; see `hanseek sentiment models`")
        stamp = card_path.stat().st_mtime
        hit = self._models.get(name)
        if hit is not None and hit.stamp == stamp:
            return hit
        # One lock per model: a model is loaded once, while requests for models already loaded go on.
        # Until session 18 one service-wide lock was held for the whole load (seconds for a transformer).
        with self._model_lock(name):
            hit = self._models.get(name)
            if hit is not None and hit.stamp == stamp:
                return hit
            model: Any
            try:
                card = registry.read_card(directory)
                if card.kind == "baseline":
                    cfg = BaselineConfig.from_json(
                        {k: v for k, v in card.config.items() if k in BaselineConfig.__dataclass_fields__}
                    )
                    model = BaselineClassifier.load(
                        directory, self.analyzer(cfg.kiwi_model) if cfg.use_morph else None
                    )
                else:
                    model = TransformerClassifier.load(directory)
            except Exception as e:
                # A damaged file fails in many ways (EOFError from a cut gzip, BadZipFile, a
                # safetensors error, ...): each is a model that cannot be loaded (503), not a 500.
                # The whole error goes to the log; the message (an API client reads it) names the model
                # and the problem in one line, without the server's paths.
                # INFO: a server's log (INFO and up) keeps it; a CLI, which configures no logging,
                # does not print it (Python's last-resort handler would print a WARNING's traceback).
                log.info("cannot load sentiment model %r from %s", name, directory, exc_info=True)
                raise ModelLoadError(
                    f"cannot load sentiment model {name!r}: {_describe(e, directory)}"
                ) from e
            loaded = _Loaded(card, model, stamp)
            self._models[name] = loaded
            return loaded

    def resolve(self, name: str | None = None) -> _Loaded:
        """The named model, else the default, else any `movie-baseline`, else the demo baseline."""
        if name:
            registry.check_name(name)
            return self._load(name)
        name = self.answering_model()
        if name != DEMO_MODEL:
            return self._load(name)
        with self._lock:
            if not (self.root / DEMO_MODEL / registry.CARD).is_file():
                self.train_demo()
            return self._load(DEMO_MODEL)

    def answering_model(self) -> str:
        """The model that answers when none is named: the default, else `movie-baseline`, else the
        demo baseline (trained on first use)."""
        for candidate in (self.default_model(), "movie-baseline"):
            if candidate and (self.root / candidate / registry.CARD).is_file():
                return candidate
        return DEMO_MODEL

    # -- prediction ------------------------------------------------------------------------------

    def predict(self, texts: Sequence[str], model: str | None = None) -> tuple[ModelCard, list[Prediction]]:
        return self.predict_with(self.resolve(model), texts)

    def predict_with(self, loaded: _Loaded, texts: Sequence[str]) -> tuple[ModelCard, list[Prediction]]:
        """`texts` classified by a model `resolve` gave (the API checks its kind's limits in between)."""
        clean = [valid_unicode(t) for t in texts]
        probs = [
            loaded.model.predict_proba(clean[i : i + PREDICT_CHUNK])
            for i in range(0, len(texts), PREDICT_CHUNK)
        ]
        pos = np.concatenate(probs) if probs else np.zeros(0, dtype=np.float32)
        if not np.isfinite(pos).all():  # never NaN in an answer (null in JSON, or invalid JSON)
            raise ModelLoadError(
                f"sentiment model {loaded.card.name!r} gave a probability that is not a number"
            )
        out = []
        for p in pos.tolist():
            label = LABEL_NAMES[1] if p >= 0.5 else LABEL_NAMES[0]
            out.append(Prediction(label, round(p if p >= 0.5 else 1.0 - p, 4), round(p, 4)))
        return loaded.card, out

    # -- training --------------------------------------------------------------------------------

    def train(
        self,
        domains: Sequence[DomainData],
        opts: TrainOptions,
        *,
        name: str,
        make_default: bool | None = None,
        say: Say | None = None,
        extra_info: dict[str, Any] | None = None,
    ) -> ModelCard:
        """Train on the given domains' train (and dev) splits, score on each domain's test split,
        save under `name`. `make_default` None: only when there is no default yet."""
        registry.check_name(name)
        if not domains:
            raise ValueError("no training domains")
        train = concat([d.train for d in domains], "+".join(d.name for d in domains))
        dev = concat([d.dev for d in domains], train.domain)
        fitted = fit(
            opts, train, dev, analyzer_factory=self.analyzer, base_model_dir=self.base_model_dir, say=say
        )
        if say:
            say("evaluate on test", 0, 0)
        metrics = evaluate(fitted.model, {f"test/{d.name}": d.test for d in domains})
        card = ModelCard(
            name=name,
            kind=opts.kind,
            domains=[d.name for d in domains],
            train_size=fitted.train_size,
            dev_size=fitted.dev_size,
            train_seconds=fitted.seconds,
            base_model=opts.transformer.base_model if opts.kind == "transformer" else None,
            config=opts.config_json(),
            metrics=metrics,
            info={**fitted.info, "splits": {d.name: d.summary() for d in domains}, **(extra_info or {})},
        )
        with self._lock:
            registry.save_model(self.root, fitted.model, card)
            self._models.pop(name, None)
            if make_default or (make_default is None and self.default_model() is None):
                registry.set_default(self.root, name)
        return card

    def train_domain(
        self,
        domain: str,
        sources: Sequence[DomainSource],
        opts: TrainOptions,
        *,
        name: str | None = None,
        make_default: bool | None = None,
        say: Say | None = None,
        test_size: int | None = None,
    ) -> ModelCard:
        """`domain` is a source name or "all" (every available domain together). `test_size` caps
        each test split (stratified sample) for slow models; the card then says so."""
        chosen = list(sources) if domain == "all" else [find_source(domain, sources)]
        if not chosen:
            raise ValueError("no review files found; pass --data or see docs/sentiment.md")
        data = [load_domain(s, seed=opts.seed) for s in chosen]
        if test_size is not None:
            data = [
                DomainData(
                    d.name,
                    d.train,
                    d.dev,
                    d.test.sample(test_size, opts.seed + 3),
                    [
                        *d.notes,
                        f"test: stratified sample of {min(test_size, len(d.test))} (seed {opts.seed + 3})",
                    ],
                )
                for d in data
            ]
        return self.train(
            data, opts, name=name or f"{domain}-{opts.kind}", make_default=make_default, say=say
        )

    def train_demo(self) -> ModelCard:
        """The fallback model: a baseline on 90% of the bundled demo reviews, scored on the other 10%."""
        if not DEMO_REVIEWS.is_file():
            raise ModelNotFound(
                "no sentiment model trained and the demo reviews are missing; run `hanseek sentiment train`"
            )
        log.info("no sentiment model yet: training %s from %s", DEMO_MODEL, DEMO_REVIEWS.name)
        reviews = read_reviews(DEMO_REVIEWS, "movie")
        train, test = split(reviews, 0.1)
        data = DomainData("movie", train, train.subset([]), test, ["bundled NSMC demo subset, 10% held out"])
        return self.train(
            [data],
            TrainOptions(kind="baseline"),
            name=DEMO_MODEL,
            make_default=False,
            extra_info={
                "demo": True,
                "source": "bundled NSMC demo subset (hanseek/data/demo/reviews_movie.tsv)",
            },
        )
