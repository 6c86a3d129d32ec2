"""PyTorch backend: any transformers encoder model (local directory, or hub id where a network exists)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from hanseek.encoders.base import EncoderError
from hanseek.encoders.modeldir import max_seq_length, resolve_prompts
from hanseek.encoders.pooling import PooledEncoder, TokenWindows

log = logging.getLogger("hanseek.encoders")

# Architectures whose base model takes `add_pooling_layer`: sentence encoders never use the pooler, and
# skipping it avoids loading (or randomly initialising) weights nobody reads.
_POOLER_TYPES = {"bert", "roberta", "xlm-roberta", "camembert", "electra", "ernie"}
# RoBERTa-style position ids start after the padding index, so two positions are unusable.
_OFFSET_POSITION_TYPES = {"roberta", "xlm-roberta", "camembert"}


# Re-entrant: a CLIP model loads its text tower inside its own load.
_QUIET_LOAD = threading.RLock()


@contextmanager
def quiet_load(local: bool) -> Iterator[None]:
    """Mute transformers' "Loading weights" bar while a *local* model loads (or its "Writing model
    shards" bar while one is saved: `quiet_load(True)`).

    From a local directory the bar is noise on every CLI command (the load takes well under a
    second). Hub loads keep it: the same switch mutes huggingface_hub's download bars, which a
    user with a network wants to see. The switch is transformers' process-wide flag, so local loads
    take turns rather than restore each other's state out of order.
    """
    if not local:
        yield
        return
    from transformers.utils import logging as hf_logging

    with _QUIET_LOAD:
        was_on = hf_logging.is_progress_bar_enabled()
        if was_on:
            hf_logging.disable_progress_bar()
        try:
            yield
        finally:
            if was_on:
                hf_logging.enable_progress_bar()


def _load_errors() -> tuple[type[BaseException], ...]:
    """What a broken or incomplete model directory raises while loading.

    A truncated or corrupt weights file raises safetensors' own error (not an OSError), torch's
    unpickler and shape checks raise RuntimeError; all of them mean "this directory is not a usable
    model", which callers report as one EncoderError line rather than a traceback.
    """
    errors: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError)
    try:
        from safetensors import SafetensorError
    except ImportError:  # pragma: no cover - transformers depends on safetensors
        return errors
    return (*errors, SafetensorError)


LOAD_ERRORS = _load_errors()


def one_line(e: BaseException, limit: int = 300) -> str:
    """An exception as one short line: loaders' messages span lines and embed whole file lists."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def load_hf(model: str | Path) -> tuple[Any, Any, Path | None]:
    """(tokenizer, model in eval mode, local dir or None) with a clear error when it cannot load."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    local = Path(model).expanduser()
    local_dir = local if local.is_dir() else None
    if local_dir is None and (Path(model).is_absolute() or str(model).startswith((".", "~"))):
        raise EncoderError(f"model directory {model} does not exist")
    src = str(local_dir) if local_dir is not None else str(model)
    try:
        with quiet_load(local_dir is not None):
            config = AutoConfig.from_pretrained(src)
            tokenizer = AutoTokenizer.from_pretrained(src)
            kwargs: dict[str, Any] = {}
            if config.model_type in _POOLER_TYPES:
                kwargs["add_pooling_layer"] = False
            net = AutoModel.from_pretrained(src, config=config, **kwargs)
    except LOAD_ERRORS as e:
        if local_dir is not None:
            raise EncoderError(f"cannot load model from {local_dir}: {one_line(e)}") from e
        raise EncoderError(
            f"{model!r} is neither a local model directory nor loadable from the Hugging Face hub "
            f"(no network here?). Download it where a network exists and pass its directory. "
            f"({one_line(e)})"
        ) from e
    net.eval()
    return tokenizer, net, local_dir


def usable_max_length(tokenizer: Any, config: Any, model_dir: Path | None) -> int:
    cap = int(getattr(config, "max_position_embeddings", 512) or 512)
    if getattr(config, "model_type", "") in _OFFSET_POSITION_TYPES:
        cap -= int(getattr(config, "pad_token_id", 1) or 1) + 1
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 100_000:
        cap = min(cap, tok_max)
    st_max = max_seq_length(model_dir)
    return min(cap, st_max) if st_max else cap


class TransformersTextEncoder(PooledEncoder):
    """Mean-pooled, L2-normalised sentence vectors from a transformers encoder on CPU (float32)."""

    backend = "torch"

    def __init__(
        self,
        model: str | Path,
        *,
        name: str | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        prompts: dict[str, str] | str | None = "auto",
        threads: int | None = None,
    ) -> None:
        import torch

        if threads:
            # Process-wide by PyTorch's design; the service sets it once at start-up.
            torch.set_num_threads(int(threads))
        tokenizer, net, model_dir = load_hf(model)
        try:
            self._init_from(
                net,
                tokenizer,
                name=name or (model_dir.name if model_dir else str(model)),
                model_dir=model_dir,
                source=model,
                max_length=max_length,
                batch_size=batch_size,
                prompts=prompts,
            )
        except LOAD_ERRORS as e:
            # A directory whose weights load can still be unusable (a max length of 2 in its
            # sentence-transformers or tokenizer config leaves no room for text): the same one line
            # as a load failure, not a traceback in the CLI and a 500 in the API.
            raise EncoderError(f"cannot load model from {model_dir or model}: {one_line(e)}") from e

    @classmethod
    def from_model(
        cls,
        net: Any,
        tokenizer: Any,
        *,
        name: str,
        prompts: dict[str, str] | None,
        max_length: int | None = None,
        batch_size: int = 32,
    ) -> TransformersTextEncoder:
        """Wrap an in-memory model (e.g. during training, for evaluation) without reloading it."""
        self = cls.__new__(cls)
        self._init_from(
            net,
            tokenizer,
            name=name,
            model_dir=None,
            source=name,
            max_length=max_length,
            batch_size=batch_size,
            prompts=prompts if prompts is not None else "none",
        )
        return self

    def _init_from(
        self,
        net: Any,
        tokenizer: Any,
        *,
        name: str,
        model_dir: Path | None,
        source: str | Path,
        max_length: int | None,
        batch_size: int,
        prompts: dict[str, str] | str | None,
    ) -> None:
        self.model = net
        self.tokenizer = tokenizer
        self.model_dir = model_dir
        limit = usable_max_length(tokenizer, net.config, model_dir)
        length = min(max_length, limit) if max_length else limit
        super().__init__(
            name=name,
            dim=int(net.config.hidden_size),
            windows=TokenWindows(tokenizer, length),
            prompts=resolve_prompts(source, model_dir, prompts),
            batch_size=batch_size,
        )

    def _pool(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                ids = torch.from_numpy(input_ids)
                mask = torch.from_numpy(attention_mask)
                hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
                m = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
        finally:
            if was_training:
                self.model.train()
        return pooled.float().numpy()
