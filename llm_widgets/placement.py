"""Where a model runs and in what dtype: the default device, checks of device= and dtype=, and
models placed by accelerate (device_map / offload), which are never moved or cast."""
from __future__ import annotations

from typing import Any

import torch

from .errors import LLMWidgetsError


def default_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def parse_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
             "fp16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype not in names:
        raise ValueError(f"Unknown dtype {dtype!r}; use one of {sorted(names)} or a torch.dtype")
    return names[dtype]


def check_dtype(dtype) -> None:
    if dtype is not None and not dtype.is_floating_point:
        raise LLMWidgetsError(f"dtype={dtype} is not a floating-point type: models run in 'float32', "
                              "'float16' or 'bfloat16' (quantized models: load them yourself and pass "
                              "(model, tokenizer)).")


def check_device(device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise LLMWidgetsError(f"Unknown device {device!r}; use 'cpu', 'cuda', 'cuda:0' or 'mps'.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LLMWidgetsError(f"device={device!r}, but no CUDA GPU is visible to PyTorch here (CPU-only "
                              "build or no driver). Use device='cpu', or leave device=None to pick one.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise LLMWidgetsError(f"device={device!r}, but only {torch.cuda.device_count()} GPU(s) are visible.")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise LLMWidgetsError(f"device={device!r}, but Apple's MPS backend is not available here.")
    return dev


def is_dispatched(model) -> bool:
    """True for a model placed by accelerate: loaded with a device_map (`hf_device_map`), or with
    accelerate hooks (dispatch_model, cpu_offload, disk_offload). Such a model is never moved."""
    if getattr(model, "hf_device_map", None):
        return True
    return any(hasattr(m, "_hf_hook") for m in model.modules())


def dispatched_device(model, device, dtype) -> torch.device:
    """The input device of a dispatched model (its input embeddings'); `device` and `dtype`, when
    given, must agree with how it was placed (it cannot be moved or cast)."""
    from .adapter.probe import input_device

    dev = input_device(model)
    want = None if device is None else check_device(device)
    if want is not None and not (want.type == dev.type and want.index in (None, dev.index)):
        raise LLMWidgetsError(
            f"device={device!r}, but this model is dispatched by accelerate (device_map or offload) and its "
            f"inputs go to {dev}; llm-widgets never moves a dispatched model. Leave device=None.")
    have = next(model.parameters()).dtype
    if dtype is not None and have != dtype:
        raise LLMWidgetsError(
            f"dtype={str(dtype).replace('torch.', '')!r}, but this model is dispatched by accelerate (device_map "
            f"or offload) in {str(have).replace('torch.', '')}, and a dispatched model cannot be cast. Load it "
            f"in that dtype: llm_widgets.load(name, device_map=..., dtype=...), or from_pretrained(..., dtype=...).")
    return dev
