"""Engines: who runs the Lloyd pass (and its layout, update, moments, order and k-means++).

- ``dispatch.py``: :func:`~.dispatch.engine_for`, the one place that picks the engine;
- ``torch_engine.py``: the pass in PyTorch, on any device (CUDA, and the CPU fallback);
- ``native_engine.py``: the pass in the C kernels of ``../csrc/`` (CPU), whole loops included;
- ``_kernels.py``: one typed wrapper per C kernel; ``_library.py``: finds and loads the kernels
  compiled into the package; ``_constants.py``: the constants C and Python share.

This package's ``__init__`` imports nothing, so ``_library`` can be used without torch.
"""
