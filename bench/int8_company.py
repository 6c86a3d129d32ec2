"""How much an int8 vector depends on the texts encoded with it (docs/encoders.md, "Batch company").

Dynamic int8 takes one activation scale per tensor, i.e. over every row of a forward pass. For 40
KorSTS dev sentences as queries, cosine of the int8 vector to PyTorch fp32 and to the same sentence
encoded alone: alone, beside a 510-token text, beside a ~2x longer one, and all of them in batches
of 32 (as the API's batcher merges concurrent requests).

    python -m bench.int8_company [--sentences 40] [--offset 0] [--kind query|passage]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from bench._util import emit
from bench.encoder import KORSTS
from hanseek.config import Settings
from hanseek.encoders.onnx_backend import INT8_MAX_LENGTH_RATIO, OnnxTextEncoder
from hanseek.encoders.registry import load_text_encoder, resolve_model
from hanseek.train.sts_eval import load_korsts


def _stats(ref: np.ndarray, x: np.ndarray, alone: np.ndarray) -> dict[str, float]:
    to_fp32, to_alone = (ref * x).sum(1), (alone * x).sum(1)
    return {
        "fp32_min": round(float(to_fp32.min()), 4),
        "fp32_mean": round(float(to_fp32.mean()), 4),
        "alone_min": round(float(to_alone.min()), 5),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=40, help="KorSTS dev sentences (first of each pair)")
    ap.add_argument("--offset", type=int, default=0, help="first pair to take")
    ap.add_argument("--kind", choices=("query", "passage"), default="query")
    args = ap.parse_args()
    kind = args.kind
    settings = Settings()
    model_dir = resolve_model(settings, "e5-small").path
    assert model_dir is not None
    fp32 = load_text_encoder(settings, "e5-small")
    int8 = OnnxTextEncoder.from_model_dir(model_dir, quantized=True)
    pairs = load_korsts(KORSTS)
    shorts = list(pairs.first[args.offset : args.offset + args.sentences])
    filler = int8.windows.content_ids([" ".join(pairs.second[:60])])[0]
    long = int8.windows.tokenizer.decode(filler[:505])
    double = int8.windows.tokenizer.decode(filler[:28])
    ref = fp32.encode(shorts, kind=kind)
    alone = np.stack([int8.encode([s], kind=kind)[0] for s in shorts])
    cases: dict[str, Any] = {
        "alone": alone,
        "beside_a_510_token_text": np.stack([int8.encode([s, long], kind=kind)[0] for s in shorts]),
        "beside_a_2x_longer_text": np.stack([int8.encode([s, double], kind=kind)[0] for s in shorts]),
        f"all_{len(shorts)}_batch_32": int8.encode(shorts, kind=kind, batch_size=32),
    }
    emit(
        {
            "benchmark": "int8_company",
            "sentences": len(shorts),
            "offset": args.offset,
            "kind": kind,
            "tokens_median": float(np.median(int8.token_counts(shorts, kind=kind))),
            "companion_tokens": {
                "long": int8.token_counts([long], kind=kind)[0],
                "2x": int8.token_counts([double], kind=kind)[0],
            },
            "max_length_ratio": INT8_MAX_LENGTH_RATIO,
            "cosine": {name: _stats(ref, x, alone) for name, x in cases.items()},
        }
    )


if __name__ == "__main__":
    main()
