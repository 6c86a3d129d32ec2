"""The evaluation protocol: metric helpers, a small synthetic run, and the real photo set."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from hanseek.images import evaluation
from hanseek.images.transforms import STANDARD


def test_ranks_count_ties_against_the_target_and_honour_ignores() -> None:
    scores = np.array([[0.9, 0.9, 0.1], [0.2, 0.8, 0.3], [0.5, 0.1, 0.4]])
    assert evaluation.ranks(scores, [0, 1, 2]).tolist() == [2, 1, 2]
    assert evaluation.ranks(scores, [0, 1, 2], ignore=[[1], [], [0]]).tolist() == [1, 1, 1]
    m = evaluation.summarise(np.array([1, 2, 6]))
    assert m["recall@1"] == pytest.approx(1 / 3, abs=1e-4) and m["recall@5"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["mrr"] == pytest.approx((1 + 0.5 + 1 / 6) / 3, abs=1e-4)


def test_near_equal_scores_are_ties_and_an_unindexed_target_is_a_miss() -> None:
    """Identical tag documents gave float32 scores differing in the last bits, so their ties were
    broken by noise, not against the target; an image with no class names was ranked by the encoded
    empty string, which the service never stores (session 19, evaluation review)."""
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 384)).astype(np.float32)
    docs = np.repeat(q + rng.standard_normal((1, 384)).astype(np.float32), 3, axis=0)  # cos > 0
    scores = np.concatenate([q @ docs.T, np.full((1, 6), -1.0, np.float32)], axis=1)
    scores[0, 1] = np.nextafter(scores[0, 1], np.float32(-np.inf))  # what BLAS may give
    assert evaluation.ranks(scores, [1]).tolist() == [3]
    scores[0, 1] = -np.inf  # nothing of the target is indexed
    r = evaluation.ranks(scores, [1])
    assert r.tolist() == [0]
    m = evaluation.summarise(np.array([1, 0]))
    assert (m["recall@1"], m["recall@5"], m["mrr"]) == (0.5, 0.5, 0.5)


def test_an_image_without_class_names_is_never_found_by_them(text_encoder: Any) -> None:
    items = [
        evaluation.Item(f"{i}.png", Image.new("RGB", (8, 8)), cap, cap, (tag,))
        for i, (cap, tag) in enumerate([("a cat on a sofa", "animal"), ("a red car", "vehicle"), ("x", "x")])
    ]
    labels = [[("tabby cat", 0.9)], [("sports car", 0.8)], []]
    t2i = evaluation.text_to_image(items, text_encoder, labels)
    assert [row["rank_labels_en"] for row in t2i["per_image"]] == [1, 1, None]
    assert t2i["labels"]["en"]["recall@5"] == pytest.approx(2 / 3, abs=1e-4)


def _tiny_set(root: Path, images: dict[str, Image.Image]) -> Path:
    captions = {
        "china": ("an old temple with a tiled roof", "기와 지붕이 있는 오래된 절", "building"),
        "flower": ("a pink flower in a garden", "정원의 분홍색 꽃", "plant"),
        "hopper": ("a portrait of a woman in a navy uniform", "해군 제복을 입은 여성의 초상", "people"),
    }
    (root / "img").mkdir()
    with (root / "captions.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "caption_en", "caption_ko", "category"])
        for name, (en, ko, cat) in captions.items():
            images[name].resize((320, 214)).save(root / "img" / f"{name}.png")
            w.writerow([f"img/{name}.png", en, ko, cat])
    return root


def test_run_and_markdown_on_a_small_set(
    tmp_path: Path, sample_images: dict[str, Image.Image], text_encoder: Any, cnn_encoder: Any
) -> None:
    from hanseek.encoders.image_descriptor import DescriptorEncoder

    data = _tiny_set(tmp_path, sample_images)
    report = evaluation.run(data, text_encoder, [cnn_encoder, DescriptorEncoder()])
    t2i = report["text_to_image"]
    assert set(t2i) == {"labels", "tags", "tags+labels", "caption_xlang", "per_image"}
    # translations of each other: three distinct descriptions are matched exactly
    assert t2i["caption_xlang"]["ko_query->en_index"]["recall@1"] == 1.0
    assert t2i["caption_xlang"]["en_query->ko_index"]["recall@1"] == 1.0
    cnn, desc = report["image_to_image"]
    assert (cnn["encoder"], desc["encoder"]) == ("efficientnet-lite0", "descriptor-v1")
    assert cnn["index_size"] == 3 + 12 and set(cnn["transforms"]) == set(STANDARD)
    assert cnn["transforms"]["resize_50"]["recall@1"] == 1.0
    md = evaluation.markdown(report, "hanseek images eval --data X")
    assert "## Text → image" in md and "hanseek images eval --data X" in md and "| **all** |" in md


@pytest.mark.slow
def test_real_photo_set_robustness(shared_data: Path, cnn_encoder: Any) -> None:
    """On the 17 scikit-image photos: resized and recompressed copies find their original."""
    items = evaluation.load_items(shared_data / "images")
    assert len(items) == 17
    res = evaluation.robustness(
        items, cnn_encoder, {k: STANDARD[k] for k in ("crop_centre_80", "colour_jitter")}
    )
    assert res["overall"]["recall@1"] == 1.0, res["transforms"]
    assert res["distinct_originals_max_similarity"] < 0.6


def test_a_data_set_without_the_needed_columns_or_files_is_one_error_line(
    tmp_path: Path, sample_images: dict[str, Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from hanseek.cli import app
    from hanseek.encoders import image_registry

    data = _tiny_set(tmp_path, sample_images)
    (data / "captions.csv").write_text("file,caption_en,caption_ko\nimg/china.png,a temple,절\n", "utf-8")
    with pytest.raises(evaluation.EvalDataError, match="missing category"):
        evaluation.load_items(data)

    def no_models(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the columns are checked before any model loads")

    monkeypatch.setattr(image_registry, "load_image_encoder", no_models)
    r = CliRunner().invoke(app, ["images", "eval", "--data", str(data), "--out", str(tmp_path / "out")])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    text = " ".join(r.output.split())
    assert "error:" in text and "missing category" in text and "Traceback" not in r.output
    assert not (tmp_path / "out").exists()

    # A row naming a missing photo: the same kind of message, not a FileNotFoundError traceback.
    (data / "captions.csv").write_text("file,caption_en,caption_ko,category\nimg/gone.png,a,가,x\n", "utf-8")
    with pytest.raises(evaluation.EvalDataError, match=r"gone\.png"):
        evaluation.load_items(data)
