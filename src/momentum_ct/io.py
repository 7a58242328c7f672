"""Reading and writing the files that are the interfaces between stages.

Trajectories and predictions are parquet tables (vectors as ``list<double>`` columns), metadata
JSON beside them. Writers are deterministic (sorted keys, no timestamps), so rerunning a stage on
the CPU gives byte-identical files. Readers check the columns they rely on.
"""
from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

VECTOR_COLUMNS = ("x", "m")
# ``m`` is the heavy-ball family's record, not every method's (``Method.records``: ``x`` always)
TRAJECTORY_COLUMNS = ("h", "step", "t", "loss", "x")


class SchemaError(ValueError):
    """A file between stages lacks a column or key that its reader needs, or cannot be read at all."""


# Every file between stages is a target of the pipeline, so deleting one and rerunning rebuilds it.
REBUILD = "delete it and rerun the pipeline (make replicate) to rebuild it"


def is_vector_column(values) -> bool:
    """Whether a column holds one vector per row (written as ``list<double>``)."""
    return len(values) > 0 and isinstance(values[0], np.ndarray)


def _to_arrow(columns: dict[str, Any]) -> pa.Table:
    arrays = {}
    for name, values in columns.items():
        if is_vector_column(values):
            arrays[name] = pa.array([np.asarray(v, dtype=np.float64) for v in values], type=pa.list_(pa.float64()))
        else:
            arrays[name] = pa.array(np.asarray(values))
    return pa.table(arrays)


def write_table(path: str | Path, columns: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    table = _to_arrow(columns)
    # floats byte-stream split, vectors included (a list's values are the leaf ``name.list.element``): their
    # sign and exponent bytes side by side compress, 14% off trajectories; the rest dictionary-encoded
    scalars = [f.name for f in table.schema if pa.types.is_floating(f.type)]
    vectors = [f.name for f in table.schema if pa.types.is_list(f.type) and pa.types.is_floating(f.type.value_type)]
    others = [f.name for f in table.schema if f.name not in scalars + vectors]
    pq.write_table(table, tmp, compression="zstd", use_dictionary=others or False,
                   use_byte_stream_split=scalars + [f"{v}.list.element" for v in vectors] or False)
    tmp.replace(path)  # atomic: an interrupted write never leaves a half file under the real name


def concat_columns(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The parts' columns one after another, NaN where a part lacks a column. A column that every part holds as a
    one-dimensional array (or lacks) stays an array, with the dtype that listing its values would give; others
    (strings, vectors) become lists."""
    parts = list(parts)
    keys = list(dict.fromkeys(k for p in parts for k in p))
    lengths = [len(next(iter(p.values()))) for p in parts]
    out: dict[str, Any] = {}
    for k in keys:
        values = [p.get(k) for p in parts]
        if all(v is None or (isinstance(v, np.ndarray) and v.ndim == 1) for v in values):
            out[k] = np.concatenate([np.full(n, np.nan) if v is None else v for v, n in zip(values, lengths)])
            continue
        vals: list = []
        for v, n in zip(values, lengths):
            vals.extend([np.nan] * n if v is None else list(v))
        out[k] = vals
    return out


def read_table(path: str | Path, required: Iterable[str] = ()) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing input file {path}")
    try:
        df = pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as err:
        raise SchemaError(f"{path} cannot be read ({err}); {REBUILD}") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise SchemaError(f"{path} lacks column(s) {', '.join(missing)}; {REBUILD}")
    return df


def read_trajectory(path: str | Path) -> pd.DataFrame:
    return read_table(path, TRAJECTORY_COLUMNS)


def attach_vectors(traj: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """The trajectory with the vector columns of its vectors file (written beside it, row for row), where that file
    holds any rows."""
    vectors = read_table(path)
    if vectors.empty:
        return traj
    if len(vectors) != len(traj):
        raise SchemaError(f"{path} has {len(vectors)} rows for the trajectory's {len(traj)}; {REBUILD}")
    return traj.assign(**{name: vectors[name].to_numpy() for name in vectors.columns})


def stack(series: pd.Series) -> np.ndarray:
    """A ``list<double>`` column as a 2-D array (rows x dimension)."""
    return np.stack([np.asarray(v, dtype=np.float64) for v in series])


def write_text(path: str | Path, text: str) -> None:
    """Write under a temporary name and rename, so an interrupted stage never leaves a half file; gzip-compressed
    where the name ends in ``.gz`` (no timestamp in the header: the same text gives the same bytes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    data = text.encode()
    tmp.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    tmp.replace(path)


def read_text(path: str | Path) -> str:
    path = Path(path)
    return gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    # compact: a shard of thousands of series has megabytes of metadata, a third of it indentation
    write_text(path, json.dumps(data, sort_keys=True, separators=(",", ":"), default=_jsonable) + "\n")


def read_json(path: str | Path, required: Iterable[str] = ()) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing input file {path}")
    try:
        data = json.loads(read_text(path))
    except (OSError, ValueError, EOFError, zlib.error) as err:
        raise SchemaError(f"{path} cannot be read ({err}); {REBUILD}") from None
    missing = [k for k in required if k not in data]
    if missing:
        raise SchemaError(f"{path} lacks key(s) {', '.join(missing)}; {REBUILD}")
    return data


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
