"""What machine the figures come from: CPU model, cores, the SIMD flags that matter for
fp32 / bf16 / int8 kernels, memory, load, and library versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from bench.common import table

# Instruction-set flags of /proc/cpuinfo that decide which kernels oneDNN / MLAS can use.
FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
         "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")
PACKAGES = ("torch", "onnxruntime", "onnx", "numpy", "resemblyzer", "fastapi", "uvicorn")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty off Linux)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git_commit(repo: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=False)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def describe(repo: Path) -> dict:
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    import torch

    return {
        "cpu": info.get("model name") or platform.processor() or platform.machine(),
        "vendor": info.get("vendor_id", "?"),
        "family_model": f"{info.get('cpu family', '?')}/{info.get('model', '?')}",
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "flags": {flag: flag in flags for flag in FLAGS},
        "memory_gib": _memory_gib(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {package: _version(package) for package in PACKAGES},
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "git_commit": _git_commit(repo),
    }


def markdown(machine: dict, load_at_end: tuple[float, float, float] | None) -> str:
    flags = machine["flags"]
    has = ", ".join(f for f, present in flags.items() if present) or "none"
    lacks = ", ".join(f for f, present in flags.items() if not present) or "none"
    load = lambda value: "n/a" if value is None else " / ".join(f"{x:.1f}" for x in value)
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items())
    memory = f"{machine['memory_gib']:.0f} GiB" if machine["memory_gib"] else "?"
    rows = [
        ("CPU", f"{machine['cpu']} ({machine['vendor']}, family/model {machine['family_model']})"),
        ("cores", f"{machine['usable_cpus']} usable of {machine['logical_cpus']} logical; torch uses {machine['torch_threads']} threads"),
        ("SIMD flags present", has),
        ("SIMD flags absent", lacks),
        ("torch CPU kernels", machine["torch_cpu_capability"]),
        ("memory", memory),
        ("load average (1/5/15 min) at start / end", f"{load(machine['load_average'])} / {load(load_at_end)}"),
        ("Python", f"{machine['python']} on {machine['platform']}"),
        ("libraries", versions),
        ("ssps commit", machine["git_commit"]),
    ]
    notes = []
    if not flags.get("amx_bf16"):
        notes.append("No AMX on this CPU: bf16 runs on AVX-512 BF16 instructions" if flags.get("avx512_bf16")
                     else "No native bf16 on this CPU: bf16 is emulated and expected to be slow")
    if flags.get("avx512_vnni") or flags.get("avx_vnni"):
        notes.append("VNNI is present, so int8 GEMMs (u8 x s8) have a native dot-product instruction")
    text = table(("", ""), rows)
    if notes:
        text += "\n\n" + ". ".join(notes) + "."
    return text
