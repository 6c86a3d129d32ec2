"""Classical baseline: TF-IDF over Kiwi morpheme n-grams and character n-grams, NB-weighted logistic
regression (scikit-learn).

Features: character 1–4-grams inside word boundaries (``char_wb``, sublinear tf) catch spelling
variants and broken spacing, morpheme 1–3-grams (``form/TAG``) catch negation and endings (재미없/VA vs
재미있/VA, 안/MAG 보/VV). Both blocks are scaled by the naive-Bayes log-count ratio of each feature
(Wang & Manning 2012, NBSVM), re-normalised, and fed to an L2 logistic regression (liblinear, dual).
The hyper-parameters here were chosen on an NSMC dev split carved from train (docs/sentiment.md).

A fitted model is saved without pickle: vocabularies (gzipped JSON), idf/NB/weights (npz) and a card.
"""

from __future__ import annotations

import gzip
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from hanseek.sentiment.modelfiles import reading
from hanseek.text.analyzer import KoreanAnalyzer

Progress = Callable[[str], None]

# Kiwi's "cong" model is about twice as fast as "cong-global" on short reviews, with no
# measurable loss for this task (dev accuracy), and 150k reviews must be analysed in well under a minute.
DEFAULT_KIWI_MODEL = "cong"
MAX_NGRAM = 10  # far above any useful n-gram length; a larger one is a damaged file
_WEIGHTS = "weights.npz"
_VOCAB = "vocab.json.gz"


@dataclass(frozen=True)
class BaselineConfig:
    char_ngram: tuple[int, int] = (1, 4)
    morph_ngram: tuple[int, int] = (1, 3)
    min_df: int = 2
    use_char: bool = True
    use_morph: bool = True
    nb_weighting: bool = True
    C: float = 4.0
    kiwi_model: str = DEFAULT_KIWI_MODEL

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BaselineConfig:
        d = dict(data)
        for k in ("char_ngram", "morph_ngram"):
            if isinstance(d.get(k), list):
                d[k] = tuple(d[k])
        return cls(**d)

    def check(self) -> BaselineConfig:
        """ValueError for settings no fitted model can have (a damaged or hand-edited baseline.json).
        Until session 18 they were not checked: "char_ngram": [4, 1] loaded and answered wrongly."""
        for key in ("char_ngram", "morph_ngram"):
            rng = getattr(self, key)
            if not (
                isinstance(rng, tuple)
                and len(rng) == 2
                and all(isinstance(n, int) and not isinstance(n, bool) for n in rng)
                and 1 <= rng[0] <= rng[1] <= MAX_NGRAM
            ):
                raise ValueError(
                    f"{key} is {list(rng) if isinstance(rng, tuple) else rng!r}: expected [lo, hi] "
                    f"with 1 <= lo <= hi <= {MAX_NGRAM}"
                )
        if not (isinstance(self.min_df, int) and not isinstance(self.min_df, bool) and self.min_df >= 1):
            raise ValueError(f"min_df is {self.min_df!r}: expected a whole number >= 1")
        if not (
            isinstance(self.C, int | float)
            and not isinstance(self.C, bool)
            and math.isfinite(self.C)
            and self.C > 0
        ):
            raise ValueError(f"C is {self.C!r}: expected a positive number")
        for key in ("use_char", "use_morph", "nb_weighting"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key} is {getattr(self, key)!r}: expected true or false")
        if not isinstance(self.kiwi_model, str):
            raise ValueError(f"kiwi_model is {self.kiwi_model!r}: expected a name")
        return self


def morpheme_docs(analyzer: KoreanAnalyzer, texts: Sequence[str]) -> list[str]:
    """Each text as space-separated ``form/TAG`` morphemes (Kiwi's batched API)."""
    return [
        " ".join(f"{m.form.replace(' ', '_')}/{m.tag}" for m in ms) for ms in analyzer.morphemes_batch(texts)
    ]


def _char_vectorizer(cfg: BaselineConfig, vocabulary: list[str] | None = None) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=cfg.char_ngram,
        min_df=cfg.min_df,
        sublinear_tf=True,
        dtype=np.float32,
        vocabulary=vocabulary,
    )


def _morph_vectorizer(cfg: BaselineConfig, vocabulary: list[str] | None = None) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer="word",
        token_pattern=r"\S+",
        lowercase=False,
        ngram_range=cfg.morph_ngram,
        min_df=cfg.min_df,
        sublinear_tf=True,
        dtype=np.float32,
        vocabulary=vocabulary,
    )


def _nb_ratio(x: sp.csr_matrix, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    p = np.asarray(x[y == 1].sum(axis=0)).ravel() + alpha
    q = np.asarray(x[y == 0].sum(axis=0)).ravel() + alpha
    return np.log((p / p.sum()) / (q / q.sum())).astype(np.float32)


class BaselineClassifier:
    """Binary review classifier; `predict_proba` gives P(positive)."""

    kind = "baseline"

    def __init__(
        self,
        analyzer: KoreanAnalyzer | None,
        config: BaselineConfig | None = None,
        morph_cache: dict[str, str] | None = None,
    ) -> None:
        self.config = config or BaselineConfig()
        # Optional text -> morpheme-doc memo, shared by models that see the same reviews (experiment).
        self.morph_cache = morph_cache
        if not (self.config.use_char or self.config.use_morph):
            raise ValueError("enable at least one of character and morpheme features")
        if self.config.use_morph and analyzer is None:
            raise ValueError("morpheme features need a KoreanAnalyzer")
        self.analyzer = analyzer
        self._char: TfidfVectorizer | None = None
        self._morph: TfidfVectorizer | None = None
        self._nb: np.ndarray | None = None
        self._clf: LogisticRegression | None = None
        self.timings: dict[str, float] = {}

    @property
    def fitted(self) -> bool:
        return self._clf is not None

    def _prepare(self, texts: Sequence[str]) -> tuple[list[str], list[str] | None]:
        norm = [KoreanAnalyzer.normalize(t) for t in texts]
        morph = None
        if self.config.use_morph:
            assert self.analyzer is not None
            if self.morph_cache is None:
                morph = morpheme_docs(self.analyzer, norm)
            else:
                cache = self.morph_cache
                todo = list(dict.fromkeys(t for t in norm if t not in cache))
                cache.update(zip(todo, morpheme_docs(self.analyzer, todo), strict=True))
                morph = [cache[t] for t in norm]
        return norm, morph

    def _features(self, norm: list[str], morph: list[str] | None, fit: bool) -> sp.csr_matrix:
        blocks = []
        if self.config.use_char:
            if fit:
                self._char = _char_vectorizer(self.config)
                blocks.append(self._char.fit_transform(norm))
            else:
                assert self._char is not None
                blocks.append(self._char.transform(norm))
        if morph is not None:
            if fit:
                self._morph = _morph_vectorizer(self.config)
                blocks.append(self._morph.fit_transform(morph))
            else:
                assert self._morph is not None
                blocks.append(self._morph.transform(morph))
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def _weigh(self, x: sp.csr_matrix) -> sp.csr_matrix:
        if self._nb is None:
            return x
        return normalize(sp.csr_matrix(x.multiply(self._nb)), copy=False)

    def fit(
        self, texts: Sequence[str], labels: np.ndarray, progress: Progress | None = None
    ) -> BaselineClassifier:
        y = np.asarray(labels, dtype=np.int64)
        if len(np.unique(y)) != 2:
            raise ValueError("training data needs both positive and negative reviews")
        say = progress or (lambda _m: None)
        t0, c0 = time.perf_counter(), time.process_time()
        say(f"morphological analysis of {len(texts):,} reviews")
        norm, morph = self._prepare(texts)
        t1 = time.perf_counter()
        say("TF-IDF features")
        x = self._features(norm, morph, fit=True)
        self._nb = _nb_ratio(x, y) if self.config.nb_weighting else None
        x = self._weigh(x)
        t2 = time.perf_counter()
        say(f"logistic regression on {x.shape[0]:,} x {x.shape[1]:,}")
        self._clf = LogisticRegression(C=self.config.C, solver="liblinear", dual=True, max_iter=2000)
        self._clf.fit(x, y)
        t3 = time.perf_counter()
        # CPU seconds of all threads (Kiwi's workers included): comparable on a shared, busy machine
        # where wall time depends on the neighbours.
        self.timings = {
            "analysis_s": round(t1 - t0, 2),
            "features_s": round(t2 - t1, 2),
            "fit_s": round(t3 - t2, 2),
            "total_s": round(t3 - t0, 2),
            "cpu_s": round(time.process_time() - c0, 2),
        }
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(positive) per text, float32 [n]."""
        if self._clf is None:
            raise RuntimeError("model is not fitted")
        if not texts:
            return np.zeros(0, dtype=np.float32)
        norm, morph = self._prepare(texts)
        x = self._weigh(self._features(norm, morph, fit=False))
        return self._clf.predict_proba(x)[:, 1].astype(np.float32)

    @property
    def n_features(self) -> int:
        return 0 if self._clf is None else int(self._clf.coef_.shape[1])

    # -- persistence (no pickle: a model directory may come from elsewhere) ---------------------

    def save(self, directory: Path) -> None:
        if self._clf is None:
            raise RuntimeError("model is not fitted")
        directory.mkdir(parents=True, exist_ok=True)
        vocab: dict[str, list[str]] = {}
        arrays: dict[str, np.ndarray] = {
            "coef": self._clf.coef_.astype(np.float32),
            "intercept": self._clf.intercept_.astype(np.float32),
        }
        for key, vec in (("char", self._char), ("morph", self._morph)):
            if vec is None:
                continue
            terms = [""] * len(vec.vocabulary_)
            for term, idx in vec.vocabulary_.items():
                terms[idx] = term
            vocab[key] = terms
            arrays[f"idf_{key}"] = vec.idf_.astype(np.float32)
        if self._nb is not None:
            arrays["nb"] = self._nb
        np.savez_compressed(directory / _WEIGHTS, **arrays)  # type: ignore[arg-type]
        with gzip.open(directory / _VOCAB, "wt", encoding="utf-8") as f:
            json.dump(vocab, f, ensure_ascii=False)
        (directory / "baseline.json").write_text(json.dumps(self.config.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path, analyzer: KoreanAnalyzer | None) -> BaselineClassifier:
        try:
            config = BaselineConfig.from_json(json.loads((directory / "baseline.json").read_text())).check()
        except (TypeError, ValueError) as e:  # TypeError: an unknown key
            raise ValueError(f"baseline.json: {e}") from e
        model = cls(analyzer, config)
        with reading(_WEIGHTS), np.load(directory / _WEIGHTS, allow_pickle=False) as w:
            arrays = {k: w[k] for k in w.files}
        with reading(_VOCAB), gzip.open(directory / _VOCAB, "rt", encoding="utf-8") as f:
            vocab: dict[str, list[str]] = json.load(f)
        _check_arrays(directory, config, vocab, arrays)
        if config.use_char:
            model._char = _char_vectorizer(config, vocab["char"])
            model._char.idf_ = arrays["idf_char"]
        if config.use_morph:
            model._morph = _morph_vectorizer(config, vocab["morph"])
            model._morph.idf_ = arrays["idf_morph"]
        model._nb = arrays.get("nb")
        clf = LogisticRegression(C=config.C, solver="liblinear", dual=True)
        clf.coef_ = arrays["coef"].astype(np.float64)
        clf.intercept_ = arrays["intercept"].astype(np.float64)
        clf.classes_ = np.array([0, 1])
        model._clf = clf
        return model


def _check_arrays(
    directory: Path, config: BaselineConfig, vocab: dict[str, list[str]], arrays: dict[str, np.ndarray]
) -> None:
    """Refuse a damaged or mismatched model at load time (ValueError, which the service reports as
    ModelLoadError: a 503), not with a shape error in the middle of a prediction (a 500)."""

    def bad(msg: str) -> ValueError:
        # The file's name, not its path: the message reaches API clients (docs/sentiment.md).
        return ValueError(f"{_WEIGHTS}: {msg}")

    n_features = 0
    for key, used in (("char", config.use_char), ("morph", config.use_morph)):
        if not used:
            continue
        terms = vocab.get(key)
        if not isinstance(terms, list) or not terms or not all(isinstance(t, str) for t in terms):
            raise ValueError(f"{_VOCAB}: the {key} vocabulary is missing or empty")
        if len(set(terms)) != len(terms):
            raise ValueError(f"{_VOCAB}: the {key} vocabulary repeats terms")
        idf = arrays.get(f"idf_{key}")
        if idf is None or idf.shape != (len(terms),):
            shape = None if idf is None else idf.shape
            raise bad(f"idf_{key} has shape {shape}, the {key} vocabulary has {len(terms)} terms")
        n_features += len(terms)
    if n_features == 0:
        raise bad("the model uses no features")
    coef, intercept, nb = arrays.get("coef"), arrays.get("intercept"), arrays.get("nb")
    if coef is None or coef.shape != (1, n_features):
        raise bad(f"coef has shape {None if coef is None else coef.shape}, expected (1, {n_features})")
    if intercept is None or intercept.shape != (1,):
        raise bad(f"intercept has shape {None if intercept is None else intercept.shape}, expected (1,)")
    if nb is not None and nb.shape != (n_features,):
        raise bad(f"nb has shape {nb.shape}, expected ({n_features},)")
    for name in ("coef", "intercept", "nb", "idf_char", "idf_morph"):
        a = arrays.get(name)
        if a is not None and not (np.issubdtype(a.dtype, np.number) and np.isfinite(a).all()):
            raise bad(f"{name} holds values that are not finite numbers")
