"""The results store: one folder of CSV files with a ``provenance.json`` beside them.

Every experiment writes through :class:`ResultsStore`, which

* loads stored tables (an empty frame with the expected columns where none is stored);
* refuses to mix results of different configurations (:meth:`ResultsStore.check`);
* writes atomically (a reader, or an interrupted run, sees the old file or the new one) and
  keeps the file's mode;
* holds a lock while a run writes, so two runs on one folder cannot lose each other's rows;
* carries the provenance, with the history of earlier runs that filled the same folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .provenance import ROOT


def results_dir(experiment: str, profile: str) -> Path:
    """``data/results/<experiment>/<profile>`` in this checkout."""
    return ROOT / "data" / "results" / experiment / profile


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, keeping an existing
    file's mode; the temporary file is removed if anything fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@dataclass(frozen=True)
class TableSchema:
    """What a results table must hold: ``columns`` present, ``numeric`` columns finite numbers in
    every row, no two rows with the same ``keys``. Checked on every read and every write, so a
    corrupt or hand-edited file is refused with its name, and a NaN is never stored as a result."""

    columns: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()

    def validate(self, frame: pd.DataFrame, path: Path) -> pd.DataFrame:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; expected at least {list(self.columns)}")
        for col in self.numeric:
            values = pd.to_numeric(frame[col], errors="coerce")
            bad = ~np.isfinite(values.to_numpy(dtype=float))
            if bad.any():
                rows = (np.flatnonzero(bad) + 2).tolist()[:5]  # + 2: the header line, 1-based lines
                raise ValueError(f"{path}: column {col!r} must hold finite numbers; line(s) {rows} hold "
                                 f"{frame[col][bad].tolist()[:5]}")
            frame[col] = values
        if self.keys and len(frame):
            dup = frame.duplicated(list(self.keys), keep=False)
            if dup.any():
                first = frame.loc[dup, list(self.keys)].iloc[0].to_dict()
                raise ValueError(f"{path}: {int(dup.sum())} rows repeat the same {list(self.keys)} (e.g. {first})")
        return frame


class ResultsStore:
    """One results folder: ``<dir>/<name>.csv`` tables and ``<dir>/provenance.json``."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)

    @property
    def provenance_path(self) -> Path:
        return self.dir / "provenance.json"

    def provenance(self) -> dict | None:
        """The stored provenance, or None; a file that is not a JSON object is refused by name."""
        if not self.provenance_path.exists():
            return None
        try:
            prov = json.loads(self.provenance_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{self.provenance_path} is not valid JSON ({exc}); restore it from git or rerun "
                             "with force=True") from None
        if not isinstance(prov, dict):
            raise ValueError(f"{self.provenance_path} must hold a JSON object, got {type(prov).__name__}")
        return prov

    def load(self, name: str = "metrics", columns=(), schema: TableSchema | None = None) -> pd.DataFrame:
        """``<name>.csv`` checked against ``schema``, or an empty frame with ``columns`` (or the
        schema's) where none is stored. An unreadable file is refused with its name."""
        path = self.dir / f"{name}.csv"
        columns = list(columns or (schema.columns if schema else ()))
        if not path.exists():
            return pd.DataFrame(columns=columns)
        try:
            frame = pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} cannot be read as a CSV table ({type(exc).__name__}: {exc}); restore it "
                             "from git or rerun with force=True") from None
        return (schema or TableSchema(tuple(columns))).validate(frame, path)

    def check(self, key: dict, defaults: dict | None = None) -> None:
        """Refuse (ValueError naming the folder and the differing fields) when the stored results
        come from a configuration other than ``key``. Fields added to the configuration after
        those results were written take ``defaults``' values."""
        prov = self.provenance()
        if prov is None:
            raise ValueError(f"{self.dir} holds results without a provenance.json, so nothing proves their "
                             "configuration; pass force=True to replace them, or choose another out_dir")
        stored = prov.get("config_key")
        if stored is not None and defaults:
            stored = {**{k: v for k, v in defaults.items() if k not in stored}, **stored}
        if stored != key:
            diff = sorted(k for k in key if stored is None or stored.get(k) != key[k])
            raise ValueError(f"{self.dir} holds results of another configuration (differs in {diff}); "
                             "pass force=True to replace them, or choose another out_dir")

    def history(self) -> list[dict]:
        """Earlier runs that wrote this folder (commit, device, start and end), oldest first."""
        prev = self.provenance()
        if prev is None:
            return []
        return prev.get("earlier_runs", []) + [
            {k: prev.get(k) for k in ("git_commit", "device", "started_at", "finished_at")}]

    def write(self, tables: dict[str, pd.DataFrame], provenance: dict,
              schemas: dict[str, TableSchema] | None = None) -> None:
        """Check every table against its schema (before anything is written), then write every
        table (``name -> frame``) and the provenance, each atomically."""
        for name, frame in tables.items():
            if schemas and name in schemas:
                schemas[name].validate(frame.copy(), self.dir / f"{name}.csv")
        for name, frame in tables.items():
            atomic_write(self.dir / f"{name}.csv", frame.to_csv(index=False, float_format="%.6g"))
        atomic_write(self.provenance_path, json.dumps(provenance, indent=2, default=str) + "\n")

    @contextlib.contextmanager
    def lock(self):
        """Hold ``<dir>/.lock`` exclusively; a second run on the same folder is refused at once."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RuntimeError(f"another run is writing {self.dir}; wait for it to finish") from None
            try:
                yield self
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def slug(label: str) -> str:
    """A file-name-safe form of a label: "SGD λ=0.5" → "SGD_lambda_0_5", "⟨Z⟩, 10 shots" → "Z_10_shots"."""
    label = label.replace("λ", "lambda").replace("π", "pi").replace("θ", "theta").replace("⟨Z⟩", "Z")
    return re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")
