"""Read an upstream YOLOv5 `.pt` checkpoint without importing upstream code.

Upstream checkpoints are pickled model objects. A restricted unpickler maps
their classes (and torch.nn's) to `Stub`, a plain container that only keeps
the pickled state, and refuses every other global, so a pickle cannot run
code: only tensor rebuilding and a few builtins are resolved for real.
"""

from __future__ import annotations

import collections
import pickle
import types
from dataclasses import dataclass
from pathlib import Path

import torch

from models.errors import ModelError

# Module prefixes whose classes become Stubs: upstream YOLOv5's and torch.nn's.
_STUB_MODULES = ("models.", "utils.", "torch.nn.modules.")

_REAL_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    **{("torch", name): getattr(torch, name) for name in (
        "HalfStorage", "FloatStorage", "DoubleStorage", "LongStorage", "IntStorage",
        "BFloat16Storage", "ByteStorage", "BoolStorage", "float16", "float32",
    )},
}


class Stub:
    """Stands in for a pickled upstream or torch.nn object; holds its state only."""

    _stub_class = "?"

    def __setstate__(self, state):
        if isinstance(state, tuple):  # (dict, slots) from some picklers
            state = {k: v for part in state if isinstance(part, dict) for k, v in part.items()}
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"Stub({self._stub_class})"


def _stub_class(module: str, name: str) -> type:
    return type(name, (Stub,), {"_stub_class": f"{module}.{name}"})


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _REAL_GLOBALS:
            return _REAL_GLOBALS[(module, name)]
        if module.startswith(_STUB_MODULES) or module in ("models", "utils"):
            return _stub_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a model checkpoint")


# torch.load takes a module-like object with Unpickler and load.
restricted_pickle = types.SimpleNamespace(
    Unpickler=RestrictedUnpickler,
    load=lambda f, **kw: RestrictedUnpickler(f, **kw).load(),
    __name__="restricted_pickle",
)


@dataclass(frozen=True)
class YOLOv5Checkpoint:
    state_dict: dict[str, torch.Tensor]
    yaml: dict
    names: list[str]
    stride: list[int]
    bn_eps: float


def load_yolov5_checkpoint(path: Path | str) -> YOLOv5Checkpoint:
    """Tensors, architecture yaml, class names and strides of an upstream checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", pickle_module=restricted_pickle, weights_only=False)
    except pickle.UnpicklingError as exc:
        raise ModelError(f"{path}: refused: {exc}") from None
    except Exception as exc:  # torch raises many kinds for a broken zip/pickle
        raise ModelError(f"{path}: not a readable PyTorch checkpoint: {exc}") from None
    model = ckpt.get("ema") or ckpt.get("model") if isinstance(ckpt, dict) else ckpt
    if not isinstance(model, Stub) or not hasattr(model, "yaml"):
        raise ModelError(f"{path}: expected an upstream YOLOv5 checkpoint ({{'model': DetectionModel}}), found {type(model).__name__}")
    state = _state_dict(model)
    names = model.names
    if isinstance(names, dict):
        names = [names[i] for i in sorted(names)]
    return YOLOv5Checkpoint(
        state_dict={k: v.float() for k, v in state.items()},
        yaml=dict(model.yaml),
        names=list(names),
        stride=[int(s) for s in model.stride.tolist()],
        bn_eps=_bn_eps(model) or 1e-3,
    )


def _bn_eps(module: Stub) -> float | None:
    """Upstream sets BatchNorm eps to 1e-3 at init; read it rather than assume it."""
    if module._stub_class.endswith("BatchNorm2d"):
        return float(module.eps)
    for child in getattr(module, "_modules", {}).values():
        if child is not None and (eps := _bn_eps(child)) is not None:
            return eps
    return None


def _state_dict(module: Stub, prefix: str = "") -> dict[str, torch.Tensor]:
    """The same keys torch.nn.Module.state_dict() would give for this module tree."""
    out: dict[str, torch.Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, tensor in getattr(module, group, {}).items():
            if tensor is not None and name not in getattr(module, "_non_persistent_buffers_set", set()):
                out[prefix + name] = tensor.detach()
    for name, child in getattr(module, "_modules", {}).items():
        if child is not None:
            out.update(_state_dict(child, f"{prefix}{name}."))
    return out
