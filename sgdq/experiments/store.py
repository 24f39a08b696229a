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
from pathlib import Path

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


class ResultsStore:
    """One results folder: ``<dir>/<name>.csv`` tables and ``<dir>/provenance.json``."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)

    @property
    def provenance_path(self) -> Path:
        return self.dir / "provenance.json"

    def provenance(self) -> dict | None:
        """The stored provenance, or None."""
        return json.loads(self.provenance_path.read_text()) if self.provenance_path.exists() else None

    def load(self, name: str = "metrics", columns=()) -> pd.DataFrame:
        """``<name>.csv``, or an empty frame with ``columns`` where none is stored."""
        path = self.dir / f"{name}.csv"
        return pd.read_csv(path) if path.exists() else pd.DataFrame(columns=list(columns))

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

    def write(self, tables: dict[str, pd.DataFrame], provenance: dict) -> None:
        """Write every table (``name -> frame``), then the provenance, each atomically."""
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
