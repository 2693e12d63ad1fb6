"""One map layer in memory: integer fids, shapely geometries, typed columns, id and foreign-key indexes.

The reader fills it from pyogrio arrays and the writer from ``MapData`` records, so both see the same
dtypes: integer columns are int64 when no row is null, float64 with NaN otherwise (pyogrio's rule,
contract §1.3), text columns are object arrays with ``None`` for null.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
import shapely
from shapely import STRtree

from planlab.errors import DataError


def canonical_id(value: Any) -> str | None:
    """The id string nuPlan gives an integer fid or foreign key (``str(int)``), None for null/NaN.

    contract §1.4: ids are the decimal text of the integer FID (no ``.0``, no leading zeros).
    """
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        if not float(value).is_integer():
            raise ValueError(f"foreign key {value!r} is not an integer")
    return str(int(value))


def parse_id(map_object_id: str | int) -> int | None:
    """The integer fid of an id string, or None when it is not the canonical decimal text of one."""
    if isinstance(map_object_id, int | np.integer):
        return int(map_object_id)
    text = str(map_object_id)
    try:
        value = int(text)
    except ValueError:
        return None
    return value if str(value) == text else None


class LayerTable:
    """The rows of one GeoPackage table, in table (row) order, with lazily built indexes."""

    def __init__(
        self,
        name: str,
        fids: np.ndarray,
        geometries: np.ndarray | None,
        columns: dict[str, np.ndarray],
        crs: str | None,
        source: str = "<memory>",
        stored_crs: str | None = None,
    ) -> None:
        self.name = name
        self.fids = np.asarray(fids, dtype=np.int64)
        n = len(self.fids)
        if geometries is None:
            self.geometries = None
        else:
            self.geometries = np.asarray(geometries, dtype=object)
            if self.geometries.shape != (n,):
                raise ValueError(f"{name}: {len(self.geometries)} geometries for {n} fids")
        for col, values in columns.items():
            if len(values) != n:
                raise ValueError(f"{name}: column {col} has {len(values)} values for {n} fids")
        self.columns = dict(columns)
        self.crs = crs
        self.source = source
        # The CRS the file stores the layer in (before reprojection to ``crs``); None when unknown.
        self.stored_crs = stored_crs if stored_crs is not None else crs

    def __len__(self) -> int:
        return len(self.fids)

    def __getstate__(self) -> dict[str, Any]:
        # Drop the lazily built indexes (the STRtree, id lists); they are rebuilt on first use.
        keep = ("name", "fids", "geometries", "columns", "crs", "source", "stored_crs")
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"LayerTable({self.name!r}, rows={len(self)}, columns={list(self.columns)}, crs={self.crs!r})"

    # ---- ids ---------------------------------------------------------------------------------------------
    @cached_property
    def ids(self) -> list[str]:
        """Map-object ids: the decimal strings of the fids, in row order (contract §1.2 step 4)."""
        return [str(int(f)) for f in self.fids]

    @cached_property
    def _row_of_fid(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for row, fid in enumerate(self.fids.tolist()):
            out.setdefault(fid, row)  # a duplicate fid (only possible in memory) keeps its first row
        return out

    def row(self, fid: int) -> int | None:
        """Row index of the feature with this fid, or None."""
        return self._row_of_fid.get(int(fid))

    def row_of_id(self, map_object_id: str | int) -> int | None:
        """Row index of the feature with this id string (canonical decimal text only), or None."""
        fid = parse_id(map_object_id)
        return None if fid is None else self.row(fid)

    # ---- columns -----------------------------------------------------------------------------------------
    def has_column(self, name: str) -> bool:
        return name in self.columns

    def column(self, name: str) -> np.ndarray:
        """The values of column ``name`` (DataError naming layer and column when it is missing)."""
        try:
            return self.columns[name]
        except KeyError:
            raise DataError(f"{self.source}: layer {self.name!r} has no column {name!r}") from None

    def geometry(self, row: int) -> Any:
        if self.geometries is None:
            raise DataError(f"{self.source}: layer {self.name!r} has no geometry")
        return self.geometries[row]

    def int_column(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(int64 values, valid mask) of an integer-valued column; null/NaN rows are invalid (value 0).

        contract §1.4: nuPlan compares foreign keys as integers; a NaN row never matches anything.
        """
        values = self.column(name)
        if values.dtype.kind in "iu":
            return values.astype(np.int64, copy=False), np.ones(len(values), dtype=bool)
        if values.dtype.kind == "f":
            valid = np.isfinite(values)
            out = np.zeros(len(values), dtype=np.int64)
            out[valid] = values[valid].astype(np.int64)
            return out, valid
        out = np.zeros(len(values), dtype=np.int64)
        valid = np.zeros(len(values), dtype=bool)
        for i, v in enumerate(values):
            key = parse_id(v) if isinstance(v, str) else (None if v is None else canonical_id(v))
            if key is not None:
                out[i] = int(key)
                valid[i] = True
        return out, valid

    @cached_property
    def _fk_indexes(self) -> dict[str, dict[int, tuple[int, ...]]]:
        return {}

    def rows_with(self, name: str, value: int) -> tuple[int, ...]:
        """Rows whose integer column ``name`` equals ``value``, in row order (nuPlan's FK lookup)."""
        index = self._fk_indexes.get(name)
        if index is None:
            values, valid = self.int_column(name)
            grouped: dict[int, list[int]] = {}
            for row in np.flatnonzero(valid).tolist():
                grouped.setdefault(int(values[row]), []).append(row)
            index = {k: tuple(v) for k, v in grouped.items()}
            self._fk_indexes[name] = index
        return index.get(int(value), ())

    def fk_id(self, name: str, row: int) -> str | None:
        """The foreign key of ``row`` in column ``name`` as a canonical id string (None when null)."""
        return canonical_id(self.column(name)[row])

    # ---- spatial index -----------------------------------------------------------------------------------
    @cached_property
    def tree(self) -> STRtree:
        """STRtree over the geometries (tree index == row index)."""
        if self.geometries is None:
            raise DataError(f"{self.source}: layer {self.name!r} has no geometry")
        return STRtree(self.geometries)

    def query(self, geometry: Any, predicate: str | None = None) -> np.ndarray:
        """Row indexes (sorted = table order) whose geometry satisfies ``predicate(geometry, row_geom)``."""
        if len(self) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.sort(self.tree.query(geometry, predicate=predicate)).astype(np.int64)

    @cached_property
    def bounds(self) -> np.ndarray:
        """(N, 4) array of (xmin, ymin, xmax, ymax) per row."""
        if self.geometries is None or len(self) == 0:
            return np.zeros((0, 4))
        return shapely.bounds(self.geometries)


def concat_tables(name: str, tables: Sequence[LayerTable], crs: str | None) -> LayerTable:
    """One virtual table from several (nuPlan's DRIVABLE_AREA): fids, geometries and the shared columns.

    contract §1.2: keep only the columns present without null in every part.
    """
    if not tables:
        return LayerTable(name, np.zeros(0, np.int64), np.zeros(0, object), {}, crs)
    fids = np.concatenate([t.fids for t in tables])
    geoms = np.concatenate(
        [t.geometries if t.geometries is not None else np.zeros(0, object) for t in tables]
    )
    shared = set(tables[0].columns)
    for t in tables[1:]:
        shared &= set(t.columns)
    columns: dict[str, np.ndarray] = {}
    for col in sorted(shared):
        parts = [t.columns[col] for t in tables]
        values = np.concatenate(parts)
        if values.dtype.kind == "f" and np.isnan(values).any():
            continue
        if values.dtype == object and any(v is None for v in values):
            continue
        columns[col] = values
    return LayerTable(name, fids, geoms, columns, crs, source=tables[0].source)
