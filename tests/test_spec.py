"""sgdq.experiments.spec: one specification builds and names every optimizer the book compares."""

import math

import pytest
import torch

from sgdq.experiments.spec import OptimizerSpec
from sgdq.method.optim import QuantumMomentAdam, SuperpositionalAdam


def params():
    return [torch.nn.Parameter(torch.zeros(3))]


def test_every_kind_is_built_with_its_settings():
    assert type(OptimizerSpec("Adam").build(params())) is torch.optim.Adam
    adamw = OptimizerSpec("AdamW", fused=True).build(params(), lr=1e-3, weight_decay=0.01)
    assert type(adamw) is torch.optim.AdamW and adamw.param_groups[0]["fused"] is True
    assert adamw.param_groups[0]["weight_decay"] == 0.01
    moment = OptimizerSpec("moment", moment_weight=0.3).build(params())
    assert isinstance(moment, QuantumMomentAdam) and moment.param_groups[0]["moment_weight"] == 0.3
    sgd = OptimizerSpec("SGD", quantum_weight=0.25, n_qubits=None, scope="global", perturbation="cos",
                        foreach=False, fused=False).build(params(), lr=2e-3, betas=(0.8, 0.9), eps=1e-6)
    group = sgd.param_groups[0]
    assert isinstance(sgd, SuperpositionalAdam)
    assert (group["quantum_weight"], group["n_qubits"], group["scope"], group["perturbation"]) == (
        0.25, None, "global", "cos")
    assert (group["lr"], group["betas"], group["eps"], group["foreach"], group["fused"]) == (
        2e-3, (0.8, 0.9), 1e-6, False, False)


@pytest.mark.parametrize("label", ["Adam", "AdamW", "Quantum-inspired moment", "SGD λ=0.5", "SGD λ=0.1", "SGD λ=0"])
def test_label_and_parse_are_inverse(label):
    assert OptimizerSpec.parse(label).label == label


def test_parse_reads_weights_and_keeps_settings():
    spec = OptimizerSpec.parse("SGD λ=1e-1", n_qubits=64, scope="global")
    assert (spec.kind, spec.quantum_weight, spec.n_qubits, spec.scope) == ("SGD", 0.1, 64, "global")
    assert spec.label == "SGD λ=0.1"


@pytest.mark.parametrize("bad", ["SGD λ=-1", "SGD λ=nan", "SGD λ=inf", "SGD λ=x", "sgd", "Lion", None])
def test_unknown_labels_are_refused_naming_the_choices(bad):
    with pytest.raises(ValueError, match="unknown optimizer .*choose from"):
        OptimizerSpec.parse(bad)


@pytest.mark.parametrize("field, value", [("kind", "Lion"), ("quantum_weight", -0.1), ("quantum_weight", math.nan),
                                          ("quantum_weight", True), ("scope", "Tensor"), ("perturbation", "tan")])
def test_bad_fields_are_refused_at_construction(field, value):
    kwargs = {"kind": "SGD", field: value}
    with pytest.raises(ValueError, match=field if field != "quantum_weight" else "quantum_weight"):
        OptimizerSpec(**kwargs)


def test_sgd_at_lambda_zero_follows_torch_adamw_step_for_step():
    """The spec's SGD λ = 0 and torch's AdamW, both on the single-tensor path, agree bit for bit."""
    torch.manual_seed(0)
    w0 = torch.randn(5, 4)
    grads = [torch.randn(5, 4) for _ in range(10)]
    finals = []
    for spec in (OptimizerSpec("AdamW", foreach=False, fused=False),
                 OptimizerSpec("SGD", quantum_weight=0.0, foreach=False, fused=False)):
        w = torch.nn.Parameter(w0.clone())
        opt = spec.build([w], lr=1e-2, weight_decay=0.01)
        for g in grads:
            w.grad = g.clone()
            opt.step()
        finals.append(w.detach())
    assert torch.equal(finals[0], finals[1])
    assert not torch.equal(finals[0], w0)
