"""Small I/O helpers shared by every stage: atomic writes, hashing, JSON.

Every artefact a stage produces goes through an atomic write (write to a temporary
sibling, fsync, ``os.replace``) so that a killed run never leaves a half-written file
that a later run could mistake for a complete one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dumps_json(obj: Any) -> str:
    """Stable JSON: sorted keys, fixed indentation, trailing newline (byte-deterministic)."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj))


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_table(path: str | os.PathLike[str], table: pa.Table, schema: pa.Schema | None = None) -> None:
    """Atomic, single-file, zstd Parquet write (byte-identical for identical tables).

    Dictionary-encoded columns are written as plain strings in the file schema
    (``store_schema=False``, for tables without key/value metadata), so readers always see ``schema``.
    """
    if schema is not None and [f.name for f in table.schema] != schema.names:
        raise ValueError(f"{Path(path).name}: columns {table.schema.names} do not match the schema {schema.names}")
    with atomic_path(path) as tmp:
        # key/value metadata (provenance) lives in the stored Arrow schema: keep it when there is some
        pq.write_table(table, tmp, compression="zstd", store_schema=bool(table.schema.metadata))
