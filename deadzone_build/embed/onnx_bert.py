"""Build the runnable all-MiniLM-L6-v2 ONNX model from model.safetensors, without torch.

Three steps, each a pure function of the pinned inputs and the settings in pin.EMBEDDER_PIN
(steps 1 and 2 here, step 3 in deadzone_build/embed/onnx_quantize.py; `build_model` runs all three):

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
from typing import Any, Callable, Mapping, Sequence

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
        raise EmbedderError(f"cannot read the model weights {path}: {exc}. These are not the pinned "
                            "weights: delete the directory to fetch them again.") from exc


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
                                "pinned weights: delete the directory to fetch them again, or update the pin.")
    if extra in weights:
        raise EmbedderError(f"{source} has more than {shape.layers} layers: these are not the pinned "
                            "weights: delete the directory to fetch them again, or update the pin.")


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
    # Symbolic shape inference (which needs sympy, ~80 MB installed) serves fusions this graph never
    # reaches: removing Casts whose types match (there is no Cast), a mask's Add (there is no mask)
    # and the two layer-norm fusions turned off here. Off, the fused model is the same bytes.
    options.enable_shape_inference = False
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


def build_model(weights: Mapping[str, np.ndarray], calibration_ids: Sequence[Sequence[int]],
                pin: Mapping[str, Any], progress: Callable[[str], None] = lambda _: None) -> onnx.ModelProto:
    """fp32 graph -> fused -> calibrated -> int8, all settings from `pin`."""
    from threadpoolctl import threadpool_limits

    from deadzone_build.embed.onnx_quantize import QuantSettings, calibrate, quantize

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
