"""Token windows: a text longer than the model's input is split, not truncated, and not warned about."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import AutoTokenizer

from hanseek.encoders.pooling import TokenWindows


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_long_text_becomes_windows_without_the_tokenizers_warning(e5_model_dir: Path) -> None:
    # A tokenizer of its own: transformers gives that warning once per tokenizer instance.
    tokenizer = AutoTokenizer.from_pretrained(str(e5_model_dir))
    windows = TokenWindows(tokenizer, max_length=512)
    text = "서울의 오래된 골목과 시장 이야기 " * 300
    records = _Records()
    hf_root = logging.getLogger("transformers")  # transformers logs there without propagating
    hf_root.addHandler(records)
    try:
        w = windows.windows([text])
    finally:
        hf_root.removeHandler(records)
    assert len(w.ids) > 1 and max(len(ids) for ids in w.ids) <= 512
    assert int(w.weight.sum()) == len(windows.content_ids([text])[0])
    assert not [m for m in records.messages if "sequence length" in m], records.messages
