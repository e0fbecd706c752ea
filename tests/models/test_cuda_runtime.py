"""cuda-python's runtime bindings by either name (13.x `cuda.bindings.runtime`, 12.x `cuda.cudart`), with stand-in modules."""

from __future__ import annotations

import sys
import types

import pytest

from models.cuda_runtime import cudart
from models.errors import BackendUnavailable


def stand_in(monkeypatch, **modules) -> None:
    """Put stand-in modules (or None: "not installed") under the names cuda-python uses."""
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    package = types.ModuleType("cuda")
    package.__path__ = []
    monkeypatch.setitem(sys.modules, "cuda", package)
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)


def runtime(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.cudaMalloc = lambda nbytes: (0, 1234)
    return module


def test_cuda_python_13_is_found_under_its_new_name(monkeypatch):
    new = runtime("cuda.bindings.runtime")
    stand_in(monkeypatch, **{"cuda.bindings": types.ModuleType("cuda.bindings"), "cuda.bindings.runtime": new, "cuda.cudart": None})
    assert cudart() is new and cudart().cudaMalloc(16) == (0, 1234)


def test_cuda_python_12_is_found_under_its_old_name(monkeypatch):
    old = runtime("cuda.cudart")
    stand_in(monkeypatch, **{"cuda.bindings": None, "cuda.bindings.runtime": None, "cuda.cudart": old})
    assert cudart() is old


def test_neither_is_a_clear_backend_unavailable(monkeypatch):
    stand_in(monkeypatch, **{"cuda.bindings": None, "cuda.bindings.runtime": None, "cuda.cudart": None})
    with pytest.raises(BackendUnavailable, match=r"cuda.bindings.runtime: .*; cuda.cudart: .*shelfid\[jetson\]"):
        cudart()
