from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hanseek.train.sts_eval import evaluate, load_korsts, load_parakqc, retrieval_metrics, spearman_x100


def test_retrieval_metrics_by_hand() -> None:
    # 2 sets of 2; vectors chosen so query 0 finds its mate first, query 2 finds a stranger first.
    v = np.array([[1, 0], [0.9, 0.1], [0.8, 0.6], [0, 1]], dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    m = retrieval_metrics(v, np.array([0, 0, 1, 1]), ks=(1, 2))
    # nearest: 0->1 (hit), 1->0 (hit), 2->1 (miss, mate 3 is rank 3), 3->2 (hit)
    assert m["recall_at_1"] == 0.75
    assert m["mrr"] == round((1 + 1 + 1 / 3 + 1) / 4, 4)


def test_spearman() -> None:
    assert spearman_x100(np.array([1.0, 2, 3, 4]), np.array([10.0, 20, 30, 40])) == pytest.approx(100)
    assert spearman_x100(np.array([1.0, 2, 3, 4]), np.array([4.0, 3, 2, 1])) == pytest.approx(-100)


def test_loaders(tmp_path: Path) -> None:
    sts = tmp_path / "sts.tsv"
    sts.write_text(
        'genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2\nx\ty\t2012\t1\t4.5\t"따옴표" 문장\t문장\n'
        "x\ty\t2012\t2\t0.5\t가\t나",
        encoding="utf-8",
    )
    pairs = load_korsts(sts)
    assert pairs.first == ['"따옴표" 문장', "가"] and list(pairs.scores) == [4.5, 0.5]
    pk = tmp_path / "pk.txt"
    pk.write_bytes("".join(f"0\t1\t문장 {i}\r\n" for i in range(30)).encode())
    groups = load_parakqc(pk, (1, 3))
    assert len(groups) == 2 and groups[0][0] == "문장 10" and groups[1][-1] == "문장 29"


def test_evaluate_real_data_with_tiny_model(tiny_bert_dir: Path, shared_data: Path) -> None:
    from hanseek.encoders.transformer import TransformersTextEncoder

    enc = TransformersTextEncoder(tiny_bert_dir)
    pairs = load_korsts(shared_data / "korsts" / "sts-dev.tsv")
    groups = load_parakqc(shared_data / "parakqc" / "paraKQC_v1.txt", (0, 20))
    seen: list[int] = []
    r = evaluate(enc, korsts=pairs, parakqc=groups, on_progress=seen.append)
    assert r["korsts"]["pairs"] == 1500 and -100 <= r["korsts"]["spearman"] <= 100
    assert r["parakqc"]["queries"] == 200 and 0 <= r["parakqc"]["recall_at_1"] <= 1
    assert sum(seen) == 3000 + 200
