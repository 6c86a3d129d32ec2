"""CLIP-style image encoders: images and texts in one space (transformers `CLIPModel`).

`CLIPEncoder.load(source)` takes a local directory saved with `save_pretrained` (model + tokenizer +
image processor) or, where a network exists, a hub id such as `openai/clip-vit-base-patch32`.

Korean text→image: the original CLIP text tower knows little Korean. `text_tower=` replaces it with a
multilingual text model distilled into the CLIP space, in the sentence-transformers layout used by
`sentence-transformers/clip-ViT-B-32-multilingual-v1` (a transformer, `1_Pooling/config.json` and a
`2_Dense` projection). The images are still encoded by CLIP's vision tower, so the text model must
have been trained against that same CLIP checkpoint.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from hanseek.encoders.image_base import FloatArray, l2_normalize, to_rgb
from hanseek.encoders.transformer import quiet_load


def _pooled(output: Any) -> Any:
    # transformers 4.x returns the projected tensor; 5.x returns a ModelOutput whose pooler_output is
    # the projection.
    import torch

    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output


class MultilingualTextTower:
    """A sentence-transformers model (transformer → pooling → dense) mapping text into CLIP space."""

    def __init__(self, path: str | Path, *, max_length: int = 128) -> None:
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        root = Path(path)
        self._torch = torch
        self.max_length = max_length
        with quiet_load(root.is_dir()):
            self.tokenizer = AutoTokenizer.from_pretrained(str(root))
            self.model = AutoModel.from_pretrained(str(root)).eval()
        pooling_cfg = root / "1_Pooling" / "config.json"
        cfg = json.loads(pooling_cfg.read_text()) if pooling_cfg.exists() else {}
        self.pooling = "cls" if cfg.get("pooling_mode_cls_token") else "mean"
        dense_dir = root / "2_Dense"
        self.dense: Any = None
        if dense_dir.exists():
            dcfg = json.loads((dense_dir / "config.json").read_text())
            linear = torch.nn.Linear(dcfg["in_features"], dcfg["out_features"], bias=dcfg.get("bias", True))
            st = dense_dir / "model.safetensors"
            state = (
                load_file(str(st))
                if st.exists()
                else torch.load(dense_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
            )
            linear.load_state_dict({k.removeprefix("linear."): v for k, v in state.items()})
            activation = str(dcfg.get("activation_function", "Identity"))
            self.dense = torch.nn.Sequential(
                linear, torch.nn.Tanh() if "Tanh" in activation else torch.nn.Identity()
            )
            self.dim = int(dcfg["out_features"])
        else:
            self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> Any:
        torch = self._torch
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return self.dense(pooled) if self.dense is not None else pooled


class CLIPEncoder:
    supports_text = True

    def __init__(
        self,
        model: Any,
        processor: Any,
        tokenizer: Any,
        *,
        name: str,
        text_tower: MultilingualTextTower | None = None,
        batch_size: int = 16,
    ) -> None:
        import torch

        self._torch = torch
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = tokenizer
        self.text_tower = text_tower
        self.name = name
        self.batch_size = batch_size
        self.dim = int(model.config.projection_dim)
        self._max_len = int(model.config.text_config.max_position_embeddings)
        if text_tower is not None and text_tower.dim != self.dim:
            raise ValueError(
                f"text tower outputs {text_tower.dim}-d vectors but the CLIP space is {self.dim}-d"
            )
        self._lock = threading.Lock()

    @classmethod
    def load(cls, source: str | Path, *, text_tower: str | Path | None = None) -> CLIPEncoder:
        """Load model, tokenizer and image processor from one directory (or hub id)."""
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        src = str(source)
        with quiet_load(Path(src).is_dir()):
            model = CLIPModel.from_pretrained(src)
        import transformers

        # The PIL/numpy processor: the torchvision one needs a package this project does not install.
        pil: dict[str, Any] = (
            {"backend": "pil"} if int(transformers.__version__.split(".")[0]) >= 5 else {"use_fast": False}
        )
        processor = AutoImageProcessor.from_pretrained(src, **pil)
        tokenizer = AutoTokenizer.from_pretrained(src)
        tower = MultilingualTextTower(text_tower) if text_tower else None
        label = Path(src).name if Path(src).exists() else src
        name = f"clip:{label}" + (f"+{Path(str(text_tower)).name}" if text_tower else "")
        return cls(model, processor, tokenizer, name=name, text_tower=tower)

    def encode_images(self, images: Sequence[Image.Image]) -> FloatArray:
        torch = self._torch
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = [to_rgb(im) for im in images[start : start + self.batch_size]]
            pixels = self.processor(images=chunk, return_tensors="pt")["pixel_values"]
            with self._lock, torch.inference_mode():
                feats = _pooled(self.model.get_image_features(pixel_values=pixels))
            out.append(feats.float().numpy())
        return l2_normalize(np.concatenate(out))

    def encode_texts(self, texts: Sequence[str]) -> FloatArray:
        torch = self._torch
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        for start in range(0, len(texts), self.batch_size):
            chunk = list(texts[start : start + self.batch_size])
            with self._lock, torch.inference_mode():
                if self.text_tower is not None:
                    feats = self.text_tower.encode(chunk)
                else:
                    batch = self.tokenizer(
                        chunk, padding=True, truncation=True, max_length=self._max_len, return_tensors="pt"
                    )
                    feats = _pooled(
                        self.model.get_text_features(
                            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                        )
                    )
            out.append(feats.float().numpy())
        return l2_normalize(np.concatenate(out))
