"""The byte-level corpus a proxy model trains on, split into train and validation.

Default: the Python standard library's own ``*.py`` sources (``sysconfig.get_paths()
["stdlib"]``, site-/dist-packages excluded): present on every machine that runs ffnas, no
download, ~1,800 files and tens of MB on CPython 3.11. Users can name text files or folders
instead (folders are searched recursively with ``glob``; files with a NUL byte in their first
KiB are skipped as binary).

The split is by a hash of each file's path relative to its root, so it does not depend on the
machine, the file order or the other files: a file is validation iff
``sha256(path) mod 100 < val_percent``. Files are then taken in hash order (a fixed
pseudo-random order) up to ``max_bytes`` per split, so a cap samples the whole library rather
than its alphabetical head. A corpus with only one file (or with every file on one side)
splits by bytes instead: the last ``val_percent`` % of the concatenation is validation.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["Corpus", "load_corpus", "stdlib_root"]

_SEPARATOR = b"\n\n"
_SKIP_DIRS = ("site-packages", "dist-packages", "__pycache__")


@dataclass(frozen=True)
class Corpus:
    """Train and validation bytes as uint8 tensors, and where they came from."""

    train: torch.Tensor
    val: torch.Tensor
    train_files: int
    val_files: int
    source: str


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _files(root: Path, pattern: str) -> list[tuple[str, Path]]:
    if root.is_file():
        return [(root.name, root)]
    if not root.is_dir():
        raise FileNotFoundError(f"corpus path {str(root)!r} is neither a file nor a folder")
    found = []
    for folder, dirs, names in os.walk(root):
        # Prune in place: the interpreter's lib folder also holds every installed package.
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        for name in fnmatch.filter(names, pattern):
            path = Path(folder) / name
            if path.is_file():
                found.append((path.relative_to(root).as_posix(), path))
    return found


def _hash(rel: str) -> int:
    return int.from_bytes(hashlib.sha256(rel.encode()).digest()[:8], "big")


def _read_text(path: Path) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return None if b"\x00" in data[:1024] else data


def _take(files: list[tuple[int, Path]], max_bytes: int) -> tuple[bytes, int]:
    chunks: list[bytes] = []
    total = count = 0
    for _, path in sorted(files, key=lambda item: item[0]):
        data = _read_text(path)
        if not data:
            continue
        chunks.append(data)
        total += len(data) + len(_SEPARATOR)
        count += 1
        if total >= max_bytes:
            break
    return _SEPARATOR.join(chunks)[:max_bytes], count


_CACHE: dict[tuple[tuple[str, ...], str, int, int], Corpus] = {}


def load_corpus(
    paths: Sequence[str] | None = None,
    *,
    pattern: str | None = None,
    val_percent: int = 10,
    max_bytes: int = 8 << 20,
) -> Corpus:
    """The train/validation corpus (cached per process: the sandbox child is reused).

    ``paths``: text files or folders; None means the standard library. ``pattern``: the glob
    for folders (default ``*.py`` for the standard library, ``*`` for user folders).
    ``max_bytes`` caps the training split; validation gets ``max_bytes * val_percent / 100``.
    """
    if not 0 < val_percent < 100:
        raise ValueError(f"`0 < val_percent < 100` must hold, but got val_percent={val_percent}")
    if max_bytes < 1024:
        raise ValueError(f"`max_bytes >= 1024` must hold, but got max_bytes={max_bytes}")
    roots = [stdlib_root()] if not paths else [Path(p).expanduser() for p in paths]
    glob = pattern or ("*.py" if not paths else "*")
    key = (tuple(str(r) for r in roots), glob, val_percent, max_bytes)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    train_files: list[tuple[int, Path]] = []
    val_files: list[tuple[int, Path]] = []
    for i, root in enumerate(roots):
        for rel, path in _files(root, glob):
            h = _hash(f"{i}/{rel}" if len(roots) > 1 else rel)
            (val_files if h % 100 < val_percent else train_files).append((h, path))
    val_cap = max(1024, max_bytes * val_percent // 100)
    if train_files and val_files:
        train, n_train = _take(train_files, max_bytes)
        val, n_val = _take(val_files, val_cap)
    else:
        everything, n_train = _take(train_files + val_files, max_bytes + val_cap)
        cut = len(everything) * (100 - val_percent) // 100
        train, val, n_val = everything[:cut], everything[cut:], 0
    if len(train) < 1024 or len(val) < 256:
        raise ValueError(
            f"the corpus at {[str(r) for r in roots]} (glob {glob!r}) is too small: "
            f"{len(train)} train and {len(val)} validation bytes (need >= 1024 and >= 256)"
        )
    corpus = Corpus(
        train=torch.frombuffer(bytearray(train), dtype=torch.uint8),
        val=torch.frombuffer(bytearray(val), dtype=torch.uint8),
        train_files=n_train,
        val_files=n_val,
        source="stdlib" if not paths else ",".join(str(r) for r in roots),
    )
    _CACHE[key] = corpus
    return corpus
