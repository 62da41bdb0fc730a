"""The same network, every output returned, in ONNX Runtime and in PyTorch (CPU), for the benches.

Both are built from a `Network`'s layer records and weights, layer for layer, so they do exactly
the work `Network.activations` does: every layer's output is a graph output (ONNX Runtime) or a
returned tensor (PyTorch), and each result is handed back as a numpy array.

- ONNX Runtime: an NCHW graph written with ``onnx.helper`` (Conv, Relu/..., MaxPool/AveragePool,
  a Transpose to (h, w, c) order before Flatten as Keras flattens, Gemm, Softmax), CPU execution
  provider, ``threads`` intra-op threads, all graph optimisations on. Inputs are given NCHW (the
  transpose is not timed); its spatial outputs are NCHW, compared after a transpose.
- PyTorch: eager ``torch.nn.functional`` under ``inference_mode`` on ``channels_last`` tensors
  (NHWC in memory, so every output is viewed as an NHWC numpy array without a copy).

Only the benches import this (``pip install -e ".[bench]"``: onnx, onnxruntime, torch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cnn_explainer_widget.network import Network


def _onnx_activation(helper: Any, name: str, fn: str, options: dict, src: str, dst: str) -> Any:
    if fn == "relu":
        return [helper.make_node("Relu", [src], [dst], name=name)]
    if fn == "tanh":
        return [helper.make_node("Tanh", [src], [dst], name=name)]
    if fn == "sigmoid":
        return [helper.make_node("Sigmoid", [src], [dst], name=name)]
    if fn == "leaky_relu":
        alpha = float(options.get("negative_slope", 0.01))
        return [helper.make_node("LeakyRelu", [src], [dst], alpha=alpha, name=name)]
    if fn == "elu":
        alpha = float(options.get("alpha", 1.0))
        return [helper.make_node("Elu", [src], [dst], alpha=alpha, name=name)]
    raise ValueError(f"no ONNX baseline for activation {fn!r}")


def onnx_model(network: Network) -> Any:
    """The network as an ONNX model (opset 17) whose outputs are every layer's output."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h, w, c = network.input_shape
    nodes: list[Any] = []
    inits: list[Any] = []
    outputs: list[Any] = []
    src = "input"
    for layer, key in zip(network.layers, network.keys[1:], strict=True):
        dst = key
        p = network.params.get(layer.name, {})
        if layer.kind == "conv":
            kernel = np.ascontiguousarray(p["kernel"].transpose(3, 2, 0, 1))  # OIHW
            inits.append(numpy_helper.from_array(kernel, f"{layer.name}.W"))
            ins = [src, f"{layer.name}.W"]
            if p.get("bias") is not None:
                inits.append(numpy_helper.from_array(p["bias"], f"{layer.name}.B"))
                ins.append(f"{layer.name}.B")
            (t, b), (left, r) = layer.padding
            nodes.append(
                helper.make_node(
                    "Conv",
                    ins,
                    [dst],
                    kernel_shape=list(layer.kernel_size),
                    strides=list(layer.stride),
                    pads=[t, left, b, r],
                    name=layer.name,
                )
            )
        elif layer.kind == "activation":
            nodes += _onnx_activation(helper, layer.name, layer.function, layer.options, src, dst)
        elif layer.kind == "pool":
            (t, b), (left, r) = layer.padding
            op = "MaxPool" if layer.function == "max" else "AveragePool"
            extra = {}
            if op == "AveragePool":
                extra["count_include_pad"] = int(layer.options.get("count_include_pad", True))
            nodes.append(
                helper.make_node(
                    op,
                    [src],
                    [dst],
                    kernel_shape=list(layer.kernel_size),
                    strides=list(layer.stride),
                    pads=[t, left, b, r],
                    name=layer.name,
                    **extra,
                )
            )
        elif layer.kind == "flatten":
            nhwc = f"{layer.name}.nhwc"
            nodes.append(helper.make_node("Transpose", [src], [nhwc], perm=[0, 2, 3, 1]))
            nodes.append(helper.make_node("Flatten", [nhwc], [dst], axis=1, name=layer.name))
        elif layer.kind == "dense":
            inits.append(numpy_helper.from_array(p["kernel"], f"{layer.name}.W"))
            ins = [src, f"{layer.name}.W"]
            if p.get("bias") is not None:
                inits.append(numpy_helper.from_array(p["bias"], f"{layer.name}.B"))
                ins.append(f"{layer.name}.B")
            nodes.append(helper.make_node("Gemm", ins, [dst], name=layer.name))
        elif layer.kind == "softmax":
            nodes.append(helper.make_node("Softmax", [src], [dst], axis=-1, name=layer.name))
        else:
            raise ValueError(f"no ONNX baseline for layer kind {layer.kind!r}")
        shape = layer.output_shape
        dims = ["N", shape[2], shape[0], shape[1]] if len(shape) == 3 else ["N", *shape]
        outputs.append(helper.make_tensor_value_info(dst, TensorProto.FLOAT, dims))
        src = dst
    graph = helper.make_graph(
        nodes,
        "network",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", c, h, w])],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def onnx_runner(network: Network, threads: int = 2) -> Callable[[np.ndarray], dict]:
    """``run(x_nchw) -> {key: array}``: ONNX Runtime on CPU with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(
        onnx_model(network).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    keys = list(network.keys[1:])

    def run(x_nchw: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(keys, session.run(keys, {"input": x_nchw}), strict=True))

    return run


def torch_runner(network: Network, threads: int = 2) -> Callable[[Any], dict]:
    """``run(x) -> {key: array}``: eager PyTorch on channels_last tensors, outputs as numpy.

    ``x`` is a ``torch`` tensor made by `torch_input` (NCHW shape, channels_last memory).
    """
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    params: dict[str, dict[str, Any]] = {}
    for name, p in network.params.items():
        kernel = p["kernel"]
        if kernel is not None and kernel.ndim == 4:
            weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
            weight = weight.contiguous(memory_format=torch.channels_last)
        else:
            weight = torch.from_numpy(np.ascontiguousarray(kernel.T))
        bias = None if p.get("bias") is None else torch.from_numpy(np.array(p["bias"]))
        params[name] = {"weight": weight, "bias": bias}
    functions = {
        "relu": F.relu,
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "silu": F.silu,
        "elu": F.elu,
        "leaky_relu": lambda t, negative_slope=0.01: F.leaky_relu(t, negative_slope),
        "gelu": lambda t, approximate=True: F.gelu(
            t, approximate="tanh" if approximate else "none"
        ),
    }
    keys = network.keys[1:]

    def run(x: Any) -> dict[str, np.ndarray]:
        out = {}
        with torch.inference_mode():
            for layer, key in zip(network.layers, keys, strict=True):
                p = params.get(layer.name)
                if layer.kind == "conv":
                    (t, b), (left, r) = layer.padding
                    if t == b and left == r:
                        x = F.conv2d(x, p["weight"], p["bias"], layer.stride, (t, left))
                    else:
                        x = F.pad(x, (left, r, t, b))
                        x = F.conv2d(x, p["weight"], p["bias"], layer.stride)
                elif layer.kind == "activation":
                    x = functions[layer.function](x, **layer.options)
                elif layer.kind == "pool":
                    (t, b), (left, r) = layer.padding
                    if t != b or left != r:
                        raise ValueError("no PyTorch baseline for asymmetric pool padding")
                    if layer.function == "max":
                        x = F.max_pool2d(x, layer.kernel_size, layer.stride, (t, left))
                    else:
                        include = bool(layer.options.get("count_include_pad", True))
                        pads = (t, left)
                        x = F.avg_pool2d(x, layer.kernel_size, layer.stride, pads, False, include)
                elif layer.kind == "flatten":
                    x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
                elif layer.kind == "dense":
                    x = F.linear(x, p["weight"], p["bias"])
                elif layer.kind == "softmax":
                    x = torch.softmax(x, dim=-1)
                # channels_last NCHW -> an NHWC view, no copy.
                out[key] = (x.permute(0, 2, 3, 1) if x.ndim == 4 else x).numpy()
        return out

    return run


def torch_input(x_nhwc: np.ndarray) -> Any:
    """An NHWC batch as a channels_last NCHW tensor sharing its memory."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(x_nhwc)).permute(0, 3, 1, 2)


def max_difference(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> float:
    """Largest absolute difference over every output (NCHW outputs of ONNX are transposed)."""
    worst = 0.0
    for key, value in theirs.items():
        mine = ours[key]
        if value.ndim == 4 and value.shape != mine.shape:
            value = value.transpose(0, 2, 3, 1)
        worst = max(worst, float(np.max(np.abs(mine - value))))
    return worst
