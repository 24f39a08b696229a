"""The shared experiment plumbing (configuration base, results store) and the chapters' tables."""

import os
import stat

import numpy as np
import pandas as pd
import pytest

from sgdq.analysis import tables
from sgdq.experiments import llm_finetuning as lf
from sgdq.experiments import text_classification as tc
from sgdq.experiments.store import ResultsStore, atomic_write, slug


def test_atomic_write_keeps_the_mode_and_leaves_no_temporary_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    path.write_text("old\n")
    os.chmod(path, 0o644)
    atomic_write(path, "new\n")
    assert path.read_text() == "new\n" and stat.S_IMODE(path.stat().st_mode) == 0o644

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, "newer\n")
    assert path.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]


def test_the_lock_refuses_a_second_writer(tmp_path):
    store = ResultsStore(tmp_path / "r")
    with store.lock():
        with pytest.raises(RuntimeError, match="another run is writing"):
            with ResultsStore(tmp_path / "r").lock():
                pass
    with store.lock():  # released again
        pass


def test_results_without_provenance_or_of_another_configuration_are_refused(tmp_path):
    store = ResultsStore(tmp_path)
    key = tc.config_for("smoke").key()
    with pytest.raises(ValueError, match="without a provenance.json"):
        store.check(key)
    store.write({"metrics": pd.DataFrame({"a": [1]})}, {"config_key": {**key, "epochs": 99}})
    with pytest.raises(ValueError, match=r"differs in \['epochs'\]"):
        store.check(key)
    store.check({**key, "epochs": 99})  # the same configuration passes


def test_a_metrics_file_without_provenance_is_not_reused(tmp_path):
    cfg = tc.config_for("smoke", seeds=1, epochs=1, n_train=32, n_test=32, optimizers=("Adam",))
    (tmp_path / "metrics.csv").write_text(",".join(tc.COLUMNS) + "\nAdam,0,1,0.5,0.5,1,1\n")
    with pytest.raises(ValueError, match="without a provenance.json"):
        tc.run_experiment(cfg, tmp_path, progress=False)


def test_both_experiments_share_one_configuration_base():
    for module, cls in ((tc, tc.Config), (lf, lf.LLMConfig)):
        cfg = module.config_for("smoke")
        assert type(cfg) is cls and cfg.profile == "smoke"
        assert list(cfg.seed_list()) == list(range(cfg.first_seed, cfg.first_seed + cfg.seeds))
        assert module.results_dir("cpu").parts[-2:] == (cls.EXPERIMENT, "cpu")
        with pytest.raises(ValueError, match="unknown setting"):
            module.config_for("smoke", n_qubit=3)
        with pytest.raises(ValueError, match="first_seed must be an integer >= 0"):
            module.config_for("smoke", first_seed=-1)
        with pytest.raises(ValueError, match="profile must be one of"):
            module.config_for("huge")
    assert "seeds" not in tc.config_for("smoke").key() and "device" not in lf.config_for("smoke").key()


def test_slug_names_files_for_labels():
    assert slug("SGD λ=0.5") == "SGD_lambda_0_5"
    assert slug("⟨Z⟩, 10 shots") == "Z_10_shots"
    assert slug("cos(πθ)·g") == "cos_pitheta_g"


def test_final_loss_table_against_a_hand_computation():
    runs = pd.DataFrame(dict(config=["a", "a", "b", "b", "a", "a", "b", "b"], seed=[0, 1, 0, 1, 0, 1, 0, 1],
                             step=[1, 1, 1, 1, 2, 2, 2, 2], loss=[9, 9, 9, 9, 1.0, 2.0, 1.5, 1.0]))
    t = tables.final_loss_table(runs)
    assert t.loc["b", "mean"] == 1.25 and t.loc["a", "mean"] == 1.5
    assert t.loc["b", "change vs first row (%)"] == pytest.approx(100 * np.mean([1.5 / 1.0 - 1, 1.0 / 2.0 - 1]))
    assert t.loc["a", "change vs first row (%)"] == 0.0 and not np.signbit(t.loc["a", "change vs first row (%)"])


def test_significant_variants_uses_the_holm_adjusted_p_not_the_mean():
    eff = pd.DataFrame({"Δ accuracy vs Adam (pp)": [2.0, 5.0, -1.0], "p (Holm)": [0.01, 0.2, 0.049]},
                       index=["x", "big but noisy", "y"])
    assert tables.significant_variants(eff) == "x (+2.00 pp), y (-1.00 pp)"
    assert tables.significant_variants(eff.iloc[[1]]) == "none"


def test_epoch_overhead_arithmetic():
    t = pd.DataFrame(dict(name=["epoch, SGD λ=0.5", "optimizer steps in an epoch, Adam",
                                "optimizer steps in an epoch, SGD λ=0.5"], ratio=[1.02, 0.05, 1.4]))
    text = tables.epoch_overhead(t)
    assert "1.020 ×" in text and "+2.0 %" in text and "5.0 % of its epoch" in text
    assert "adds about 2.0 % to an epoch" in text  # 5 % × (1.4 − 1)


def test_targets_are_judged_against_their_bounds():
    t = pd.DataFrame(dict(name=["Fourier path, forward+backward", "quantum, forward+backward"], ratio=[2e4, 3.0]))
    judged = tables.targets(t).set_index("target")["met"]
    assert judged.iloc[0] and not judged.iloc[1]


# --------------------------------------------------------------------------------------
# Validated reads and writes; non-finite training stops and stores nothing
# --------------------------------------------------------------------------------------
GOOD = "optimizer,seed,epoch,train_loss,test_accuracy,epoch_seconds,step_seconds\nAdam,0,1,0.5,0.9,1.0,0.1\n"


@pytest.mark.parametrize("text,match", [
    ("", "cannot be read as a CSV table"),
    ("optimizer,seed\nAdam,0\n", r"missing column\(s\) \['epoch'"),
    (GOOD.replace("0.5,0.9", ",0.9"), r"column 'train_loss' must hold finite numbers; line\(s\) \[2\]"),
    (GOOD.replace("0.5,0.9", "nan,0.9"), "column 'train_loss' must hold finite numbers"),
    (GOOD.replace("0.5,0.9", "0.5,ninety"), "column 'test_accuracy' must hold finite numbers"),
    (GOOD + GOOD.splitlines()[1] + "\n", r"2 rows repeat the same \['optimizer', 'seed', 'epoch'\]"),
    ('a,"b\n1,2', "cannot be read as a CSV table"),
])
def test_corrupt_results_are_refused_naming_the_file(tmp_path, text, match):
    (tmp_path / "metrics.csv").write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        tc.load_metrics(tmp_path)
    assert str(tmp_path / "metrics.csv") in str(err.value)


def test_good_results_load_with_numeric_columns(tmp_path):
    (tmp_path / "metrics.csv").write_text(GOOD)
    frame = tc.load_metrics(tmp_path)
    assert frame.train_loss.dtype == float and frame.seed.tolist() == [0]


def test_a_corrupt_provenance_is_refused_by_name(tmp_path):
    (tmp_path / "provenance.json").write_text("{not json")
    with pytest.raises(ValueError, match="provenance.json is not valid JSON"):
        ResultsStore(tmp_path).provenance()
    (tmp_path / "provenance.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        ResultsStore(tmp_path).provenance()


def test_a_nan_is_never_written(tmp_path):
    frame = pd.read_csv(pd.io.common.StringIO(GOOD))
    frame.loc[0, "train_loss"] = float("nan")
    with pytest.raises(ValueError, match="train_loss"):
        ResultsStore(tmp_path).write({"metrics": frame}, {"x": 1}, {"metrics": tc.METRICS})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stage", ["loss", "gradients"])
def test_non_finite_training_stops_naming_optimizer_seed_and_step(tmp_path, monkeypatch, stage):
    from sgdq.experiments.guards import NonFiniteError

    real = tc.F.cross_entropy
    calls = {"n": 0}

    def poisoned(logits, y):
        calls["n"] += 1
        loss = real(logits, y)
        if calls["n"] == 3 and stage == "loss":
            return loss * float("nan")
        if calls["n"] == 3:
            logits.register_hook(lambda g: g + float("inf"))  # a finite loss, infinite gradients
        return loss
    monkeypatch.setattr(tc.F, "cross_entropy", poisoned)
    cfg = tc.config_for("smoke", seeds=1, epochs=1, n_train=96, n_test=32, optimizers=("Adam",))
    match = "the training loss is nan" if stage == "loss" else "tensor\\(s\\) of gradients hold NaN or inf"
    with pytest.raises(NonFiniteError, match=match + r".*optimizer 'Adam', seed 0, step 3"):
        tc.run_experiment(cfg, tmp_path, progress=False)
    assert not (tmp_path / "metrics.csv").exists()


def test_a_scorecard_from_smoke_results_says_so_on_the_page():
    from sgdq.analysis import claims, scorecard

    ids = [c["id"] for c in claims.load_claims() if c["experiment"] == "text_classification"][:1]
    row = dict(claim_id=ids[0], paper_value=1.0, reproduced_value=1.0, ci_low=0.5, ci_high=1.5, n_seeds=2,
               verdict="inconclusive", reason="", rule="a rule")
    smoke = scorecard.markdown(pd.DataFrame([dict(row, profile="smoke")], columns=scorecard.COLUMNS))
    cpu = scorecard.markdown(pd.DataFrame([dict(row, profile="cpu")], columns=scorecard.COLUMNS))
    assert "**Warning:** no `cpu` or `paper` results of text classification" in smoke
    assert "Warning" not in cpu


def test_stale_results_are_flagged_when_their_code_changes(tmp_path):
    import json

    from sgdq.experiments import provenance

    (tmp_path / "sgdq" / "method").mkdir(parents=True)
    (tmp_path / "sgdq" / "experiments").mkdir(parents=True)
    code = tmp_path / "sgdq" / "method" / "optim.py"
    code.write_text("x = 1\n")
    results = tmp_path / "data" / "results" / "exp" / "cpu"
    results.mkdir(parents=True)
    (results / "provenance.json").write_text(json.dumps({"code_fingerprint": provenance.code_fingerprint(tmp_path),
                                                         "git_commit": "abc"}))
    (results.parent / "old").mkdir()
    (results.parent / "old" / "provenance.json").write_text(json.dumps({"git_commit": "older"}))
    assert [r["status"] for r in provenance.stale_results(tmp_path)] == ["no fingerprint (older than fingerprints)"]
    code.write_text("x = 2\n")  # the code changes: the first results are now stale too
    assert sorted(r["status"] for r in provenance.stale_results(tmp_path)) == [
        "code changed since", "no fingerprint (older than fingerprints)"]


def test_an_experiment_is_stale_only_when_its_own_code_changes(tmp_path):
    """A result records which code it fingerprints; editing another experiment leaves it current."""
    import json

    from sgdq.experiments import provenance

    for rel in ("sgdq/method/optim.py", "sgdq/experiments/exp_a.py", "sgdq/experiments/exp_b.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    code = ["sgdq/method", "sgdq/experiments/exp_a.py"]
    results = tmp_path / "data" / "results" / "a" / "cpu"
    results.mkdir(parents=True)
    (results / "provenance.json").write_text(json.dumps({
        "code_fingerprint": provenance.code_fingerprint(tmp_path, code), "fingerprinted_code": code,
        "git_commit": "abc"}))
    (tmp_path / "sgdq/experiments/exp_b.py").write_text("x = 2\n")  # another experiment's code
    assert provenance.stale_results(tmp_path) == []
    assert provenance.results_index(tmp_path)[0]["code"] == "as now"
    (tmp_path / "sgdq/method/optim.py").write_text("x = 3\n")  # the shared method: stale
    assert [r["status"] for r in provenance.stale_results(tmp_path)] == ["code changed since"]
    row = provenance.results_index(tmp_path)[0]
    assert (row["results"], row["commit"], row["checkout"], row["code"]) == ("a/cpu", "abc", "clean",
                                                                             "code changed since")


def test_benchmark_group_reads_the_suite_file_with_its_baseline():
    suite = pd.DataFrame(dict(group=["attention", "attention", "optimizer"], name=["mha", "quantum", "adamw"],
                              seconds=[0.002, 0.003, 0.001], baseline=[None, "mha", None], ratio=[None, 1.5, None]))
    t = tables.benchmark_group(suite, "attention")
    assert list(t.index) == ["mha", "quantum"]
    assert t.loc["quantum", "× the baseline"] == 1.5 and t.loc["mha", "× the baseline"] == 1.0
    assert t.loc["quantum", "time (ms)"] == pytest.approx(3.0)


def test_config_table_lists_every_field_readably():
    import dataclasses

    from sgdq.experiments import text_classification as tc

    cfg = tc.config_for("smoke")
    t = tables.config_table(cfg)
    assert t.loc["eps", "value"] == "1e-08" and t.loc["betas", "value"] == "0.9, 0.999"
    assert len(t) == len(dataclasses.fields(cfg))


def test_the_current_results_report_names_every_stale_file():
    """Flags (does not fail on) stored results whose code changed: the list the status page shows."""
    import warnings

    from sgdq.experiments import provenance

    stale = provenance.stale_results()
    if stale:
        warnings.warn(f"{len(stale)} stored results were made by other code, e.g. {stale[0]['path']}", stacklevel=1)
    assert all(r["path"].endswith("provenance.json") for r in stale)


# --------------------------------------------------------------------------------------
# Experiment 2's tables (chapter 06), against hand computations
# --------------------------------------------------------------------------------------
def _exp2_frames():
    rows, held = [], []
    for seed, base in ((0, 1.0), (1, 1.2)):
        for step, lr in ((1, 0.0), (2, 2e-5), (3, 1.5e-5), (4, 1e-5), (5, 0.5e-5)):
            rows += [dict(optimizer="AdamW", seed=seed, step=step, loss=base + 0.1 * step, learning_rate=lr),
                     dict(optimizer="SGD λ=0.5, without lr", seed=seed, step=step, loss=(base + 0.1 * step) * 0.98,
                          learning_rate=lr)]
        for problem in range(3):
            held += [dict(optimizer="AdamW", seed=seed, problem=problem, loss=1.0 + problem),
                     dict(optimizer="SGD λ=0.5, without lr", seed=seed, problem=problem, loss=1.1 + problem + seed)]
    held += [dict(optimizer="(base model)", seed=-1, problem=p, loss=3.0) for p in range(3)]
    return pd.DataFrame(rows), pd.DataFrame(held)


def test_exp2_tables_by_hand():
    from sgdq.analysis import tables

    metrics, held = _exp2_frames()
    diff = tables.arm_differences(metrics).loc["SGD λ=0.5, without lr"]
    assert diff["vs AdamW (%)"] == pytest.approx(-2.0) and diff["data orders"] == 2
    means = [1.3, 1.5]  # AdamW's mean loss per order
    assert diff["noise floor (± %)"] == pytest.approx(100 * np.std(means, ddof=1) / np.mean(means))
    curves = tables.difference_curves(metrics)
    row = curves[(curves.seed == 1) & (curves.step == 3)].difference.item()
    assert row == pytest.approx(-0.02 * 1.5)
    h = tables.heldout_table(held)
    assert h.loc["(base model)", "mean loss"] == 3.0 and h.loc["AdamW", "mean loss"] == pytest.approx(2.0)
    # per problem, averaged over the two orders: +0.1 and +1.1 -> +0.6 for every problem
    assert h.loc["SGD λ=0.5, without lr", "minus AdamW"] == pytest.approx(0.6)
    facts = tables.schedule_facts(metrics)
    assert facts == dict(steps=5, warmup=1, peak=2e-5, above_90=1, share_above_90=0.2)
    t1 = tables.mean_loss_table(metrics, {"AdamW": 0.2188})
    assert t1.loc["AdamW", "ours: vs AdamW (%)"] == 0.0
    assert t1.loc["SGD λ=0.5, without lr", "ours: vs AdamW (%)"] == pytest.approx(-2.0)
    sizes = pd.DataFrame(dict(reading=["literal"] * 3 + ["without lr"] * 3, step=[1, 2, 3] * 2,
                              ratio_per_lambda=[1e-6, 2e-6, 9.0, 0.01, 0.03, 0.05], perturbed_entries=[8] * 6))
    mag = tables.magnitude_table(sizes, (0.1, 0.5), 0.01, 80)
    assert mag.loc["literal", "‖λQ‖ / ‖Adam step‖ at λ = 0.5"] == pytest.approx(1e-6)  # the median, not the mean
    assert list(mag.trained) == ["no (too small)", "yes"] and mag.loc["literal", "share of weights (%)"] == 10


def test_comparison_sentences_read_the_interval_not_the_point():
    """The sentence follows the 95 % CI: below zero reads "lower"/"fewer", across zero "no difference"."""
    row = {"reference": "Adam", "seeds": 30, "Δ final accuracy (pp)": -0.5, "Δ acc. CI low": -0.9,
           "Δ acc. CI high": -0.1, "epochs to 90 % (%)": -20.0, "epochs to 90 % CI low": -45.0,
           "epochs to 90 % CI high": 3.0}
    table = pd.DataFrame([row, row | {"Δ acc. CI low": 0.1, "Δ acc. CI high": 0.9, "Δ final accuracy (pp)": 0.5,
                                      "epochs to 90 % CI high": -2.0}],
                         index=["A, noisy", "B, noisy"])
    first, second = tables.comparison_sentences(table)
    assert "final accuracy -0.50 pp (95 % CI -0.90 to -0.10: lower)" in first
    assert "epochs to 90 % -20.0 % (-45.0 to +3.0 %: no difference detectable at 95 %)" in first
    assert "(95 % CI +0.10 to +0.90: higher)" in second and "-2.0 %: fewer)" in second
