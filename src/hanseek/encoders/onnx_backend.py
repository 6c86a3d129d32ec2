"""ONNX Runtime backend: export a transformers encoder (mean pooling inside the graph), fp32 or int8.

The export lives next to the model (`MODEL/onnx/model.onnx`, `model_int8.onnx`, `export.json`),
is made once (on first use or by `hanseek models export-onnx`), atomically and under a lock, and is
redone when the model's weights change or the export recipe (`EXPORT_VERSION`) does.

BERT models are traced through a plain eager-attention forward (`EagerBert` in `_wrappers`: the classic
`softmax(QK^T/sqrt(d) + (1-mask)*-10000) V` graph) so that ONNX Runtime's transformer optimiser fuses
it into EmbedLayerNormalization, Attention and BiasGelu (residual + LayerNorm deliberately stay
apart: UNFUSED_AT_LOAD); the fused graph is checked against the unfused one before it is kept.
Other architectures are traced as they are.

int8 is ONNX Runtime's dynamic quantisation with per-channel weight scales (fused attention becomes
QAttention). The feed-forward output projections read GELU outputs with a few outlier channels (up to
~70 against a median channel maximum of ~1.5 in e5-small), which a per-tensor activation scale
flattens; instead of keeping them in fp32 (the old recipe, which left a third of the MACs in fp32),
the outliers are migrated into the weights SmoothQuant-style: a `Mul` by 1/s before the MatMul and
weight rows times s, s_j = amax_j^a / wmax_j^(1-a), with amax from a short built-in calibration text.
See docs/encoders.md ("ONNX Runtime and int8") for the measured trade-offs. The int8 encoder batches
only windows of similar length: activation scales are per tensor, so a short text padded beside a
long one was pulled off its vector.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from hanseek.encoders.base import EncoderError
from hanseek.encoders.model_store import file_lock
from hanseek.encoders.modeldir import resolve_prompts
from hanseek.encoders.pooling import Batch, PooledEncoder, TokenWindows
from hanseek.files import TEMP_SUFFIX, shared_mode

log = logging.getLogger("hanseek.encoders")

ONNX_DIR = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
INT8_MAX_LENGTH_RATIO = 1.25  # longest / shortest window (tokens) one int8 forward pass may hold
INT8_TOKENS_PER_RUN = 512  # tokens (rows x width) of one int8 forward pass, one thread each
META_FILE = "export.json"
EXPORT_VERSION = 4  # 4: fused BERT graph (no SkipLayerNorm), SmoothQuant'ed FFN outputs in int8
OPSET = 17
SMOOTH_ALPHA = 0.85
QUANT_OPTIONS: dict[str, Any] = {"per_channel": True}
GELU_OPS = {"Gelu", "BiasGelu", "FastGelu"}
# ONNX Runtime (1.32) CPU's SkipLayerNormalization took ~25% of int8 run time at 128 tokens; as Add +
# LayerNormalization the same work takes ~4%, so sessions do not fuse them (docs/encoders.md).
UNFUSED_AT_LOAD = ["SkipLayerNormFusion"]

# Calibration text for the activation ranges of the feed-forward outputs (written for this purpose:
# no evaluation set sentences). Only the per-channel maxima matter, and the outlier channels show on
# every input, so a few dozen varied sentences suffice.
CALIBRATION_TEXTS: tuple[str, ...] = (
    "어제 동네 빵집에서 산 식빵이 생각보다 훨씬 부드러웠다.",
    "다음 주 월요일까지 보고서를 제출해야 하는데 아직 절반도 못 썼어요.",
    "시청 앞 광장에서 주말마다 벼룩시장이 열린다고 합니다.",
    "이 노트북은 가볍지만 화면이 조금 어두운 편이에요.",
    "버스 정류장 위치가 바뀌어서 한참을 헤맸네요 ㅠㅠ",
    "환율이 오르면서 수입 물가도 함께 상승하고 있다.",
    "아파트 관리비 고지서에 난방비가 두 배로 나왔습니다.",
    "강아지가 산책 나가자고 현관 앞에서 계속 짖어요.",
    "올해 수능은 작년보다 국어 영역이 어려웠다는 평가가 많다.",
    "점심으로 비빔밥이랑 된장찌개 중에 뭐 먹을까?",
    "새벽에 내린 눈 때문에 출근길 도로가 꽁꽁 얼었다.",
    "지역 도서관이 리모델링을 마치고 다시 문을 열었다.",
    "배송 조회를 해 보니 물건이 아직 물류 센터에 있네요.",
    "감기 기운이 있어서 오늘은 일찍 자려고 합니다.",
    "시민 단체는 공원 부지 개발 계획에 반대하는 성명을 냈다.",
    "요즘 드라마 중에 제일 재미있는 게 뭐예요? 추천 좀 해 주세요!",
    "반도체 수출이 석 달 연속 증가세를 이어 갔다.",
    "우리 팀은 연장전 끝에 2대 1로 역전승을 거뒀다.",
    "할머니 댁 마당에 감나무가 주렁주렁 열렸어요.",
    "카페에서 노트북으로 일하는 사람들이 점점 늘고 있다.",
    "회원 가입할 때 인증 문자가 오지 않아요. 어떻게 해야 하나요?",
    "전시회는 오전 열 시부터 오후 여섯 시까지 관람할 수 있습니다.",
    "ㅎㅎ 그 얘기 듣고 완전 빵 터졌잖아",
    "기상청은 이번 주말 남부 지방에 많은 비가 내릴 것으로 내다봤다.",
    "중고 거래로 자전거를 팔았는데 가격을 너무 낮게 부른 것 같다.",
    "아이가 처음으로 혼자 신발 끈을 묶었어요!",
    "대학병원 응급실 대기 시간이 평균 네 시간을 넘었다.",
    "영수증을 잃어버렸는데 환불이 가능할까요?",
    "가을이 되니까 산에 단풍 구경 가는 사람이 많아졌다.",
    "스마트폰 요금제를 바꾸고 나서 한 달에 만 원을 아꼈다.",
    "연구진은 새로운 배터리 소재를 개발했다고 발표했다.",
    "이 앱은 업데이트 이후로 자꾸 튕겨요... 고쳐 주세요",
    "Please send me the meeting notes from yesterday.",
    "The new subway line will open to the public next spring.",
    "I can't believe how expensive groceries have become.",
    "Researchers found that sleep improves long-term memory.",
    "서울 2024년 인구는 약 940만 명, 1인 가구 비율은 39%였다.",
    "주문번호 #A-1027: 수량 3개, 합계 45,000원 (배송비 포함)",
    "Python으로 CSV 파일 읽는 방법 좀 알려 주실 분?",
    "한국 영화가 국제 영화제에서 최우수 작품상을 받았다.",
)


def _weights_identity(model_dir: Path) -> dict[str, Any]:
    files = sorted(p for p in model_dir.glob("*.safetensors")) or sorted(model_dir.glob("*.bin"))
    if not files:
        raise EncoderError(f"no model weights in {model_dir}")
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files}


def _meta(model_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((model_dir / ONNX_DIR / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _intact(model_dir: Path, meta: dict[str, Any], filename: str) -> bool:
    """Whether an export file is there at the size its export recorded: a truncated copy (or a disk
    that filled up) is redone rather than handed to ONNX Runtime."""
    try:
        size = (model_dir / ONNX_DIR / filename).stat().st_size
    except OSError:
        return False
    recorded = meta.get("bytes")
    return isinstance(recorded, dict) and recorded.get(filename) == size


def _same_recipe(model_dir: Path, meta: dict[str, Any]) -> bool:
    """Whether the export `meta` describes was made by this recipe from the weights there now."""
    return meta.get("version") == EXPORT_VERSION and meta.get("weights") == _weights_identity(model_dir)


def _current(model_dir: Path, meta: dict[str, Any], key: str, filename: str) -> bool:
    return (
        _same_recipe(model_dir, meta) and key in meta.get("files", {}) and _intact(model_dir, meta, filename)
    )


def _write_meta(model_dir: Path, files: dict[str, Any], recipe: dict[str, Any]) -> None:
    meta = {
        "version": EXPORT_VERSION,
        "opset": OPSET,
        "weights": _weights_identity(model_dir),
        "files": files,
        "bytes": {name: (model_dir / ONNX_DIR / name).stat().st_size for name in files.values()},
        "recipe": recipe,
    }
    out = model_dir / ONNX_DIR / META_FILE
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out)


def _fusable(config: Any) -> bool:
    """BERT with absolute positions 0..n-1: what ONNX Runtime's BERT fusions assume."""
    return (
        config.model_type == "bert" and getattr(config, "position_embedding_type", "absolute") == "absolute"
    )


def _mean_pool(hidden: Any, attention_mask: Any) -> Any:
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def _wrappers(net: Any) -> tuple[Any, Any]:
    """(as-is mean-pooled module, eager-attention BERT module) around the same weights."""
    import torch

    config = net.config
    heads = int(config.num_attention_heads)
    width = int(config.hidden_size)
    head_dim = width // heads

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = net

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return _mean_pool(hidden, attention_mask)

    class EagerBert(torch.nn.Module):
        """BERT's forward written out with the classic attention ops, for the optimiser's patterns."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = net

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            x = self.inner.embeddings(input_ids=input_ids)
            bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0

            def split(t: torch.Tensor) -> torch.Tensor:
                return t.view((*t.size()[:-1], heads, head_dim)).permute(0, 2, 1, 3)

            for layer in self.inner.encoder.layer:
                att = layer.attention.self
                q, k, v = split(att.query(x)), split(att.key(x)), split(att.value(x))
                scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(head_dim)
                ctx = torch.matmul(torch.softmax(scores + bias, dim=-1), v).permute(0, 2, 1, 3).contiguous()
                ctx = ctx.view((*ctx.size()[:-2], width))
                h = layer.attention.output.LayerNorm(layer.attention.output.dense(ctx) + x)
                x = layer.output.LayerNorm(layer.output.dense(layer.intermediate(h)) + h)
            return _mean_pool(x, attention_mask)

    return MeanPooled().eval(), EagerBert().eval()


def _sample_batch(vocab_size: int) -> tuple[Any, Any]:
    """A small batch with padding, so that the traced graph keeps the attention-mask path."""
    import torch

    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, max(int(vocab_size), 8), (3, 7), generator=gen)
    mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2, [1] * 3 + [0] * 4], dtype=torch.long)
    return ids * mask, mask


def _trace(module: Any, sample: tuple[Any, Any], out: Path) -> None:
    import torch

    with torch.no_grad():
        torch.onnx.export(
            module,
            sample,
            str(out),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "embedding": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter needs no extra packages and handles BERT well
        )


def _run(path_or_bytes: Path | bytes, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    src = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0])


def export_fp32(model_dir: Path, out: Path) -> bool:
    """Trace the model with masked mean pooling into an ONNX graph with dynamic batch and length.

    Returns whether the graph is the fused BERT one (else: traced as is)."""
    import torch

    from hanseek.encoders.transformer import load_hf

    _, net, _ = load_hf(model_dir)
    plain, eager = _wrappers(net)
    sample = _sample_batch(int(net.config.vocab_size))
    if not _fusable(net.config):
        _trace(plain, sample, out)
        return False
    with torch.no_grad():
        ref, mine = plain(*sample).numpy(), eager(*sample).numpy()
    if not np.allclose(ref, mine, atol=1e-4):
        log.warning("eager BERT forward differs from %s's own; exporting it unfused", model_dir)
        _trace(plain, sample, out)
        return False
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    # Residual + LayerNorm stay two ops (see UNFUSED_AT_LOAD).
    options.enable_skip_layer_norm = False
    options.enable_bias_skip_layer_norm = False
    raw = out.with_name(out.name + ".raw")
    try:
        _trace(eager, sample, raw)
        fused = optimize_model(
            str(raw),
            model_type="bert",
            num_heads=int(net.config.num_attention_heads),
            hidden_size=int(net.config.hidden_size),
            opt_level=0,  # pattern fusions only: the saved graph stays portable across CPUs
            optimization_options=options,
        )
        fused.save_model_to_file(str(out))
        ids, mask = (t.numpy() for t in sample)
        if not np.allclose(_run(raw, ids, mask), _run(out, ids, mask), atol=1e-4):
            log.warning(
                "fused ONNX graph of %s disagrees with the unfused one; keeping it unfused", model_dir
            )
            os.replace(raw, out)
            return False
        stats = fused.get_fused_operator_statistics()
        log.info("fused %s: %s", model_dir, {k: v for k, v in stats.items() if v})
        return True
    finally:
        raw.unlink(missing_ok=True)


def ffn_output_matmuls(graph: Any) -> list[Any]:
    """The feed-forward output projections: MatMuls fed by a GELU (fused graph) or, in a graph traced
    as is, named `.../output/dense/MatMul` outside attention."""
    producer = {o: n for n in graph.node for o in n.output}
    out = []
    for n in graph.node:
        if n.op_type != "MatMul":
            continue
        src = producer.get(n.input[0])
        if (src is not None and src.op_type in GELU_OPS) or (
            n.name.endswith("/output/dense/MatMul") and "/attention/" not in n.name
        ):
            out.append(n)
    return out


def _calibration_batch(model_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    prefix = resolve_prompts(model_dir.name, model_dir, "auto").get("query", "")
    enc = tok([prefix + t for t in CALIBRATION_TEXTS], padding=True, truncation=True, max_length=128)
    return np.asarray(enc["input_ids"], dtype=np.int64), np.asarray(enc["attention_mask"], dtype=np.int64)


def smooth_ffn_outputs(fp32: Path, out: Path, model_dir: Path, alpha: float = SMOOTH_ALPHA) -> int:
    """Write a copy of `fp32` with the feed-forward outputs' activation outliers moved into the weights.

    X W = (X / s) (s W) exactly; s_j = amax_j^alpha / wmax_j^(1-alpha) (normalised to median 1), with
    amax_j the largest |activation| of input channel j on the calibration text and wmax_j the
    largest |weight| in row j. Returns the number of MatMuls changed."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    model = onnx.load(str(fp32))
    graph = model.graph
    targets = ffn_output_matmuls(graph)
    inits = {t.name: t for t in graph.initializer}
    uses: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    targets = [n for n in targets if n.input[1] in inits and uses.get(n.input[1]) == 1]
    if not targets:
        onnx.save(model, str(out))
        return 0

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    names = [n.input[0] for n in targets]
    probe.graph.output.extend(helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, None) for x in names)
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    del probe
    ids, mask = _calibration_batch(model_dir)
    real = mask.astype(bool)
    amax = [np.abs(a[real]).max(axis=0) for a in sess.run(names, {"input_ids": ids, "attention_mask": mask})]
    del sess

    for node, act_max in zip(targets, amax, strict=True):
        w = numpy_helper.to_array(inits[node.input[1]])  # [in, out]
        w_max = np.abs(w).max(axis=1)
        s = np.maximum(act_max, 1e-5) ** alpha / np.maximum(w_max, 1e-5) ** (1.0 - alpha)
        s = np.clip(s / np.median(s), 1e-2, None).astype(np.float32)
        inits[node.input[1]].CopyFrom(
            numpy_helper.from_array((w * s[:, None]).astype(np.float32), node.input[1])
        )
        scale = node.name + "_smooth_scale"
        graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), scale))
        smoothed = node.input[0] + "_smoothed"
        mul = helper.make_node("Mul", [node.input[0], scale], [smoothed], name=node.name + "_smooth")
        node.input[0] = smoothed
        graph.node.insert(list(graph.node).index(node), mul)
    onnx.save(model, str(out))
    return len(targets)


def quantize_int8(fp32: Path, out: Path, model_dir: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    smoothed = out.with_name(out.name + ".smoothed")
    try:
        changed = smooth_ffn_outputs(fp32, smoothed, model_dir)
        log.info("smoothed %d feed-forward output projections of %s", changed, model_dir)
        quantize_dynamic(
            str(smoothed),
            str(out),
            weight_type=QuantType.QInt8,
            extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
            **QUANT_OPTIONS,
        )
    finally:
        smoothed.unlink(missing_ok=True)


def ensure_onnx_export(model_dir: Path, *, quantized: bool = False) -> Path:
    """Path of the (int8 or fp32) ONNX export of `model_dir`, exporting first when missing or stale."""
    model_dir = Path(model_dir)
    onnx_dir = model_dir / ONNX_DIR
    key, filename = ("int8", INT8_FILE) if quantized else ("fp32", FP32_FILE)
    meta = _meta(model_dir)
    if _current(model_dir, meta, key, filename) and not _export_temps(onnx_dir):
        return onnx_dir / filename
    unsized = "bytes" not in meta and _same_recipe(model_dir, meta) and key in meta.get("files", {})
    if unsized and onnx_dir.is_dir() and not os.access(onnx_dir, os.W_OK):
        # An export from before sizes were recorded (session 19), read by a process that cannot
        # write the models dir (a server running as another user): used as earlier versions did,
        # since it could neither take the export lock nor record the sizes; a writable load does.
        return onnx_dir / filename
    onnx_dir.mkdir(exist_ok=True)
    with file_lock(onnx_dir / ".export.lock"):
        # Every export writes under this lock, so any temp file seen now is a killed export's.
        for stale in _export_temps(onnx_dir):
            log.info("removing %s, left by an interrupted export", stale)
            stale.unlink(missing_ok=True)
        meta = _meta(model_dir)  # again: another process may have exported meanwhile
        same_weights = _same_recipe(model_dir, meta)
        if same_weights and "bytes" not in meta:
            meta = _adopt_unsized(model_dir, meta)
        if _current(model_dir, meta, key, filename):
            return onnx_dir / filename
        files: dict[str, Any] = dict(meta.get("files", {})) if same_weights else {}
        recipe: dict[str, Any] = dict(meta.get("recipe", {})) if same_weights else {}
        if not (files.get("fp32") and _intact(model_dir, meta, FP32_FILE)):
            log.info("exporting %s to ONNX (fp32)", model_dir)
            fused: list[bool] = []
            _atomic(onnx_dir, FP32_FILE, lambda tmp: fused.append(export_fp32(model_dir, tmp)))
            files = {"fp32": FP32_FILE}
            recipe = {"fused_bert": bool(fused and fused[0])}
            _write_meta(model_dir, files, recipe)
        if quantized:
            log.info("quantising %s to int8", model_dir)
            _atomic(onnx_dir, INT8_FILE, lambda tmp: quantize_int8(onnx_dir / FP32_FILE, tmp, model_dir))
            files["int8"] = INT8_FILE
            recipe["int8"] = {"per_channel": True, "smooth_alpha": SMOOTH_ALPHA}
            _write_meta(model_dir, files, recipe)
    return onnx_dir / filename


def _adopt_unsized(model_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Record the sizes of an export made before exports recorded them (once, under the export
    lock), so that an upgrade does not redo every export: each file that still parses as an ONNX
    graph is kept, one that does not is dropped from the metadata and made again. Returns the
    metadata as rewritten."""
    import onnx
    from google.protobuf.message import DecodeError

    kept: dict[str, Any] = {}
    for key, filename in dict(meta.get("files", {})).items():
        try:
            onnx.load(str(model_dir / ONNX_DIR / str(filename)), load_external_data=False)
        except (DecodeError, OSError, ValueError) as e:
            log.info("%s's ONNX export %s does not load (%s); exporting it again", model_dir, filename, e)
            continue
        kept[str(key)] = filename
    _write_meta(model_dir, kept, dict(meta.get("recipe", {})))
    return _meta(model_dir)


# What `_atomic`'s mkstemp names (`.NAME.<8 chars>.tmp`) plus the files made beside such a temp
# while it is written: `.raw` (unfused trace), `.smoothed` (quantiser input) and ONNX Runtime's
# shape-inference copies `-inferred.raw` / `-inferred.smoothed`.
_EXPORT_TEMP = re.compile(
    "(?:"
    + "|".join(re.escape(f".{name}") for name in (FP32_FILE, INT8_FILE))
    + ")"
    + TEMP_SUFFIX
    + r"(?:\.raw|\.smoothed|-inferred\.raw|-inferred\.smoothed)?"
)


def _export_temps(onnx_dir: Path) -> list[Path]:
    """Files an export killed mid-way left in `onnx_dir` (a few hundred MB each)."""
    try:
        return [p for p in onnx_dir.iterdir() if _EXPORT_TEMP.fullmatch(p.name) and p.is_file()]
    except FileNotFoundError:
        return []


def _atomic(folder: Path, name: str, write: Any) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(shared_mode())
        os.replace(tmp, folder / name)
    finally:
        tmp.unlink(missing_ok=True)


def _build_errors() -> tuple[type[BaseException], ...]:
    """What a broken model directory or export raises while an ONNX encoder is built: the PyTorch
    backend's load errors plus ONNX Runtime's own exceptions, which derive from Exception only
    (a truncated graph raises InvalidProtobuf)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    from hanseek.encoders.transformer import LOAD_ERRORS

    names = (
        "Fail",
        "InvalidArgument",
        "InvalidGraph",
        "InvalidProtobuf",
        "NoModel",
        "NoSuchFile",
        "NotImplemented",
        "RuntimeException",
    )
    found = (getattr(ort_state, n, None) for n in names)
    ort_errors = tuple(e for e in found if isinstance(e, type) and issubclass(e, Exception))
    return (*LOAD_ERRORS, *ort_errors)


class OnnxTextEncoder(PooledEncoder):
    """Same tokenisation, windows and pooling as the PyTorch backend, run by ONNX Runtime on CPU."""

    def __init__(
        self,
        onnx_path: Path,
        tokenizer: Any,
        *,
        name: str,
        dim: int,
        max_length: int,
        prompts: dict[str, str],
        batch_size: int = 32,
        threads: int | None = None,
        backend: str = "onnx",
        spinning: bool = False,
    ) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle intra-op threads sleep instead of spinning: on cores shared with the database and the
        # web workers, spinning burnt ~40% more CPU per sentence (docs/encoders.md, "Speed").
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self._runs: ThreadPoolExecutor | None = None
        self._workers = 1
        if backend == "onnx-int8":
            # Dynamic quantisation takes one activation scale per tensor, i.e. over every row of the
            # batch: a short text padded next to a 500-token one fell from cosine 0.998 to 0.991 to
            # fp32. Windows of similar length keep it within the figures of a text alone
            # (docs/encoders.md, "Batch company").
            self.max_length_ratio = INT8_MAX_LENGTH_RATIO
            # Parallel runs of a few hundred tokens on one thread each beat one run on every thread:
            # int8 GEMMs that small scale poorly across threads (on the idle machine, 3.3x / 3.3x
            # PyTorch's sentences/s at 16 / 128 tokens against 3.5x / 2.7x; docs/encoders.md, "Speed").
            self._workers = max(1, int(threads) if threads else len(os.sched_getaffinity(0)))
            self._runs = ThreadPoolExecutor(self._workers, thread_name_prefix="onnx-int8")
            opts.intra_op_num_threads = 1
        elif threads:
            opts.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(
            str(onnx_path), opts, providers=["CPUExecutionProvider"], disabled_optimizers=UNFUSED_AT_LOAD
        )
        self.onnx_path = onnx_path
        self.backend = backend
        super().__init__(
            name=name,
            dim=dim,
            windows=TokenWindows(tokenizer, max_length),
            prompts=prompts,
            batch_size=batch_size,
        )

    @classmethod
    def from_model_dir(
        cls,
        model_dir: Path,
        *,
        quantized: bool = False,
        name: str | None = None,
        batch_size: int = 32,
        threads: int | None = None,
        prompts: dict[str, str] | str | None = "auto",
    ) -> OnnxTextEncoder:
        from transformers import AutoConfig, AutoTokenizer

        from hanseek.encoders.transformer import one_line, usable_max_length

        try:
            path = ensure_onnx_export(model_dir, quantized=quantized)
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
            config = AutoConfig.from_pretrained(str(model_dir))
            return cls(
                path,
                tokenizer,
                name=name or model_dir.name,
                dim=int(config.hidden_size),
                max_length=usable_max_length(tokenizer, config, model_dir),
                prompts=resolve_prompts(name or model_dir.name, model_dir, prompts),
                batch_size=batch_size,
                threads=threads,
                backend="onnx-int8" if quantized else "onnx",
            )
        except EncoderError:
            raise
        except _build_errors() as e:
            # What the PyTorch backend's load_hf reports for a broken directory: one line naming it
            # (CLI exit 2, API 503) rather than a traceback from the tokenizer, config or ONNX Runtime.
            raise EncoderError(f"cannot load model from {model_dir}: {one_line(e)}") from e

    def _pool_batches(self, batches: Iterator[Batch], means: np.ndarray) -> None:
        if self._runs is None:
            super()._pool_batches(batches, means)
            return
        jobs: list[Batch] = []
        for idx, ids, mask in batches:
            # Rows of one batch (similar lengths) in at least one part per worker, ~TOKENS_PER_RUN
            # each; half that for windows of 64+ tokens (measured faster there, slower for short ones).
            budget = INT8_TOKENS_PER_RUN if ids.shape[1] < 64 else INT8_TOKENS_PER_RUN // 2
            parts = max(self._workers, -(-ids.size // budget))
            for rows in np.array_split(np.arange(len(idx)), min(parts, len(idx))):
                jobs.append((idx[rows], ids[rows], mask[rows]))
        # InferenceSession.run is thread-safe and releases the GIL while it computes.
        pooled = self._runs.map(lambda j: self._pool(j[1], j[2]), jobs)
        for (idx, _, _), vecs in zip(jobs, pooled, strict=True):
            means[idx] = vecs

    def _pool(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        out = self.session.run(["embedding"], {"input_ids": input_ids, "attention_mask": attention_mask})[0]
        return np.asarray(out, dtype=np.float32)
