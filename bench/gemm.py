"""GEMM peak of this machine, measured in the same run as the model: the ceiling that the
model's GFLOP/s are compared with.

A square n x n x n matrix product costs 2 n^3 operations (one multiply and one add per
term). Measured with torch.matmul (fp32, bf16) and ONNX Runtime (MatMul fp32 and
MatMulInteger u8 x s8, the kernel int8 models use), each at its current thread count.
"""

from __future__ import annotations

import numpy as np

from bench.common import interleaved, log, rate, table


def gemm_ops(n: int) -> float:
    return 2.0 * n**3


def _ort_matmul(n: int, integer: bool):
    """A one-node ONNX Runtime session computing A @ B (MatMulInteger for int8)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    if integer:
        inputs = [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n]),
                  helper.make_tensor_value_info("b", TensorProto.INT8, [n, n])]
        node = helper.make_node("MatMulInteger", ["a", "b"], ["c"])
        output = helper.make_tensor_value_info("c", TensorProto.INT32, [n, n])
    else:
        inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, n]) for name in ("a", "b")]
        node = helper.make_node("MatMul", ["a", "b"], ["c"])
        output = helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])
    graph = helper.make_graph([node], "gemm", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    if integer:
        feeds = {"a": rng.integers(0, 255, (n, n), dtype=np.uint8), "b": rng.integers(-127, 127, (n, n), dtype=np.int8)}
    else:
        feeds = {"a": rng.standard_normal((n, n), dtype=np.float32), "b": rng.standard_normal((n, n), dtype=np.float32)}
    return lambda: session.run(None, feeds)


def contenders(n: int) -> dict:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a16, b16 = a.bfloat16(), b.bfloat16()
    return {
        "torch fp32": lambda: torch.matmul(a, b),
        "torch bf16": lambda: torch.matmul(a16, b16),
        "ONNX Runtime fp32": _ort_matmul(n, integer=False),
        "ONNX Runtime int8 (u8 x s8)": _ort_matmul(n, integer=True),
    }


def run(n: int = 2048, repeats: int = 10, max_seconds: float = 30.0) -> dict:
    """{"n", "rows": {name: {"peak", "median"} in GFLOP/s (GOP/s for int8)}, "errors"}."""
    log(f"GEMM peak: n={n}, up to {repeats} rounds / {max_seconds:g} s")
    timings = interleaved(contenders(n), repeats, max_seconds)
    ops = gemm_ops(n)
    rows = {name: {"peak": ops / t.low / 1e9, "median": ops / t.median / 1e9, "n": len(t.seconds)}
            for name, t in timings.items() if t.ok}
    errors = {name: t.error for name, t in timings.items() if t.error}
    return {"n": n, "rows": rows, "errors": errors}


def peak(result: dict, kind: str) -> float | None:
    """Best measured GFLOP/s for ``kind`` ("fp32", "bf16", "int8"); None if not measured."""
    values = [row["peak"] for name, row in result["rows"].items() if kind in name]
    return max(values) if values else None


def markdown(result: dict) -> str:
    n = result["n"]
    rows = [(name, rate(row["peak"]), rate(row["median"]), row["n"]) for name, row in result["rows"].items()]
    rows += [(name, "failed", error, 0) for name, error in result["errors"].items()]
    return (f"Square matrix product, n = {n} ({gemm_ops(n) / 1e9:.1f} GFLOP per call), all threads:\n\n"
            + table(("kernel", "peak GFLOP/s (best call)", "median GFLOP/s", "calls"), rows))
