"""Experiment 1: the generator, the training loop's fairness and resumability, the statistics."""

import json
import math
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch

from sgdq.analysis import claims, stats
from sgdq.experiments import synthetic
from sgdq.experiments import text_classification as tc

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------
def label_by_hand(words: list[str]) -> int:
    """The rule, re-implemented from the words: a negator flips every sentiment word after it."""
    total, negated = 0, False
    for w in words:
        if w in synthetic.NEGATORS:
            negated = True
        elif w in synthetic.POSITIVE or w in synthetic.NEGATIVE:
            total += (1 if w in synthetic.POSITIVE else -1) * (-1 if negated else 1)
    return int(total > 0)


@pytest.mark.parametrize("p_single", [1.0, 0.5])
def test_clean_labels_follow_the_stated_rule(p_single):
    split = synthetic.make_split(500, data_seed=3, p_single=p_single)
    for tokens, label in zip(split.tokens, split.clean_labels):
        assert label_by_hand(synthetic.decode(tokens).split()) == int(label)


def test_label_noise_rate_and_balance():
    split = synthetic.make_split(4000, data_seed=1, noise=0.05)
    assert abs((split.labels != split.clean_labels).float().mean().item() - 0.05) < 0.012
    assert abs(split.clean_labels.float().mean().item() - 0.5) < 0.04


def test_order_matters_so_a_bag_of_tokens_cannot_solve_it():
    """The same multiset of tokens occurs with both labels: swap negator and sentiment word."""
    split = synthetic.make_split(400, data_seed=5, noise=0.0)
    vocab = synthetic.vocabulary()
    flipped = 0
    for tokens in split.tokens:
        words = synthetic.decode(tokens).split()
        neg = [i for i, w in enumerate(words) if w in synthetic.NEGATORS]
        sent = [i for i, w in enumerate(words) if w in synthetic.POSITIVE + synthetic.NEGATIVE]
        if neg:
            swapped = list(words)
            swapped[neg[0]], swapped[sent[0]] = swapped[sent[0]], swapped[neg[0]]
            assert sorted(swapped) == sorted(words)
            flipped += label_by_hand(swapped) != label_by_hand(words)
    assert flipped > 100
    assert len(vocab) == synthetic.VOCAB_SIZE


def test_splits_are_deterministic_and_train_test_differ():
    a_train, a_test = synthetic.make_dataset(300, 300, data_seed=7)
    b_train, _ = synthetic.make_dataset(300, 300, data_seed=7)
    assert torch.equal(a_train.tokens, b_train.tokens) and torch.equal(a_train.labels, b_train.labels)
    train_rows = {tuple(r.tolist()) for r in a_train.tokens}
    assert sum(tuple(r.tolist()) in train_rows for r in a_test.tokens) < 5


@pytest.mark.parametrize("kwargs,match", [
    (dict(noise=0.6), "noise"), (dict(min_len=2), "min_len"), (dict(p_negator=1.5), "p_negator"), (dict(n=0), "n must"),
])
def test_generator_refuses_bad_parameters(kwargs, match):
    args = dict(n=10, data_seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        synthetic.make_split(**args)


# --------------------------------------------------------------------------------------
# Training: fairness, resumability, reproducibility
# --------------------------------------------------------------------------------------
def tiny(**kw):
    return tc.config_for("smoke", **({"seeds": 1, "epochs": 2, "n_train": 96, "n_test": 64,
                                      "optimizers": tc.OPTIMIZERS} | kw))


def test_every_optimizer_starts_from_the_same_weights_and_batches():
    """λ = 0 is Adam: identical rows prove identical initial weights, batches and dropout."""
    cfg = tiny()
    adam = pd.DataFrame(tc.train_one(cfg, "Adam", seed=3))
    zero = pd.DataFrame(tc.train_one(cfg, "SGD λ=0", seed=3))
    pd.testing.assert_series_equal(adam.train_loss, zero.train_loss, rtol=1e-6)
    assert list(adam.test_accuracy) == list(zero.test_accuracy)
    other_seed = pd.DataFrame(tc.train_one(cfg, "Adam", seed=4))
    assert not np.allclose(adam.train_loss, other_seed.train_loss)


def test_resume_keeps_finished_pairs_and_skips_them(tmp_path, monkeypatch):
    cfg = tiny()
    calls = []
    real = tc.train_one

    def flaky(cfg_, opt, seed, data=None):
        calls.append(opt)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the run is interrupted during the third pair
        return real(cfg_, opt, seed, data)

    monkeypatch.setattr(tc, "train_one", flaky)
    with pytest.raises(KeyboardInterrupt):
        tc.run_experiment(cfg, tmp_path, progress=False)
    kept = pd.read_csv(tmp_path / "metrics.csv")
    assert sorted(kept.optimizer.unique()) == sorted(tc.OPTIMIZERS[:2])
    calls.clear()
    monkeypatch.setattr(tc, "train_one", lambda *a, **k: (calls.append(a[1]), real(*a, **k))[1])
    full = tc.run_experiment(cfg, tmp_path, progress=False)
    assert calls == list(tc.OPTIMIZERS[2:])
    assert len(full) == 4 * cfg.epochs
    pd.testing.assert_frame_equal(full[full.optimizer.isin(tc.OPTIMIZERS[:2])].reset_index(drop=True),
                                  kept.reset_index(drop=True))
    calls.clear()
    tc.run_experiment(cfg, tmp_path, progress=False)
    assert calls == []  # all done: nothing retrained
    tc.run_experiment(cfg, tmp_path, progress=False, force=True)
    assert calls == list(tc.OPTIMIZERS)
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["config"]["epochs"] == cfg.epochs and prov["finished_at"] and prov["device"]


def test_results_of_another_configuration_are_not_mixed(tmp_path):
    tc.run_experiment(tiny(), tmp_path, progress=False)
    with pytest.raises(ValueError, match="another configuration.*epochs"):
        tc.run_experiment(tiny(epochs=3), tmp_path, progress=False)


def test_bad_configuration_is_refused_before_any_work():
    with pytest.raises(ValueError, match="unknown optimizer"):
        tc.config_for("smoke", optimizers=("Adam", "Lion"))
    with pytest.raises(ValueError, match="profile must be one of"):
        tc.config_for("huge")
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        tc.config_for("smoke", epochs=0)
    with pytest.raises(ValueError, match="sgd_n_qubits must be an integer >= 0 or 'all'"):
        tc.config_for("smoke", sgd_n_qubits="every")
    with pytest.raises(ValueError, match="sgd_perturbation must be one of"):
        tc.config_for("smoke", sgd_perturbation="tan")
    with pytest.raises(ValueError, match="readout must be one of"):
        tc.config_for("smoke", readout="phase")
    with pytest.raises(ValueError, match="shots needs readout='expval_z'"):
        tc.config_for("smoke", shots=100)
    with pytest.raises(ValueError, match="shots must be None"):
        tc.config_for("smoke", readout="expval_z", shots=0)


def test_smoke_rerun_matches_the_committed_smoke_results(tmp_path):
    committed = tc.load_metrics(tc.results_dir("smoke"))
    arms = len(tc.Config.PROFILES["smoke"]["optimizers"])
    assert len(committed) == arms * tc.Config.PROFILES["smoke"]["seeds"] * tc.Config.PROFILES["smoke"]["epochs"]
    fresh = tc.run_experiment(tc.config_for("smoke"), tmp_path, progress=False)
    key = ["optimizer", "seed", "epoch"]
    both = committed.merge(fresh, on=key, suffixes=("_c", "_f"))
    assert len(both) == len(committed)
    # tolerance: float reductions may differ with the thread count; accuracy to 1 test sentence
    np.testing.assert_allclose(both.train_loss_f, both.train_loss_c, rtol=1e-3)
    assert (both.test_accuracy_f - both.test_accuracy_c).abs().max() <= 1 / tc.Config.PROFILES["smoke"]["n_test"] + 1e-9


# --------------------------------------------------------------------------------------
# Statistics and verdicts
# --------------------------------------------------------------------------------------
def test_mean_ci_by_hand():
    m, lo, hi = stats.mean_ci([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t_{0.975, 2} · sd / sqrt(n), sd = 1
    assert (m, lo, hi) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert math.isnan(stats.mean_ci([5.0])[1])


def fake_metrics():
    rows = []
    acc = {"Adam": [0.5, 0.8, 0.91, 0.92], "SGD λ=0.5": [0.6, 0.85, 0.88, 0.89]}
    for opt, curve in acc.items():
        for seed in (0, 1):
            for e, a in enumerate(curve, 1):
                rows.append(dict(optimizer=opt, seed=seed, epoch=e, train_loss=1.0 / e, test_accuracy=a + 0.01 * seed,
                                 epoch_seconds=1.0 if opt == "Adam" else 1.5, step_seconds=0.1))
    return pd.DataFrame(rows)


def test_per_run_censors_runs_that_never_reach_the_target():
    runs = stats.per_run(fake_metrics(), target=0.9).set_index(["optimizer", "seed"])
    assert runs.loc[("Adam", 0), "epochs_to_target"] == 3 and runs.loc[("Adam", 0), "seconds_to_target"] == 3.0
    sgd = runs.loc[("SGD λ=0.5", 0)]
    assert not sgd.reached and math.isnan(sgd.epochs_to_target) and sgd.epochs_to_target_censored == 5
    assert runs.loc[("SGD λ=0.5", 1), "epochs_to_target"] == 4  # 0.89 + 0.01 reaches 0.9 at epoch 4


def test_paired_differences_and_ratios():
    runs = stats.per_run(fake_metrics(), target=0.9)
    diff = stats.paired(runs, "final_accuracy").loc["SGD λ=0.5"]
    assert diff["mean"] == pytest.approx(-0.03) and diff.n_seeds == 2
    ratio = stats.paired(runs, "epoch_seconds", ratio=True).loc["SGD λ=0.5"]
    assert ratio["mean"] == pytest.approx(0.5)


def test_verdict_rules():
    """Every case of the rules in data/claims.yaml, each decided by the interval, not the estimate."""
    within = dict(criterion="within", value=10.0, tolerance=1.0)
    assert claims.verdict(within, 10.2, 9.5, 10.8)[0] == "reproduced"
    assert claims.verdict(within, 12.5, 11.5, 13)[0] == "not reproduced"
    assert claims.verdict(within, 10.8, 9, 12)[0] == "inconclusive"  # the estimate inside, the CI straddling
    assert claims.verdict(within, 11.5, 10.5, 12.5)[0] == "inconclusive"
    up = dict(criterion="direction_significant", direction="positive", value=2.3)
    assert claims.verdict(up, 2.0, 0.5, 3.0)[0] == "reproduced"
    assert claims.verdict(up, 5.0, 4.0, 6.0) == ("reproduced", "an effect in the claimed direction, larger than "
                                                 "claimed")
    assert claims.verdict(up, 1.0, 0.2, 1.8)[0] == "smaller than claimed"
    assert claims.verdict(up, -1.0, -1.8, -0.2)[0] == "contradicted"
    assert claims.verdict(up, 0.1, -0.4, 0.6)[0] == "not reproduced"  # 0 inside, 2.3 outside
    assert claims.verdict(up, 0.5, -1.0, 3.0)[0] == "inconclusive"  # both 0 and 2.3 inside
    assert claims.verdict(up, 0.5, math.nan, math.nan) == ("inconclusive", "too few runs for an interval")
    down = dict(criterion="direction_significant", direction="negative", value=-16)
    assert claims.verdict(down, -20, -30, -10)[0] == "reproduced"
    assert claims.verdict(down, -5, -8, -2)[0] == "smaller than claimed"
    assert claims.verdict(down, 5, 2, 8)[0] == "contradicted"
    assert claims.verdict(down, 0, -5, 5)[0] == "not reproduced"


def test_calibrated_values_are_not_testable_and_say_why():
    runs = stats.per_run(fake_metrics(), target=0.9)
    table = claims.evaluate(runs, "text_classification", "smoke")
    calibrated = table[table.claim_id.isin(["exp1_final_accuracy_sgd05", "exp1_epochs_to_90_adam"])]
    assert (calibrated.verdict == "not testable here").all()
    assert calibrated.reason.str.startswith("calibrated: ").all()
    assert claims.rules_commit() not in ("", "unknown")


def test_claims_file_has_the_paper_numbers():
    by_id = {c["id"]: c for c in claims.load_claims()}
    assert by_id["exp1_final_accuracy_sgd05"]["value"] == 93.8
    assert by_id["exp1_gain_over_adam"]["value"] == 2.3
    assert (by_id["exp1_epochs_to_90_sgd05"]["value"], by_id["exp1_epochs_to_90_adam"]["value"]) == (4.6, 7.4)
    assert by_id["exp1_time_per_epoch"]["value"] == 35
    assert by_id["exp1_total_time_to_90"]["value"] == -16
    for c in claims.load_claims(experiment="text_classification"):
        assert {"id", "where", "value", "unit", "metric", "criterion"} <= set(c)


def test_notebook_summary_table_is_recomputed_from_the_committed_metrics():
    nb = nbformat.read(ROOT / "book" / "chapters" / "05_text_classification.ipynb", as_version=4)
    profile = nb.metadata["papermill"]["parameters"]["profile"]
    runs = stats.per_run(tc.load_metrics(tc.results_dir(profile)), target=0.9)
    from sgdq.analysis import tables

    expected = tables.summary_table(runs)
    cell = next(c for c in nb.cells if "summary-table" in c.metadata.get("tags", []))
    shown = next(o for o in cell.outputs if o.output_type == "execute_result").data["text/html"]
    assert shown == expected._repr_html_()


def test_scorecard_regenerates_to_the_committed_file():
    from sgdq.analysis import scorecard

    table = scorecard.build()
    committed = (ROOT / "data" / "results" / "scorecard.csv").read_text()
    assert scorecard.to_csv(table) == committed, "run `python -m sgdq.analysis.scorecard` and commit the result"
    assert (ROOT / "book" / "_scorecard.md").read_text() == scorecard.markdown(table)
    ids = {c["id"] for c in claims.load_claims()}
    assert set(table.claim_id) == ids
    assert set(table.verdict) <= set(claims.VERDICTS)
    assert (ROOT / "book" / "_rules.md").read_text() == scorecard.rules_markdown()
    assert list(table.columns[:8]) == ["claim_id", "paper_value", "reproduced_value", "ci_low", "ci_high",
                                       "n_seeds", "profile", "verdict"]


def test_paired_t_power_against_a_simulation():
    """The noncentral-t power against the rejection rate of scipy's own paired t-test on
    simulated normal differences (20,000 experiments each)."""
    from scipy import stats as st

    rng = np.random.default_rng(0)
    for effect, sd, n in ((1.0, 2.0, 10), (0.5, 1.0, 30), (-3.0, 4.0, 6)):
        diffs = rng.normal(effect, sd, size=(20_000, n))
        rejected = (st.ttest_1samp(diffs, 0.0, axis=1).pvalue < 0.05).mean()
        assert stats.paired_t_power(effect, sd, n) == pytest.approx(rejected, abs=0.015)


def test_seeds_for_power_is_the_first_n_that_reaches_it():
    n = stats.seeds_for_power(1.0, 2.0, power=0.9)
    assert stats.paired_t_power(1.0, 2.0, n) >= 0.9 > stats.paired_t_power(1.0, 2.0, n - 1)
    assert 40 <= n <= 50  # the normal approximation ((1.96 + 1.28)·2/1)² ≈ 42, plus the t correction
    with pytest.raises(ValueError, match="non-zero effect"):
        stats.seeds_for_power(0.0, 1.0)


def test_power_table_uses_the_paired_spread_in_the_claims_unit():
    runs = stats.per_run(fake_metrics(), target=0.9)
    table = claims.power_table(runs)
    row = table.loc["exp1_gain_over_adam"]
    diff = 100 * stats.paired_values(runs, "final_accuracy", "SGD λ=0.5", "Adam")
    assert row.pilot_sd == pytest.approx(diff.std(ddof=1)) and row.pilot_seeds == len(diff)


# --------------------------------------------------------------------------------------
# Statistical CI: a reduced rerun lands inside the committed distribution
# --------------------------------------------------------------------------------------
CHECK_EPOCH, Z_MAX = 3, 4.0  # the stated tolerance: |z| ≤ 4 (see stats.distribution_check)


@pytest.fixture(scope="module")
def reduced_rerun(tmp_path_factory):
    """Two fresh seeds (not among the committed ones) of the committed cpu configuration, for
    Adam and SGD λ = 0.5, trained for CHECK_EPOCH epochs with today's code on this machine."""
    cfg = tc.config_for("cpu", seeds=2, first_seed=1000, epochs=CHECK_EPOCH, optimizers=("Adam", "SGD λ=0.5"),
                        device="cpu")
    return tc.run_experiment(cfg, tmp_path_factory.mktemp("rerun"), progress=False)


def _at_epoch(metrics):
    return metrics[metrics.epoch == CHECK_EPOCH]


def test_a_reduced_rerun_lands_inside_the_committed_distribution(reduced_rerun):
    committed = tc.load_metrics(tc.results_dir("cpu"))
    committed = committed[committed.optimizer.isin(["Adam", "SGD λ=0.5"])]
    check = stats.distribution_check(_at_epoch(committed), _at_epoch(reduced_rerun), "test_accuracy", z_max=Z_MAX)
    assert len(check) == 2 and check.passes.all(), check.to_string()


def test_the_distribution_check_fails_on_a_shifted_result(reduced_rerun):
    """The same check must fail when the rerun is moved by 10 points: it can fail."""
    committed = tc.load_metrics(tc.results_dir("cpu"))
    shifted = _at_epoch(reduced_rerun).assign(test_accuracy=lambda d: d.test_accuracy - 0.10)
    check = stats.distribution_check(_at_epoch(committed), shifted, "test_accuracy", z_max=Z_MAX)
    assert not check.passes.any(), check.to_string()
