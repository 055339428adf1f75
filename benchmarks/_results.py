"""benchmarks/RESULTS.md holds one section per benchmark script; each script rewrites only its
own section (between ``<!-- begin: NAME -->`` and ``<!-- end: NAME -->``), atomically."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
ORDER = (
    "lloyd",
    "seeding",
    "default-fit",
    "tradeoff",
    "unstructured",
    "quality",
    "out-of-core",
    "minibatch",
    "bisect",
    "distributed",
    "metrics",
)


def write_section(name: str, body: str, path: Path = RESULTS) -> None:
    """Replace (or add, in ``ORDER``) the section ``name`` of ``path`` with ``body``."""
    text = path.read_text() if path.exists() else ""
    sections = dict(
        re.findall(r"<!-- begin: ([\w-]+) -->\n(.*?)<!-- end: \1 -->\n", text, flags=re.S)
    )
    sections[name] = body.rstrip("\n") + "\n"
    names = [n for n in ORDER if n in sections] + sorted(set(sections) - set(ORDER))
    out = "".join(f"<!-- begin: {n} -->\n{sections[n]}<!-- end: {n} -->\n" for n in names)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".RESULTS.", suffix=".md")
    with os.fdopen(fd, "w") as f:
        f.write(out)
    os.replace(tmp, path)


def machine() -> str:
    """One line about the machine: CPU model, cores, memory."""
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB RAM"


def publish(name: str, lines: list[str], *, write: bool = True) -> None:
    """Print a benchmark's section and, unless ``write`` is false, store it in RESULTS.md."""
    text = "\n".join(lines) + "\n"
    print(text)
    if write:
        write_section(name, text)
