"""The small problems and counting helpers that the notebooks call."""

import math

import numpy as np
import torch

from sgdq.experiments import toy
from sgdq.experiments.spec import OptimizerSpec
from sgdq.method.models import TransformerClassifier, llama_parameter_shapes
from sgdq.method.optim import perturbed_fraction


def test_shallow_minima_loss_has_its_global_minimum_at_zero_and_local_ones_near_integers():
    x = torch.tensor([[0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    assert toy.shallow_minima_loss(x).item() == 0.0
    # a local minimum near (1, 0): zero gradient after a few Newton-free Adam steps from (1.1, 0)
    r = toy.run_starts(OptimizerSpec("Adam"), torch.tensor([[1.1, 0.0]]), steps=2000, lr=0.01)
    assert 0.8 < r.final[0, 0] < 1.0 and r.loss[0] > 0.05 and r.global_fraction == 0.0
    g = torch.autograd.functional.jacobian(lambda z: toy.shallow_minima_loss(z).sum(), torch.tensor(r.final))
    assert g.abs().max() < 1e-3


def test_run_starts_records_paths_and_is_deterministic():
    starts = torch.rand(10, 2, generator=torch.Generator().manual_seed(0)) * 8 - 4
    a = toy.run_starts(OptimizerSpec("SGD", quantum_weight=0.5), starts, steps=20, n_paths=3)
    b = toy.run_starts(OptimizerSpec("SGD", quantum_weight=0.5), starts, steps=20, n_paths=3)
    assert a.paths.shape == (21, 3, 2)
    np.testing.assert_array_equal(a.final, b.final)
    np.testing.assert_allclose(a.paths[0], starts[:3].numpy())


def test_run_starts_perturbs_every_element_whatever_the_spec_says():
    """Two parameters per start, stacked: n_qubits=4 would perturb only the first two starts."""
    starts = torch.rand(6, 2, generator=torch.Generator().manual_seed(1)) * 8 - 4
    every = toy.run_starts(OptimizerSpec("SGD", quantum_weight=0.5, n_qubits=None), starts, steps=30)
    four = toy.run_starts(OptimizerSpec("SGD", quantum_weight=0.5, n_qubits=4), starts, steps=30)
    adam = toy.run_starts(OptimizerSpec("Adam"), starts, steps=30)
    np.testing.assert_array_equal(every.final, four.final)
    assert (np.abs(every.final - adam.final).max(-1) > 1e-6).all()  # every start moved differently from Adam


def test_zero_lambda_matches_adamw_on_the_regression():
    assert toy.max_difference_from_adamw(steps=10) < 1e-6


def test_sweep_records_every_config_seed_and_the_last_step():
    recs = toy.sweep_regression({"a": OptimizerSpec("Adam"), "b": OptimizerSpec("SGD", quantum_weight=0.5)},
                                seeds=[0, 1], steps=7, every=3)
    assert {(r["config"], r["seed"]) for r in recs} == {("a", 0), ("a", 1), ("b", 0), ("b", 1)}
    assert sorted({r["step"] for r in recs}) == [1, 4, 7]
    first = {(r["config"], r["seed"]): r["loss"] for r in recs if r["step"] == 1}
    assert first[("a", 0)] == first[("b", 0)]  # same data and initial weights for every optimizer


def test_perturbed_fraction_of_the_classifier_by_hand():
    model = TransformerClassifier(vocab_size=100)
    shapes = [tuple(p.shape) for p in model.parameters()]
    touched, total = perturbed_fraction(shapes, 4, "tensor")
    assert total == sum(p.numel() for p in model.parameters())
    assert touched == sum(min(4, p.numel()) for p in model.parameters())
    assert perturbed_fraction(shapes, 4, "global") == (4, total)


def test_llama_shapes_match_the_known_sizes():
    assert sum(math.prod(s) for s in llama_parameter_shapes()) == 134_515_008  # SmolLM2-135M
    llama1b = llama_parameter_shapes(2048, 8192, 16, 128256, 32, 8)
    assert sum(math.prod(s) for s in llama1b) == 1_235_814_400  # Llama-3.2-1B (tied embeddings)
