"""Lexical baseline encoder for the evaluation report: character n-gram TF-IDF.

Nothing like USE-multilingual can be installed offline here, so the non-neural reference is the
classic one: TF-IDF over character 2-4-grams inside word boundaries (robust to Korean particles and
spacing), fitted on training text only, L2-normalised. It implements the TextEncoder protocol so
the same evaluation code scores it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hanseek.encoders.base import Kind, check_kind, check_texts


class TfidfEncoder:
    def __init__(
        self, fit_texts: Sequence[str], *, max_features: int = 8192, name: str = "tfidf-char"
    ) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = check_texts(fit_texts)
        if not texts:
            raise ValueError("the TF-IDF baseline needs texts to fit on")
        self.vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 4), max_features=max_features, sublinear_tf=True
        )
        self.vectorizer.fit(texts)
        self.name = name
        self.dim = len(self.vectorizer.vocabulary_)
        self.backend = "sklearn"

    def encode(
        self, texts: Sequence[str], kind: Kind = "passage", batch_size: int | None = None
    ) -> np.ndarray:
        check_kind(kind)
        m = self.vectorizer.transform(check_texts(texts)).astype(np.float32).toarray()
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        return m / np.maximum(norms, 1e-12)
