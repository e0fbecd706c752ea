"""Model metadata carried inside ONNX files (`metadata_props`).

Keys we write: kind (detector | embedder), model_id (sha256 of the weights),
input_size, names (JSON list) and stride for detectors, embedding_dim, mean
and std for embedders, licence, source. Upstream YOLOv5 exports carry
`stride` and `names` (a Python dict literal); both forms are read.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from models.errors import ModelError

if TYPE_CHECKING:
    import onnx


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(state_dict: dict) -> str:
    """A stable id for a set of weights: names, shapes and bytes in key order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def write_metadata(model: onnx.ModelProto, metadata: dict[str, object]) -> None:
    """Set metadata_props in place; non-string values are stored as JSON."""
    existing = {p.key: p for p in model.metadata_props}
    for key, value in metadata.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if key in existing:
            existing[key].value = text
        else:
            model.metadata_props.add(key=key, value=text)


def parse_names(text: str) -> list[str]:
    """Class names from our JSON list or upstream's `{0: 'person', ...}` dict literal."""
    try:
        names = json.loads(text)
    except json.JSONDecodeError:
        try:
            names = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ModelError(f"unreadable class names in model metadata: {text[:80]!r}") from None
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names, key=int)]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ModelError(f"class names in model metadata must be a list of strings, found {text[:80]!r}")
    return names


def parse_float_list(text: str | None, default: list[float]) -> np.ndarray:
    return np.asarray(json.loads(text) if text else default, dtype=np.float32)


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def describe_onnx(path: Path | str) -> dict:
    """File, sha256, inputs, outputs and metadata of an ONNX model, without running it."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    import onnx  # here, not at the top: importing onnx costs ~1 s, and every `shelfid` process imports this module

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelError(f"{path}: not a valid ONNX model: {str(exc)[:200]}") from None
    return {
        "file": str(path),
        "sha256": sha256_file(path),
        "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
        "inputs": [{"name": i.name, "shape": _dims(i)} for i in model.graph.input],
        "outputs": [{"name": o.name, "shape": _dims(o)} for o in model.graph.output],
        "metadata": {p.key: p.value for p in model.metadata_props},
    }
