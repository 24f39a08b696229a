"""The base of every experiment's configuration: profile, device, seeds, validation, key.

An experiment subclasses :class:`ExperimentConfig` with its own fields, its profile table
(``PROFILES``: profile → field overrides) and ``check()`` for its own fields; everything
shared is here, together with the device and seed helpers the experiments use.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..method.checks import check_choice, check_int
from .store import results_dir

PROFILES = ("smoke", "cpu", "paper")  # smoke: CI, seconds; cpu: what the book shows; paper: a GPU
DEVICES = ("auto", "cpu", "cuda")


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def local_or_hub(name, what: str) -> str:
    """``"local"`` if ``name`` is an existing path, ``"hub"`` if it can only be a hub id
    (``name`` or ``owner/name``); a name that looks like a path but does not exist (a typo of
    a relative path, a file suffix, more than one slash, a first folder that exists here) is
    refused at once, so nothing reaches the network unless a hub id was meant."""
    text = str(name)
    path = Path(text).expanduser()
    if path.exists():
        return "local"
    first = Path(text).parts[0] if Path(text).parts else ""
    pathlike = (not _HUB_ID.match(text) or text.endswith((".jsonl", ".json", ".gguf", ".safetensors"))
                or (("/" in text) and Path(first).is_dir()))
    if pathlike:
        raise FileNotFoundError(f"{what} {text!r} does not exist (resolved to {path.resolve()}); a local path must "
                                "exist, and a hub id has the form 'name' or 'owner/name'")
    return "hub"


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → cuda if available else cpu; ``"cuda"`` without a GPU is refused plainly."""
    if device not in DEVICES:
        raise ValueError(f"parameter 'device' must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("parameter device='cuda' was asked for, but torch sees no CUDA GPU on this "
                           "machine; use device='cpu' or device='auto'")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def synchronize(device) -> None:
    """Wait for a CUDA device's queued work (timings cover the kernels); nothing on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class ExperimentConfig:
    """What every experiment has: a profile, a device, and seeds ``first_seed … first_seed + seeds − 1``.

    ``key()`` is what must match for stored results to be reused: every field but those in
    ``NOT_IN_KEY`` (which may differ between runs that share results).
    """

    profile: str = "cpu"
    seeds: int = 1
    first_seed: int = 0
    device: str = "auto"

    EXPERIMENT: ClassVar[str] = ""
    PROFILES: ClassVar[dict[str, dict]] = {}
    NOT_IN_KEY: ClassVar[tuple[str, ...]] = ("seeds", "device")

    @classmethod
    def for_profile(cls, profile: str, **overrides):
        """The profile's configuration with ``overrides`` (``None`` keeps the profile's value), validated."""
        check_choice("profile", profile, cls.PROFILES)
        unknown = sorted(set(overrides) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown} for {cls.__name__}; "
                             f"it has {sorted(cls.__dataclass_fields__)}")
        cfg = cls(profile=profile, **{**cls.PROFILES[profile], **{k: v for k, v in overrides.items() if v is not None}})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Refuse bad values, naming the field and what it accepts."""
        check_choice("profile", self.profile, PROFILES)
        check_int("seeds", self.seeds, 1)
        check_int("first_seed", self.first_seed, 0)
        check_choice("device", self.device, DEVICES)
        self.check()

    def check(self) -> None:
        """The experiment's own fields (override)."""

    def seed_list(self) -> range:
        return range(self.first_seed, self.first_seed + self.seeds)

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def results_dir(self) -> Path:
        return results_dir(self.EXPERIMENT, self.profile)

    @classmethod
    def results_dir_for(cls, profile: str) -> Path:
        """``data/results/<experiment>/<profile>``."""
        return results_dir(cls.EXPERIMENT, profile)

    def key(self) -> dict:
        d = asdict(self)
        for k in self.NOT_IN_KEY:
            d.pop(k)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
