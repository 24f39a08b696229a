"""Ablations: the variants, their reuse of identical runs, and the effect sizes."""

import pandas as pd
import pytest

from sgdq.analysis import tables
from sgdq.experiments import ablations as ab


def test_every_study_lists_its_variants():
    assert list(ab.STUDIES["lambda"]) == ["λ=0", "λ=0.1", "λ=0.3", "λ=0.5", "λ=0.7", "λ=1"]
    assert set(ab.STUDIES["perturbation"]) == {"sin(πθ)·g", "cos(πθ)·g", "Gaussian, matched", "random sign·|g|"}
    assert {o for _, o in ab.STUDIES["attention"].values()} == {"Adam", "SGD λ=0.5"}
    for (study, variant), source in ab.SAME_AS.items():
        assert variant in ab.STUDIES[study]
        assert source == ab.MAIN or source[1] in ab.STUDIES[source[0]]


def test_identical_variants_are_read_not_retrained_and_lambda_zero_is_adam():
    zero = ab.run_variant("lambda", "λ=0", "smoke", progress=False)
    same = ab.run_variant("n_qubits", "0 per tensor", "smoke", progress=False)
    cols = ["seed", "epoch", "train_loss", "test_accuracy"]
    pd.testing.assert_frame_equal(zero[cols], same[cols])
    adam = ab.run_variant("attention", "quantum, Adam", "smoke", progress=False)
    pd.testing.assert_series_equal(zero.train_loss, adam.train_loss, rtol=1e-5)
    eff = tables.effects(zero, adam)
    assert eff.loc["λ=0", "Δ accuracy vs Adam (pp)"] == pytest.approx(0.0, abs=1e-9)


def test_unknown_ablation_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown ablation 'lambda'/'λ=2'.*studies: lambda"):
        ab.run_variant("lambda", "λ=2", "smoke")


def test_every_entry_variant_really_perturbs_every_entry():
    """A regression test: None-valued overrides were once dropped, silently running n_qubits = 4."""
    import torch

    from sgdq.experiments import text_classification as tc

    for study, variant in [("n_qubits", "every entry"), ("perturbation", "cos(πθ)·g"), ("n_qubits", "64 per tensor")]:
        overrides, optimizer = ab.STUDIES[study][variant]
        cfg = tc.config_for("smoke", optimizers=(optimizer,), **overrides)
        opt = cfg.build_optimizer(optimizer, [torch.nn.Parameter(torch.zeros(3))])
        expected = 64 if variant == "64 per tensor" else None
        assert opt.param_groups[0]["n_qubits"] == expected, variant
    assert tc.config_for("smoke", sgd_perturbation="cos").build_optimizer(
        "SGD λ=0.5", [torch.nn.Parameter(torch.zeros(3))]).param_groups[0]["perturbation"] == "cos"


def test_readout_variants_build_models_with_their_readout_and_shots():
    import torch

    from sgdq.experiments import synthetic
    from sgdq.experiments import text_classification as tc
    from sgdq.method.models import TransformerClassifier

    expected = {"⟨Z⟩, exact": ("expval_z", None), "⟨Z⟩, 1000 shots": ("expval_z", 1000),
                "⟨Z⟩, 100 shots": ("expval_z", 100), "⟨Z⟩, 10 shots": ("expval_z", 10)}
    for variant, (kind, shots) in expected.items():
        overrides, optimizer = ab.STUDIES["readout"][variant]
        assert optimizer == "Adam"
        cfg = tc.config_for("smoke", optimizers=(optimizer,), **overrides)
        assert (cfg.readout, cfg.shots) == (kind, shots)
        model = TransformerClassifier(synthetic.VOCAB_SIZE, readout=cfg.readout, shots=cfg.shots)
        assert all((layer.attn.readout_kind, layer.attn.shots) == (kind, shots) for layer in model.layers)
    torch.manual_seed(0)
    noisy = TransformerClassifier(synthetic.VOCAB_SIZE, readout="expval_z", shots=10).eval()
    tokens = torch.randint(1, synthetic.VOCAB_SIZE, (2, 6))
    assert not torch.equal(noisy(tokens), noisy(tokens))  # shot noise also at evaluation


def test_shot_noise_is_stored_with_provenance_and_read_back(tmp_path, monkeypatch):
    import json

    from sgdq.experiments import store

    monkeypatch.setattr(store, "ROOT", tmp_path)
    first = ab.shot_noise("smoke", seed=3, repeats=1)
    folder = tmp_path / "data" / "results" / "ablations" / "smoke" / "shot_noise"
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["settings"]["seed"] == 3 and {"git_commit", "device", "versions"} <= set(prov)
    assert sorted(first.shots.unique()) == list(ab.SHOT_COUNTS)
    (folder / "metrics.csv").write_text(first.assign(phi_rmse=-1.0).to_csv(index=False))  # a stored file is read
    assert (ab.shot_noise("smoke", seed=3, repeats=1).phi_rmse == -1.0).all()
    assert (ab.shot_noise("smoke", seed=4, repeats=1).phi_rmse > 0).all()  # other settings: recomputed
