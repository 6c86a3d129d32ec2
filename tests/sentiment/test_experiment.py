"""The cross-domain experiment on small real samples: matrix shape, sanity of scores, report files."""

from __future__ import annotations

import json
from pathlib import Path

from hanseek.sentiment import experiment as exp
from hanseek.sentiment.baseline import BaselineConfig
from hanseek.sentiment.datasets import DomainData
from hanseek.sentiment.training import TrainOptions
from hanseek.text.analyzer import KoreanAnalyzer


def test_small_baseline_experiment(
    movie: DomainData, game: DomainData, kiwi: KoreanAnalyzer, tmp_path: Path
) -> None:
    opts = TrainOptions(train_size=1000, dev_size=100, baseline=BaselineConfig())
    res = exp.run([movie, game], opts, analyzer_factory=lambda _m: kiwi, test_size=300)
    assert res.train_sets == ["movie", "game", "all"]
    assert res.sizes["movie"]["train"] == 1100 and res.sizes["all"]["train"] == 2200
    assert res.sizes["test/movie"]["test"] == 300
    for row in res.matrix.values():
        assert set(row) == {"movie", "game"}
        assert all(0.5 < v <= 1.0 for v in row.values())
    # In-domain beats out-of-domain for the single-domain models (the experiment's premise).
    assert res.matrix["movie"]["movie"] > res.matrix["game"]["movie"]
    assert res.matrix["game"]["game"] > res.matrix["movie"]["game"]
    paths = exp.write_report(res, tmp_path, "sentiment-test")
    md, js, png = paths
    assert "| movie |" in md.read_text() and "heatmap" in md.read_text()
    assert json.loads(js.read_text())["matrix"] == res.matrix
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
