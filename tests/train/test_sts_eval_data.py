"""Evaluation data that cannot give a meaningful figure is refused, and no figure is ever NaN."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from hanseek.encoders.base import Kind
from hanseek.train.simcse_job import make_evaluator
from hanseek.train.sts_eval import StsPairs, check_rankable, load_parakqc, sts_score


class _Collapsed:
    """Every text gets the same vector, as a collapsed model does: all cosines tie."""

    name = "collapsed"
    dim = 4

    def encode(
        self, texts: Sequence[str], kind: Kind = "passage", batch_size: int | None = None
    ) -> np.ndarray:
        return np.tile(np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32), (len(texts), 1))


def _pairs(scores: list[float]) -> StsPairs:
    return StsPairs(
        [f"가 {i}" for i in range(len(scores))], [f"나 {i}" for i in range(len(scores))], np.array(scores)
    )


def test_pairs_without_a_spearman_correlation_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        check_rankable(_pairs([3.0]), "sts.tsv")
    with pytest.raises(ValueError, match=r"all 3 gold scores are 2\.5"):
        check_rankable(_pairs([2.5, 2.5, 2.5]), "sts.tsv")
    ok = _pairs([1.0, 2.0])
    assert check_rankable(ok, "sts.tsv") is ok
    with pytest.raises(ValueError, match="at least 2"):  # before any training
        make_evaluator(_pairs([3.0]), None, "korsts")


def test_tied_cosines_give_null_not_nan() -> None:
    assert sts_score(_Collapsed(), _pairs([1.0, 2.0, 3.0])) == {"pairs": 3, "spearman": None}
    evaluate = make_evaluator(_pairs([1.0, 2.0, 3.0]), None, "mean")
    assert evaluate is not None
    score, metrics = evaluate(_Collapsed())
    assert score != score and metrics == {"korsts_spearman": None}  # NaN: train_simcse makes it None


def _parakqc_lines(n_sets: int) -> list[str]:
    return [f"{s % 4}\t{s % 3}\t문장 {s}-{i}" for s in range(n_sets) for i in range(10)]


def test_parakqc_loader_checks_the_format(tmp_path: Path) -> None:
    """Any text file was cut into groups of 10 lines and scored (a KorSTS file gave made-up metrics)."""
    pk = tmp_path / "pk.txt"
    pk.write_bytes(("\r\n".join(_parakqc_lines(3)) + "\r\n").encode())
    assert [len(g) for g in load_parakqc(pk)] == [10, 10, 10]

    korsts_like = ["genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2"] + [
        f"main-captions\tMSRvid\t2012test\t{i:04}\t5.000\t문장 {i}\t문장" for i in range(20)
    ]
    pk.write_text("\n".join(korsts_like) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(pk))}:1: not ParaKQC"):
        load_parakqc(pk)

    lines = _parakqc_lines(2)
    lines[13] = "1\t1\t"  # no sentence
    pk.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(pk))}:14: not ParaKQC"):
        load_parakqc(pk)

    lines = _parakqc_lines(2)
    lines[5] = "3\t2\t다른 주제의 문장"  # a set's 10 lines share topic and intention
    pk.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(pk))}:6: not ParaKQC \(ids 3/2 differ from 0/0"):
        load_parakqc(pk)


def test_real_parakqc_file_passes_the_checks(shared_data: Path) -> None:
    groups = load_parakqc(shared_data / "parakqc" / "paraKQC_v1.txt")
    assert len(groups) == 1000 and all(len(g) == 10 for g in groups)
    with pytest.raises(ValueError, match=r"sts-dev\.tsv:1: not ParaKQC"):
        load_parakqc(shared_data / "korsts" / "sts-dev.tsv", (0, 2))
