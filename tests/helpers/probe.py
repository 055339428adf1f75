"""Run a measurement script of tests/helpers in a fresh Python process and read its JSON line."""

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def run_probe(script: str, *args: object, timeout: float = 300) -> dict:
    # glibc raises its mmap threshold after big frees and then keeps freed chunk buffers in its
    # arenas, which makes the resident peak of identical runs vary by tens of MB. A fixed
    # threshold returns freed buffers to the OS, so what is measured is the memory torchkmeans
    # holds, not the allocator's retention.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    out = subprocess.run(
        [sys.executable, str(HERE / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])
