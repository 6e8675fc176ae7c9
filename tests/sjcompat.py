"""Make SpikingJelly 2.0.0's dataset code importable next to the CPU build of torch.

The only torchvision/torchaudio releases that pair with torch 2.13.0 are CUDA builds:
torchvision's ``_meta_registrations`` registers fake kernels for ``torchvision::nms`` and
``torchvision::qnms`` whether or not its compiled ops loaded, and torchaudio loads shared
libraries that link ``libc10_cuda.so``. SpikingJelly's dataset code uses only pure-Python parts
of both, so for the tests we declare the two operator schemas before torchvision is imported
and leave torchaudio as an empty module (only ``speechcommands`` calls it, at run time).
This lives in the tests: the product never imports either package.
"""

from __future__ import annotations

import sys
import types

_LIB = None


def import_spikingjelly_datasets() -> types.ModuleType:
    """Import ``spikingjelly.datasets`` with the CPU-torch work-around applied once."""
    global _LIB
    import torch

    if _LIB is None and "torchvision" not in sys.modules:
        _LIB = torch.library.Library("torchvision", "DEF")
        for schema in (
            "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
            "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
        ):
            _LIB.define(schema)
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    import spikingjelly.configure as sj_configure
    import spikingjelly.datasets as sjd

    # SpikingJelly converts files in a thread pool whose threads call np.load, which parses .npy
    # headers with ast.literal_eval. CPython 3.11 keeps the AST recursion depth in global state
    # (gh-106905), so parsing in several threads at once now and then fails with "SystemError: AST
    # constructor recursion depth mismatch". One thread makes the reference deterministic.
    sj_configure.max_threads_number_for_datasets_preprocess = 1
    return sjd
