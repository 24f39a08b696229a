"""QuantumAttention and the Table II classifier."""

import math

import pytest
import torch
import torch.nn.functional as F

from sgdq.method.attention import QuantumAttention
from sgdq.method.circuit import readout
from sgdq.method.models import TransformerClassifier


def attn_and_input(seed=0, **kw):
    torch.manual_seed(seed)
    att = QuantumAttention(16, 4, **kw)
    x = torch.randn(3, 6, 16)
    return att, x


def projections(att, x):
    b, s, d = x.shape
    q, k, v = (x @ att.in_proj.weight.T + att.in_proj.bias).split(d, -1)
    return [t.view(b, s, att.n_heads, att.d_k).transpose(1, 2) for t in (q, k, v)]


def padding(b=3, s=6):
    mask = torch.zeros(b, s, dtype=torch.bool)
    mask[0, 4:] = True
    mask[2, 1:] = True
    return mask


@pytest.mark.parametrize("use_mask", [False, True])
def test_quantum_off_equals_torch_sdpa(use_mask):
    att, x = attn_and_input(quantum=False)
    mask = padding() if use_mask else None
    q, k, v = projections(att, x)
    attn_mask = None if mask is None else ~mask[:, None, None, :]
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    ref = ref.transpose(1, 2).reshape(x.shape) @ att.out_proj.weight.T + att.out_proj.bias
    torch.testing.assert_close(att(x, mask), ref, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("use_mask", [False, True])
def test_quantum_off_equals_nn_multiheadattention(use_mask):
    att, x = attn_and_input(quantum=False)
    mha = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(att.in_proj.weight)
        mha.in_proj_bias.copy_(att.in_proj.bias)
        mha.out_proj.weight.copy_(att.out_proj.weight)
        mha.out_proj.bias.copy_(att.out_proj.bias)
    mask = padding() if use_mask else None
    ref, _ = mha(x, x, x, key_padding_mask=mask, need_weights=False)
    torch.testing.assert_close(att(x, mask), ref, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("circuit_input", ["raw", "scaled"])
@pytest.mark.parametrize("kind", ["amplitude", "probability", "expval_z"])
def test_quantum_on_is_eq3_with_the_reference_circuit(circuit_input, kind):
    att, x = attn_and_input(seed=1, readout=kind, circuit_input=circuit_input)
    mask = padding()
    q, k, v = projections(att, x)
    raw = q @ k.transpose(-2, -1)
    scaled = raw / math.sqrt(att.d_k)
    phi = readout(raw if circuit_input == "raw" else scaled, att.theta, att.phi, kind, method="statevector")
    logits = (scaled + phi).masked_fill(mask[:, None, None, :], float("-inf"))
    ref = torch.softmax(logits, -1) @ v
    ref = ref.transpose(1, 2).reshape(x.shape) @ att.out_proj.weight.T + att.out_proj.bias
    torch.testing.assert_close(att(x, mask), ref, atol=1e-5, rtol=1e-5)
    # and the circuit term really changes the output
    att.quantum = False
    assert (att(x, mask) - ref).abs().max() > 1e-3


def test_circuit_input_changes_the_result():
    a1, x = attn_and_input(seed=2, circuit_input="raw")
    a2, _ = attn_and_input(seed=2, circuit_input="scaled")
    assert (a1(x) - a2(x)).abs().max() > 1e-4


def test_gradients_reach_the_circuit_angles_and_match_finite_differences():
    att, x = attn_and_input(seed=3)
    att = att.double()
    x = x.double()
    w = torch.randn(x.shape, dtype=torch.float64)
    loss = (att(x) * w).sum()
    g_theta, g_phi = torch.autograd.grad(loss, [att.theta, att.phi])
    assert g_theta.abs().max() > 1e-4 and g_phi.abs().max() > 1e-4
    h = 1e-6
    for param, grad in [(att.theta, g_theta), (att.phi, g_phi)]:
        for i in range(param.numel()):
            with torch.no_grad():
                param.view(-1)[i] += h
                up = (att(x) * w).sum()
                param.view(-1)[i] -= 2 * h
                down = (att(x) * w).sum()
                param.view(-1)[i] += h
            assert grad.view(-1)[i].item() == pytest.approx(((up - down) / (2 * h)).item(), rel=1e-5, abs=1e-7)


def test_attention_weights_are_a_distribution_that_ignores_padding():
    att, x = attn_and_input(seed=4)
    mask = padding()
    w = att.attention_weights(x, mask)
    assert w.shape == (3, 4, 6, 6)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 4, 6))
    assert w[0, :, :, 4:].abs().max() == 0


def test_attention_bad_arguments():
    with pytest.raises(ValueError, match="divisible"):
        QuantumAttention(10, 4)
    with pytest.raises(ValueError, match="readout"):
        QuantumAttention(16, 4, readout="amp")
    with pytest.raises(ValueError, match="circuit_input.*raw.*scaled"):
        QuantumAttention(16, 4, circuit_input="both")
    with pytest.raises(ValueError, match=r"x must have shape \(batch, seq, 16\)"):
        QuantumAttention(16, 4)(torch.zeros(2, 16))


# --------------------------------------------------------------------------------------
# Table II classifier
# --------------------------------------------------------------------------------------
def test_classifier_follows_table_ii():
    model = TransformerClassifier(vocab_size=100)
    assert len(model.layers) == 2
    layer = model.layers[0]
    assert model.embed.embedding_dim == 64
    assert layer.attn.n_heads == 4 and layer.attn.d_k == 16
    assert layer.ff[0].out_features == 128
    assert layer.ff[2].p == 0.1 and layer.attn.dropout == 0.1
    assert tuple(layer.attn.theta.shape) == (2, 4)  # depth 2, 4 qubits
    n_circuit = sum(p.numel() for n, p in model.named_parameters() if n.endswith(("theta", "phi")))
    assert n_circuit == 2 * 2 * 2 * 4  # 2 layers × (θ, φ) × depth × qubits


def test_classical_and_quantum_share_initial_weights():
    torch.manual_seed(0)
    mq = TransformerClassifier(50, attention="quantum")
    torch.manual_seed(0)
    mc = TransformerClassifier(50, attention="classical")
    for (n1, p1), (n2, p2) in zip(mq.named_parameters(), mc.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2)
    tokens = torch.randint(1, 50, (4, 10))
    mq.eval()
    mc.eval()
    assert (mq(tokens) - mc(tokens)).abs().max() > 1e-4


@pytest.mark.parametrize("attention", ["quantum", "classical"])
def test_padding_does_not_change_the_logits(attention):
    torch.manual_seed(0)
    model = TransformerClassifier(30, n_classes=3, attention=attention).eval()
    tokens = torch.randint(1, 30, (2, 7))
    padded = torch.cat([tokens, torch.zeros(2, 5, dtype=torch.long)], 1)
    torch.testing.assert_close(model(padded), model(tokens), atol=1e-5, rtol=1e-5)


def test_classifier_learns_an_order_dependent_toy_task():
    """Label = whether token 1 comes before token 2: bag-of-tokens cannot solve it."""
    g = torch.Generator().manual_seed(0)
    n, s = 256, 8
    tokens = torch.randint(3, 10, (n, s), generator=g)
    pos = torch.stack([torch.randperm(s, generator=g)[:2] for _ in range(n)])
    tokens[torch.arange(n), pos[:, 0]] = 1
    tokens[torch.arange(n), pos[:, 1]] = 2
    labels = (pos[:, 0] < pos[:, 1]).long()
    torch.manual_seed(0)
    model = TransformerClassifier(10, max_len=s, dropout=0.0)
    from sgdq.method.optim import SuperpositionalAdam

    opt = SuperpositionalAdam(model.parameters(), lr=3e-3)
    for _ in range(60):
        opt.zero_grad()
        loss = F.cross_entropy(model(tokens), labels)
        loss.backward()
        opt.step()
    acc = (model(tokens).argmax(-1) == labels).float().mean().item()
    assert acc > 0.9, acc


def test_classifier_bad_arguments():
    with pytest.raises(ValueError, match="attention must be one of"):
        TransformerClassifier(10, attention="hybrid")
    with pytest.raises(ValueError, match="max_len"):
        TransformerClassifier(10, max_len=4)(torch.ones(1, 5, dtype=torch.long))


def test_sinusoidal_positions_follow_vaswani_et_al():
    from sgdq.method.models import sinusoidal_positions

    table = sinusoidal_positions(10, 8).double()
    for pos in (0, 3, 9):
        for i in range(4):
            angle = pos / 10000 ** (2 * i / 8)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    model = TransformerClassifier(10, positional="learned")
    assert isinstance(model.pos, torch.nn.Embedding)
    with pytest.raises(ValueError, match="positional must be one of"):
        TransformerClassifier(10, positional="rotary")


def test_finite_shots_change_the_value_not_the_gradient():
    """With shots, Φ's value is a device-like estimate (mean over many draws → the exact ⟨Z⟩),
    while the gradient is exactly the exact readout's."""
    torch.manual_seed(0)
    exact_layer = QuantumAttention(16, 2, readout="expval_z")
    shot_layer = QuantumAttention(16, 2, readout="expval_z", shots=50)
    shot_layer.load_state_dict(exact_layer.state_dict())
    scores = torch.randn(3, 2, 5, 5) * 2
    exact = exact_layer.circuit_term(scores)
    draws = torch.stack([shot_layer.circuit_term(scores) for _ in range(400)])
    assert (draws - exact).abs().mean() > 0.05  # it is noisy
    assert ((draws.mean(0) - exact).abs() < 5 * draws.std(0) / 20 + 1e-6).all()  # and unbiased
    g = torch.randn_like(scores)
    ga = torch.autograd.grad((exact_layer.circuit_term(scores) * g).sum(), [exact_layer.theta, exact_layer.phi])
    gb = torch.autograd.grad((shot_layer.circuit_term(scores) * g).sum(), [shot_layer.theta, shot_layer.phi])
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b)


def test_shots_are_refused_without_the_expval_z_readout():
    with pytest.raises(ValueError, match="shots needs readout='expval_z'"):
        QuantumAttention(16, 2, shots=100)
    with pytest.raises(ValueError, match="shots must be None"):
        QuantumAttention(16, 2, readout="expval_z", shots=0)


def test_shot_noise_in_attention_shrinks_like_one_over_sqrt_shots():
    from sgdq.experiments.ablations import shot_noise_in_attention

    torch.manual_seed(1)
    layer = QuantumAttention(32, 2, readout="expval_z")
    df = shot_noise_in_attention(layer, torch.randn(4, 8, 32), [25, 2500], repeats=3)
    rmse = df.groupby("shots").phi_rmse.mean()
    assert 7 < rmse[25] / rmse[2500] < 13  # √100 = 10
    assert layer.shots is None  # the layer is left as it was


# --------------------------------------------------------------------------------------
# SDPA, the readable reference, refusals, and a model that pickles
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("quantum", [True, False])
@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("circuit_input", ["raw", "scaled"])
def test_sdpa_forward_equals_the_op_by_op_reference(quantum, use_mask, circuit_input):
    """forward (torch's SDPA with Φ as the additive mask) against Eq. (3) written out, in float64:
    values and the gradients of the input, the projections and the circuit angles."""
    torch.manual_seed(0)
    attn = QuantumAttention(32, 4, quantum=quantum, circuit_input=circuit_input).double()
    x = torch.randn(3, 9, 32, dtype=torch.float64, requires_grad=True)
    mask = None
    if use_mask:
        mask = torch.zeros(3, 9, dtype=torch.bool)
        mask[1, 5:] = True
    wrt = [x, attn.in_proj.weight, attn.out_proj.bias] + ([attn.theta, attn.phi] if quantum else [])
    fast, slow = attn(x, mask), attn.reference_forward(x, mask)
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)
    for a, b in zip(torch.autograd.grad(fast.square().sum(), wrt), torch.autograd.grad(slow.square().sum(), wrt)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_a_fully_masked_row_is_refused_not_nan():
    attn = QuantumAttention(16, 2)
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[1] = True
    with pytest.raises(ValueError, match=r"every key of batch row\(s\) \[1\]"):
        attn(torch.randn(2, 5, 16), mask)
    with pytest.raises(ValueError, match="key_padding_mask must be a bool tensor of shape"):
        attn(torch.randn(2, 5, 16), torch.zeros(2, 4, dtype=torch.bool))


@pytest.mark.parametrize("kwargs,msg", [
    (dict(n_qubits=0), "n_qubits must be an integer in 1..8"),
    (dict(n_qubits=12), "n_qubits must be an integer in 1..8"),
    (dict(n_qubits=64), "n_qubits must be an integer in 1..8"),
    (dict(depth=0), "depth must be an integer in 1..16"),
    (dict(n_qubits=8, depth=5), r"n_qubits·depth must be <= 32"),
    (dict(dropout="0.1"), "dropout must be a number"),
])
def test_circuit_sizes_that_cannot_run_are_refused_up_front(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        QuantumAttention(16, 2, **kwargs)


def test_readout_refuses_angles_of_the_wrong_shape_or_size():
    with pytest.raises(ValueError, match=r"shape \(depth, n_qubits\)"):
        readout(torch.zeros(3), torch.zeros(2, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="n_qubits must be an integer in 1..8"):
        readout(torch.zeros(3), torch.zeros(2, 12), torch.zeros(2, 12))


def test_an_all_padding_token_row_is_refused():
    model = TransformerClassifier(vocab_size=20, max_len=8)
    tokens = torch.randint(1, 20, (3, 6))
    tokens[2] = 0
    with pytest.raises(ValueError, match=r"token row\(s\) \[2\] are all padding"):
        model(tokens)


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_classifier_pickles_saves_and_deepcopies(positional, tmp_path):
    import copy
    import pickle

    torch.manual_seed(0)
    model = TransformerClassifier(vocab_size=30, max_len=10, positional=positional).eval()
    tokens = torch.randint(1, 30, (4, 7))
    expected = model(tokens)
    torch.save(model, tmp_path / "model.pt")
    loaded = torch.load(tmp_path / "model.pt", weights_only=False)
    for other in (loaded, pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        torch.testing.assert_close(other(tokens), expected, rtol=0, atol=0)
    twin = copy.deepcopy(model)
    if positional == "sinusoidal":
        assert twin.pos.table.data_ptr() != model.pos.table.data_ptr()  # its own buffer, not a shared one
        assert "pos.table" not in model.state_dict()  # a fixed function: not stored
