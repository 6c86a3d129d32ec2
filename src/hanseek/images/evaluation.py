"""Offline evaluation of image search on a captioned photo set (../shared/data/images by default).

Two questions, each answered with what was indexed and what was queried spelled out, because a
text→image number means nothing without that:

1. text→image (captions in English and Korean, e5-small text encoder; the default offline path):
   - `labels`: index only the image model's own ImageNet class names for each image (nothing a person
     wrote); query with each caption. Fully held out: captions never touch the index.
   - `tags`: index only the coarse category tags of the data set (e.g. "animal", "space; vehicle");
     query with the captions. Many images share tags, so ties are broken against the target (the
     target must score higher than every other image by more than TIE_TOLERANCE).
   An image whose document in a setting is empty (no class names passed the threshold) has nothing
   indexed there, as in the service, and its caption is a miss.
   - `tags+labels`: both, fused by taking the best score per image (what the service does).
   - `caption_xlang`: index the caption in one language, query with the other: tests cross-lingual
     matching of a description against its translation, an optimistic upper bound for caption search.
2. image→image robustness: index the originals plus 4 quadrant tiles of every image (distractors that
   share colours and texture with their source); query with edited copies (resized, cropped,
   recompressed, colour-jittered, greyscale, mirrored, combined). A copy of image i must rank
   image i first among the originals and the tiles of the *other* images (its own tiles are ignored:
   a 70 % corner crop genuinely overlaps a quadrant).

Scores are cosine similarities of L2-normalised vectors, exactly what the service's exact path ranks.
"""

from __future__ import annotations

import csv
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from hanseek.encoders.image_base import ImageEncoder, ImageLabeler, to_rgb
from hanseek.images.service import caption_document, labels_document
from hanseek.images.transforms import STANDARD

if TYPE_CHECKING:
    from hanseek.encoders.base import TextEncoder


@dataclass(frozen=True, slots=True)
class Item:
    file: str
    image: Image.Image
    caption_en: str
    caption_ko: str
    tags: tuple[str, ...]


REQUIRED_COLUMNS = ("file", "caption_en", "caption_ko", "category")


class EvalDataError(ValueError):
    """The evaluation set cannot be read: a missing column, file or image (the CLI's `error:`)."""


def check_columns(data_dir: Path) -> None:
    """Refuse a captions.csv without the columns the evaluation reads, before any model loads."""
    path = data_dir / "captions.csv"
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            columns = set(csv.DictReader(f).fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EvalDataError(f"{path}: cannot be read: {exc}") from exc
    if missing := [c for c in REQUIRED_COLUMNS if c not in columns]:
        raise EvalDataError(
            f"{path}: needs the columns {', '.join(REQUIRED_COLUMNS)}; missing {', '.join(missing)} "
            f"(its header has {', '.join(sorted(columns)) or 'nothing'})"
        )


def load_items(data_dir: Path) -> list[Item]:
    check_columns(data_dir)
    items = []
    with (data_dir / "captions.csv").open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            try:
                with Image.open(data_dir / row["file"]) as im:
                    im.load()
                    image = to_rgb(im).copy()
            except (OSError, ValueError) as exc:  # missing, unreadable or not an image
                raise EvalDataError(
                    f"{data_dir / (row['file'] or '')}: cannot be read as an image: {exc}"
                ) from exc
            tags = tuple(t.strip() for t in (row["category"] or "").split(";") if t.strip())
            items.append(Item(row["file"], image, row["caption_en"] or "", row["caption_ko"] or "", tags))
    if not items:
        raise EvalDataError(f"{data_dir / 'captions.csv'} has no rows")
    return items


# -- metrics -----------------------------------------------------------------------------------
# Identical documents (several images with the tag "medical") give bit-identical vectors whose float32
# products with one query still differ in the last bits: scores this close are one tie.
TIE_TOLERANCE = 1e-6


def ranks(
    scores: np.ndarray, targets: Sequence[int], ignore: Sequence[Sequence[int]] | None = None
) -> np.ndarray:
    """1-based rank of each query's target; scores within TIE_TOLERANCE of the target's count as
    ties, against the target (pessimistic). 0: the target has nothing indexed (score -inf), so no
    search can return it — a miss at every k."""
    out = np.empty(len(targets), dtype=np.int64)
    for qi, t in enumerate(targets):
        row = scores[qi].copy()
        if ignore is not None and len(ignore[qi]):
            row[list(ignore[qi])] = -np.inf
        if row[t] == -np.inf:
            out[qi] = 0
            continue
        others = np.delete(row, t)
        out[qi] = 1 + int((others >= row[t] - TIE_TOLERANCE).sum())
    return out


def summarise(r: np.ndarray) -> dict[str, float]:
    found = r > 0
    return {
        "recall@1": round(float((found & (r <= 1)).mean()), 4),
        "recall@5": round(float((found & (r <= 5)).mean()), 4),
        "mrr": round(float(np.where(found, 1.0 / np.maximum(r, 1), 0.0).mean()), 4),
        "n": len(r),
    }


# -- text -> image -----------------------------------------------------------------------------
def text_to_image(
    items: Sequence[Item], text_encoder: TextEncoder, labels: Sequence[Sequence[tuple[str, float]]]
) -> dict[str, Any]:
    n = len(items)
    targets = list(range(n))

    def enc(texts: Sequence[str], kind: str) -> np.ndarray:
        return np.asarray(text_encoder.encode(list(texts), kind=kind), dtype=np.float32)  # type: ignore[arg-type]

    queries = {
        "en": enc([it.caption_en for it in items], "query"),
        "ko": enc([it.caption_ko for it in items], "query"),
    }
    label_docs = [labels_document(lab) or "" for lab in labels]
    tag_docs = [caption_document(None, list(it.tags)) or "" for it in items]
    index = {
        "labels": enc(label_docs, "passage"),
        "tags": enc(tag_docs, "passage"),
        "caption_en": enc([it.caption_en for it in items], "passage"),
        "caption_ko": enc([it.caption_ko for it in items], "passage"),
    }
    # The service stores no vector for an empty document, so such an image cannot be found in that
    # setting. Until session 19 the encoded empty string was ranked: it scored ~0.83 against every
    # caption, found its own image by accident and pushed other targets down.
    present = {"labels": [bool(d) for d in label_docs], "tags": [bool(d) for d in tag_docs]}

    langs = ("en", "ko")
    scores: dict[tuple[str, str], np.ndarray] = {}
    for setting in ("labels", "tags"):
        for lang in langs:
            scores[setting, lang] = queries[lang] @ index[setting].T
            scores[setting, lang][:, ~np.asarray(present[setting])] = -np.inf
    label_ranks = {lang: ranks(scores["labels", lang], targets) for lang in langs}
    result: dict[str, Any] = {
        "labels": {lang: summarise(label_ranks[lang]) for lang in langs},
        "tags": {lang: summarise(ranks(scores["tags", lang], targets)) for lang in langs},
        "tags+labels": {
            lang: summarise(ranks(np.maximum(scores["labels", lang], scores["tags", lang]), targets))
            for lang in langs
        },
    }
    result["caption_xlang"] = {
        "ko_query->en_index": summarise(ranks(queries["ko"] @ index["caption_en"].T, targets)),
        "en_query->ko_index": summarise(ranks(queries["en"] @ index["caption_ko"].T, targets)),
    }
    per_image = []
    for i, it in enumerate(items):
        per_image.append(
            {
                "file": it.file,
                "auto_labels": [name for name, _ in labels[i]],
                "tags": list(it.tags),
                # None: no class names, nothing indexed to find
                **{f"rank_labels_{lang}": int(r[i]) or None for lang, r in label_ranks.items()},
            }
        )
    result["per_image"] = per_image
    return result


# -- image -> image ----------------------------------------------------------------------------
def quadrants(image: Image.Image) -> list[Image.Image]:
    w, h = image.size
    return [image.crop((x, y, x + w // 2, y + h // 2)) for y in (0, h // 2) for x in (0, w // 2)]


def robustness(
    items: Sequence[Item],
    encoder: ImageEncoder,
    transforms: dict[str, Callable[[Image.Image], Image.Image]] | None = None,
    near_duplicate_score: float | None = None,
) -> dict[str, Any]:
    transforms = transforms or STANDARD
    n = len(items)
    originals = [it.image for it in items]
    tiles = [t for it in items for t in quadrants(it.image)]
    t0 = time.perf_counter()
    index = encoder.encode_images(originals + tiles)
    encode_s = time.perf_counter() - t0
    tile_owner = np.repeat(np.arange(n), 4)
    own_tiles = [[int(n + j) for j in np.flatnonzero(tile_owner == i)] for i in range(n)]
    orig = index[:n]
    off = orig @ orig.T
    np.fill_diagonal(off, -np.inf)
    out: dict[str, Any] = {
        "encoder": encoder.name,
        "index_size": len(index),
        "distinct_originals_max_similarity": round(float(off.max()), 4),
        "encode_images_per_s": round(len(index) / encode_s, 2),
        "transforms": {},
    }
    all_ranks, own_scores = [], []
    for name, tf in transforms.items():
        q = encoder.encode_images([tf(im) for im in originals])
        scores = q @ index.T
        r = ranks(scores, list(range(n)), own_tiles)
        own = scores[np.arange(n), np.arange(n)]
        masked = scores.copy()
        masked[np.arange(n), np.arange(n)] = -np.inf
        for i in range(n):
            masked[i, own_tiles[i]] = -np.inf
        margin = own - masked.max(axis=1)
        entry = summarise(r) | {
            "mean_score": round(float(own.mean()), 4),
            "min_margin": round(float(margin.min()), 4),
            "failures": [items[int(i)].file for i in np.flatnonzero(r > 1)],
        }
        out["transforms"][name] = entry
        all_ranks.append(r)
        own_scores.append(own)
    joined = np.concatenate(all_ranks)
    out["overall"] = summarise(joined)
    if near_duplicate_score is not None:
        scores_all = np.concatenate(own_scores)
        out["near_duplicate_flag"] = {
            "threshold": near_duplicate_score,
            "edited_copies_flagged": round(float((scores_all >= near_duplicate_score).mean()), 4),
            "distinct_pairs_flagged": int((off >= near_duplicate_score).sum() // 2),
        }
    return out


# -- report ------------------------------------------------------------------------------------
def run(
    data_dir: Path,
    text_encoder: TextEncoder,
    encoders: Sequence[ImageEncoder],
    *,
    label_top_k: int = 3,
    label_min_prob: float = 0.05,
    near_duplicate_score: float = 0.85,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    say = progress or (lambda _msg: None)
    items = load_items(data_dir)
    say(f"{len(items)} images loaded")
    labeler = next((e for e in encoders if isinstance(e, ImageLabeler)), None)
    labels = (
        labeler.predict_labels([it.image for it in items], label_top_k, label_min_prob)
        if labeler
        else [[] for _ in items]
    )
    report: dict[str, Any] = {
        "data": str(data_dir),
        "images": len(items),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "text_encoder": text_encoder.name,
        "label_model": getattr(labeler, "name", None),
        "label_rule": {"top_k": label_top_k, "min_prob": label_min_prob},
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
    }
    say("text → image")
    report["text_to_image"] = text_to_image(items, text_encoder, labels)
    report["image_to_image"] = []
    for enc in encoders:
        say(f"image → image robustness with {enc.name}")
        report["image_to_image"].append(robustness(items, enc, near_duplicate_score=near_duplicate_score))
    return report


def markdown(report: dict[str, Any], command: str) -> str:
    t2i = report["text_to_image"]
    lines = [
        "# Image search evaluation",
        "",
        f"Command: `{command}`  ",
        f"Data: `{report['data']}` ({report['images']} photos with English and Korean captions)  ",
        f"Text encoder: `{report['text_encoder']}`; label model: `{report['label_model']}` "
        f"(top {report['label_rule']['top_k']} ImageNet classes with "
        f"p ≥ {report['label_rule']['min_prob']})  ",
        f"Run: {report['created']}",
        "",
        "## Text → image",
        "",
        "Recall@k = share of captions whose own image is ranked in the top k among all "
        f"{report['images']} images (ties count against the target; scores within "
        f"{TIE_TOLERANCE:g} are ties). An image with no class names (or no tags) has nothing "
        "indexed in that setting, as in the service: its caption counts as a miss.",
        "",
        "| indexed (per image) | queried with | R@1 | R@5 | MRR |",
        "|---|---|---|---|---|",
    ]
    names = {
        "labels": "image model's class names only (no human text)",
        "tags": "category tags only",
        "tags+labels": "category tags + class names (best of both)",
    }
    for setting, label in names.items():
        for lang in ("en", "ko"):
            m = t2i[setting][lang]
            lines.append(
                f"| {label} | {lang} caption | {m['recall@1']:.3f} | {m['recall@5']:.3f} | {m['mrr']:.3f} |"
            )
    for key, label in (
        ("ko_query->en_index", "English caption | Korean caption"),
        ("en_query->ko_index", "Korean caption | English caption"),
    ):
        m = t2i["caption_xlang"][key]
        lines.append(f"| {label} | {m['recall@1']:.3f} | {m['recall@5']:.3f} | {m['mrr']:.3f} |")
    lines += [
        "",
        "The class-name rows are the honest zero-shot figure for images nobody described. The caption rows",
        "index one language and query with the other: the query is a translation of the indexed text, so",
        "they measure cross-lingual matching, an upper bound for search over human captions.",
        "",
        "| image | auto labels | tags | rank (en) | rank (ko) |",
        "|---|---|---|---|---|",
    ]
    for row in t2i["per_image"]:
        lines.append(
            f"| {row['file']} | {', '.join(row['auto_labels']) or '—'} | {', '.join(row['tags'])} | "
            f"{row['rank_labels_en'] or '—'} | {row['rank_labels_ko'] or '—'} |"
        )
    lines += ["", "## Image → image robustness", ""]
    for res in report["image_to_image"]:
        lines += [
            f"### {res['encoder']}",
            "",
            f"Index: {res['index_size']} vectors (originals + 4 quadrant tiles of each). "
            "Highest similarity between two different originals: "
            f"{res['distinct_originals_max_similarity']}. "
            f"Encoding: {res['encode_images_per_s']} images/s.",
            "",
            "| edited copy | rank-1 rate | MRR | mean score of original | min margin | failures |",
            "|---|---|---|---|---|---|",
        ]
        for name, m in res["transforms"].items():
            lines.append(
                f"| {name} | {m['recall@1']:.3f} | {m['mrr']:.3f} | {m['mean_score']:.3f} | "
                f"{m['min_margin']:.3f} | {', '.join(m['failures']) or '—'} |"
            )
        o = res["overall"]
        lines.append(f"| **all** | **{o['recall@1']:.3f}** | {o['mrr']:.3f} | | | |")
        if "near_duplicate_flag" in res:
            nd = res["near_duplicate_flag"]
            lines += [
                "",
                f"Near-duplicate flag at score ≥ {nd['threshold']}: {nd['edited_copies_flagged']:.1%} of "
                f"edited copies flagged; {nd['distinct_pairs_flagged']} pairs of different originals "
                "flagged.",
            ]
        lines.append("")
    return "\n".join(lines) + "\n"
