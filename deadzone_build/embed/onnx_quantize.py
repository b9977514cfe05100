"""Step 3 of the model build (deadzone_build/embed/onnx_bert.py runs steps 1-2 and calls this):
int8 quantisation of the fused fp32 graph.

Every weight MatMul becomes MatMulInteger on uint8 activations quantised per row (per token: a
row's vector never depends on its batch-mates) and int7 weights per output column.
SmoothQuant-style per-channel scaling moves activation outliers into the weights, GPTQ rounds the
weights against calibration statistics (the fp32 model run on the pinned calibration texts), and
GELU outputs are quantised asymmetrically (they are almost all >= -0.17). Integer products are
exact on every CPU; 7-bit weights keep AVX2's u8s8 kernel (pairs of products summed in int16)
from saturating, so AVX2, AVX-512 and VNNI machines give the same bytes.

The settings come from the pin's "quantization" (QuantSettings.from_pin); change the code's output
and bump the pin's "recipe".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from deadzone_build.errors import EmbedderError


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
