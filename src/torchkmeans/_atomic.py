"""Atomic writes: a temporary file in the same folder, renamed onto the target only when the
body has written it, so no partial or empty output is ever left behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    If the body raises (or the process dies), ``path`` is left untouched and the temporary file
    is removed, so no partial or empty output is ever left behind. Errors name ``path``, never
    the hidden temporary file.
    """
    with atomic_paths(path) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike[str]) -> Iterator[tuple[Path, ...]]:
    """:func:`atomic_path` for several outputs at once, all or nothing: each gets a temporary
    path, and only when the body has written every one are they renamed onto their targets."""
    targets = [Path(p) for p in paths]
    temps: list[Path] = []
    try:
        for target in targets:
            folder = target.parent if str(target.parent) else Path(".")
            try:
                fd, name = tempfile.mkstemp(
                    prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=folder
                )
            except OSError as exc:
                raise OSError(exc.errno, f"{target}: cannot write ({exc.strerror})") from None
            os.close(fd)
            temps.append(Path(name))
        try:
            yield tuple(temps)
        except OSError as exc:  # name the user's file, not the temporary one
            if exc.filename is not None and Path(exc.filename) in temps:
                target = targets[temps.index(Path(exc.filename))]
                raise OSError(exc.errno, f"{target}: cannot write ({exc.strerror})") from None
            raise
        umask = os.umask(0)
        os.umask(umask)
        for tmp in temps:
            os.chmod(tmp, 0o666 & ~umask)
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
    finally:
        for tmp in temps:
            with contextlib.suppress(OSError):
                tmp.unlink()
