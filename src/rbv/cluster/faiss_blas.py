"""faiss, loaded with its matrix products on the kernels this processor can run.

The faiss-cpu wheel bundles its own OpenBLAS (0.3.15, from 2021), which picks its
kernels from the processor's model number. It does not know processors newer than
itself (Intel's since 2022: Alder Lake and later, Sapphire Rapids), and on those it falls
back to its plainest kernels ("Prescott", SSE3). Measured on a Sapphire Rapids core
(2 cores, 512-d faces): the exact 30-NN graph of 30,000 faces 15.4 s → 3.9 s, the coarse
pass of 100,000 faces over 4,000 lists 7.2 s → 1.7 s with the kernels it should use.
numpy's own OpenBLAS is newer and names the processor right; faiss's is told that name
(``OPENBLAS_CORETYPE``, read once, when the library loads), in the words an OpenBLAS of
2021 knows. A core type the user set is kept; a name it would not know is not passed on
(it then detects the processor itself, as before)."""

from __future__ import annotations

import os
import platform
import sys
from types import ModuleType

CORETYPE = "OPENBLAS_CORETYPE"
KNOWN_2021 = frozenset({
    "Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Sandybridge",
    "Haswell", "SkylakeX", "Cooperlake", "Athlon", "Opteron", "Opteron(SSE3)",
    "Barcelona", "Bobcat", "Bulldozer", "Piledriver", "Steamroller", "Excavator", "Zen",
    "Nano"})
"""x86 core types of faiss's OpenBLAS (0.3.15's dynamic list)."""
NEWER = {"SapphireRapids": "SkylakeX"}
"""Later core types, as the nearest one it knows: the same instructions for its float
products (AVX-512)."""


def load_faiss() -> ModuleType:
    """``import faiss``, its OpenBLAS told the core type numpy's found (:data:`CORETYPE`
    set for the import only), so both run the same kernels."""
    if "faiss" in sys.modules:
        return sys.modules["faiss"]
    core = None if CORETYPE in os.environ else blas_core_type()
    if core is not None:
        os.environ[CORETYPE] = core
    try:
        import faiss
    finally:
        if core is not None:
            del os.environ[CORETYPE]
    return faiss


def blas_core_type() -> str | None:
    """The core type numpy's OpenBLAS chose for this processor, as faiss's OpenBLAS
    names it; None where there is none to pass on (not x86, not OpenBLAS, unknown)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    import numpy  # noqa: F401  (its OpenBLAS loaded, to be asked)
    from threadpoolctl import threadpool_info

    for lib in threadpool_info():
        if lib.get("internal_api") == "openblas" and "faiss" not in lib.get("filepath", ""):
            return known_2021(str(lib.get("architecture") or ""))
    return None


def known_2021(name: str) -> str | None:
    """OpenBLAS's core type ``name`` as faiss's OpenBLAS knows it; None for one it
    would not know, and for its plainest (it finds that one itself)."""
    name = NEWER.get(name, name)
    return name if name in KNOWN_2021 and name != "Prescott" else None
