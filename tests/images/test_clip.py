"""CLIP loading through the real code path, on a tiny randomly initialised CLIP saved to disk.

No weights exist offline, so these tests check the plumbing (load, preprocess, project, normalise,
multilingual text tower) against the model's own forward pass, not retrieval quality.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from hanseek.encoders.image_clip import CLIPEncoder
from hanseek.encoders.image_registry import load_image_encoder
from tests.fixtures.encoders import make_tiny_bert

TEXTS = [
    "a photo of a cat",
    "a red flower",
    "고양이 사진",
    "빨간 꽃",
    "an old temple roof",
    "a woman in uniform",
]
PROJECTION = 16


def make_tiny_clip(out: Path, *, seed: int = 0) -> Path:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<unk>", "<|startoftext|>", "<|endoftext|>"]
    tok.train_from_iterator(TEXTS * 3, trainers.BpeTrainer(vocab_size=300, special_tokens=specials))
    bos, eos = tok.token_to_id("<|startoftext|>"), tok.token_to_id("<|endoftext|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", bos), ("<|endoftext|>", eos)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        model_max_length=32,
    )
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={
            "vocab_size": tok.get_vocab_size(),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 32,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "pad_token_id": tok.token_to_id("<pad>"),
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=PROJECTION,
    )
    out.mkdir(parents=True, exist_ok=True)
    CLIPModel(config).save_pretrained(str(out))
    fast.save_pretrained(str(out))
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, do_center_crop=True
    ).save_pretrained(str(out))
    return out


def make_text_tower(out: Path, clip_dim: int = PROJECTION) -> Path:
    """A sentence-transformers style multilingual tower: tiny BERT + mean pooling + Dense to CLIP dim."""
    from safetensors.torch import save_file

    make_tiny_bert(out, TEXTS, hidden=32)
    (out / "1_Pooling").mkdir()
    (out / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    (out / "2_Dense").mkdir()
    (out / "2_Dense" / "config.json").write_text(
        json.dumps(
            {
                "in_features": 32,
                "out_features": clip_dim,
                "bias": False,
                "activation_function": "torch.nn.modules.linear.Identity",
            }
        )
    )
    torch.manual_seed(1)
    save_file({"linear.weight": torch.randn(clip_dim, 32)}, str(out / "2_Dense" / "model.safetensors"))
    return out


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def tower_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_text_tower(tmp_path_factory.mktemp("tower") / "tiny-tower")


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (48 + 8 * i, 40, 3), dtype=np.uint8)) for i in range(3)]


def test_tiny_clip_round_trip_matches_the_model(clip_dir: Path) -> None:
    from transformers import AutoImageProcessor, CLIPModel

    enc = load_image_encoder(str(clip_dir))
    assert isinstance(enc, CLIPEncoder)
    assert enc.supports_text and enc.dim == PROJECTION and enc.name == "clip:tiny-clip"
    images = _images()
    iv, tv = enc.encode_images(images), enc.encode_texts(TEXTS)
    assert iv.shape == (3, PROJECTION) and tv.shape == (len(TEXTS), PROJECTION)
    np.testing.assert_allclose(np.linalg.norm(iv, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(tv, axis=1), 1, atol=1e-5)

    # Same numbers as CLIP's own forward pass (logits_per_image = scale * cosine).
    model = CLIPModel.from_pretrained(str(clip_dir)).eval()
    proc = AutoImageProcessor.from_pretrained(str(clip_dir), backend="pil")
    batch = enc.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = model(pixel_values=proc(images=images, return_tensors="pt")["pixel_values"], **batch)
        expected = (out.logits_per_image / model.logit_scale.exp()).numpy()
    np.testing.assert_allclose(iv @ tv.T, expected, atol=1e-4)


def test_multilingual_text_tower_replaces_clip_text(clip_dir: Path, tower_dir: Path) -> None:
    enc = load_image_encoder(str(clip_dir), text_tower=str(tower_dir))
    assert isinstance(enc, CLIPEncoder) and enc.text_tower is not None
    assert enc.name == "clip:tiny-clip+tiny-tower"
    tv = enc.encode_texts(TEXTS)
    plain = load_image_encoder(str(clip_dir)).encode_texts(TEXTS)
    assert tv.shape == plain.shape == (len(TEXTS), PROJECTION)
    assert not np.allclose(tv, plain)
    # reference: mean pooling over the attention mask, then the Dense layer, then L2
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tower_dir))
    bert = AutoModel.from_pretrained(str(tower_dir)).eval()
    w = load_file(str(tower_dir / "2_Dense" / "model.safetensors"))["linear.weight"]
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        h = bert(**batch).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1).float()
        ref = ((h * m).sum(1) / m.sum(1)) @ w.T
    ref_n = (ref / ref.norm(dim=1, keepdim=True)).numpy()
    np.testing.assert_allclose(tv, ref_n, atol=1e-5)


def test_text_tower_of_the_wrong_width_is_refused(clip_dir: Path, tmp_path: Path) -> None:
    from hanseek.encoders.base import EncoderError

    bad = make_text_tower(tmp_path / "wide-tower", clip_dim=PROJECTION * 2)
    with pytest.raises(EncoderError, match="text tower outputs"):
        load_image_encoder(str(clip_dir), text_tower=str(bad))


def test_clip_encoder_serves_text_to_image_search(
    clip_dir: Path, db: Any, db_settings: Any, text_encoder: Any, tag: str
) -> None:
    """The service uses CLIP's text side as its own source ('clip') next to captions."""
    from hanseek.images.config import ImageSettings
    from hanseek.images.repo import ImageFilters
    from hanseek.images.service import ImageService, Upload
    from tests.images.conftest import unique_png

    enc = load_image_encoder(str(clip_dir))
    svc = ImageService(db, db_settings.media_dir, ImageSettings(), enc, lambda: text_encoder)
    res = svc.add([Upload(unique_png(im), f"r{i}.png", tags=[tag]) for i, im in enumerate(_images())])
    assert [r.status for r in res] == ["added"] * 3
    out = svc.search_text("a photo of a cat", k=3, filters=ImageFilters(tags=(tag,)), sources=["clip"])
    assert len(out.hits) == 3 and {h.source for h in out.hits} == {"clip"}
    assert out.paths == {f"image:{enc.name}": "exact"}
    # scores are the encoder's own cosine similarities
    q = enc.encode_texts(["a photo of a cat"])[0]
    iv = enc.encode_images(_images())
    assert sorted(round(h.score, 4) for h in out.hits) == sorted(round(float(s), 4) for s in iv @ q)
