"""The CUDA runtime bindings of cuda-python, whichever generation is installed.

cuda-python 13 (cuda-bindings 13.0, August 2025) removed the `cuda.cudart` module;
its runtime API lives in `cuda.bindings.runtime`, which 12.6+ also provides. JetPack 6
ships CUDA 12 and JetPack 7 CUDA 13, so both are supported: the new name first, the
12.x name as the fallback. The functions are the same (`cudaMalloc`, `cudaMemcpyAsync`, …,
each returning `(err, *values)`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from models.errors import BackendUnavailable

NAMES = ("cuda.bindings.runtime", "cuda.cudart")  # cuda-python 13.x (and 12.6+), then 12.x


def cudart() -> ModuleType:
    """The runtime API module; BackendUnavailable names what was tried when neither imports."""
    problems = []
    for name in NAMES:
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            problems.append(f"{name}: {exc}")
    raise BackendUnavailable(f"cuda-python's runtime bindings are not importable ({'; '.join(problems)}); "
                             "pip install 'shelfid[jetson]' (cuda-python 12 on JetPack 6, 13 on JetPack 7)")
