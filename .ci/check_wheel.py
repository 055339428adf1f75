"""Run from outside the checkout with the wheel installed: the package comes from
site-packages, its native kernels were compiled into it, the native engine serves the CPU, and
a fit runs."""

import io
import sys
from contextlib import redirect_stdout

import numpy as np

import torchkmeans
from torchkmeans._engines import _library

where = torchkmeans.__file__
assert "site-packages" in where, f"torchkmeans imported from {where}, not the installed wheel"
status = _library.status()
assert status.library is not None, f"no native kernels in the wheel: {status.reason}"
buffer = io.StringIO()
with redirect_stdout(buffer):
    torchkmeans.show_config()
config = buffer.getvalue()
assert "native" in config and status.variant in config, config
rng = np.random.default_rng(0)
X = rng.normal(size=(2000, 4)).astype(np.float32)
km = torchkmeans.KMeans(5, random_state=0).fit(X)
assert km.labels_.shape == (2000,) and np.isfinite(km.inertia_)
print(config)
print(f"wheel ok: {where}, native {status.variant} ({status.path.name}), inertia {km.inertia_:.6g}")
sys.exit(0)
