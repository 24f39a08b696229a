"""SuperpositionalAdam and QuantumMomentAdam against torch's AdamW and a numpy model of Eq. (1)–(2)."""

import copy
import math

import numpy as np
import pytest
import torch

from sgdq.method.optim import QuantumMomentAdam, SuperpositionalAdam, perturbed_counts

PATHS = [dict(foreach=False, fused=False), dict(foreach=True), dict(fused=True), dict()]
PATH_IDS = ["reference", "foreach", "fused", "auto"]


class NumpySGD:
    """Eq. (1)–(2) written from the issue's text in float64 numpy, one flat vector per tensor."""

    def __init__(self, params, lr, betas, eps, wd, lam, n_qubits, scope, normalize_q=False, q_times_lr=True):
        self.p = [np.array(p, dtype=np.float64).ravel() for p in params]
        self.m = [np.zeros_like(p) for p in self.p]
        self.v = [np.zeros_like(p) for p in self.p]
        self.lr, (self.b1, self.b2), self.eps, self.wd = lr, betas, eps, wd
        self.lam, self.n, self.scope, self.t = lam, n_qubits, scope, 0
        self.normalize_q, self.q_times_lr = normalize_q, q_times_lr

    def step(self, grads):
        self.t += 1
        offset = 0
        for i, (p, g) in enumerate(zip(self.p, grads)):
            g = np.array(g, dtype=np.float64).ravel()
            if self.scope == "whole_tensors":  # reading (a): tensor i is perturbed whole if i < n
                idx = np.full(p.size, i)
            else:
                idx = np.arange(p.size) + (offset if self.scope == "global" else 0)
            q = np.where(idx < self.n, np.sin(np.pi * p) * g, 0.0)
            offset += p.size
            decayed = p * (1 - self.lr * self.wd)
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g * g
            mhat = self.m[i] / (1 - self.b1**self.t)
            vhat = self.v[i] / (1 - self.b2**self.t)
            if self.normalize_q:  # reading (b)
                q = q / (np.sqrt(vhat) + self.eps)
            q_step = (self.lr if self.q_times_lr else 1.0) * self.lam * q  # reading (c) without lr
            self.p[i] = decayed - self.lr * mhat / (np.sqrt(vhat) + self.eps) - q_step


def make_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))


def data(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(32, 5, generator=g), torch.randn(32, 3, generator=g)


def train(model, opt, steps, X, Y):
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(X), Y).backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("path", PATHS, ids=PATH_IDS)
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_quantum_weight_zero_is_adamw(path, wd):
    X, Y = data()
    base = make_model()
    m_ref = copy.deepcopy(base)
    ref = train(m_ref, torch.optim.AdamW(m_ref.parameters(), lr=1e-2, weight_decay=wd, foreach=False), 25, X, Y)
    m = copy.deepcopy(base)
    ours = train(m, SuperpositionalAdam(m.parameters(), lr=1e-2, weight_decay=wd, quantum_weight=0.0, **path),
                 25, X, Y)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)


def _against_numpy(path, lam, steps=15, **reading) -> bool:
    """Train with SuperpositionalAdam(**reading) and the float64 numpy model side by side,
    comparing every step; the numpy model restarts from our parameters each step (it follows
    our gradients). Returns whether Eq. (2) moved anything differently from AdamW's update."""
    reading = {"n_qubits": 4, "scope": "tensor"} | reading
    X, Y = data()
    model = make_model()
    # big enough weights that sin(pi*theta) varies in sign, and a weight decay to check ordering
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    kw = dict(lr=3e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.2)
    n = reading["n_qubits"]
    ref = NumpySGD([p.detach().numpy() for p in model.parameters()], kw["lr"], kw["betas"], kw["eps"],
                   kw["weight_decay"], lam, math.inf if n is None else n, reading["scope"],
                   reading.get("normalize_q", False), reading.get("q_times_lr", True))
    opt = SuperpositionalAdam(model.parameters(), quantum_weight=lam, **reading, **kw, **path)
    moved = False
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(X), Y).backward()
        before = [p.detach().double().numpy().ravel().copy() for p in model.parameters()]
        ref.step([p.grad.double().numpy() for p in model.parameters()])
        opt.step()
        for p, q, b in zip(model.parameters(), ref.p, before):
            np.testing.assert_allclose(p.detach().numpy().ravel(), q, atol=5e-6, rtol=1e-5)
            moved |= not np.allclose(q, b)
        ref.p = [p.detach().double().numpy().ravel().copy() for p in model.parameters()]
    return moved


@pytest.mark.parametrize("path", PATHS, ids=PATH_IDS)
@pytest.mark.parametrize("scope", ["tensor", "global"])
@pytest.mark.parametrize("n_qubits", [0, 4, 10, None])
def test_matches_numpy_model_of_eq1_eq2(path, scope, n_qubits):
    _against_numpy(path, 0.7, scope=scope, n_qubits=n_qubits)


READINGS = {"a: first tensors": dict(scope="whole_tensors", n_qubits=2),
            "b: normalised": dict(normalize_q=True), "c: without lr": dict(q_times_lr=False),
            "b+d": dict(normalize_q=True, n_qubits=None), "a+b+c": dict(scope="whole_tensors", n_qubits=3,
                                                                      normalize_q=True, q_times_lr=False)}


@pytest.mark.parametrize("path", PATHS, ids=PATH_IDS)
@pytest.mark.parametrize("reading", list(READINGS))
def test_each_reading_matches_the_numpy_model(path, reading):
    """Readings (a)–(c) of issue 15, alone and combined, against the float64 numpy model."""
    assert _against_numpy(path, 0.3, steps=12, **READINGS[reading])


@pytest.mark.parametrize("path", PATHS, ids=PATH_IDS)
@pytest.mark.parametrize("reading", list(READINGS))
def test_each_reading_is_adamw_at_lambda_zero(path, reading):
    X, Y = data()
    base = make_model()
    m_ref = copy.deepcopy(base)
    ref = train(m_ref, torch.optim.AdamW(m_ref.parameters(), lr=1e-2, weight_decay=0.1, foreach=False), 15, X, Y)
    m = copy.deepcopy(base)
    ours = train(m, SuperpositionalAdam(m.parameters(), lr=1e-2, weight_decay=0.1, quantum_weight=0.0,
                                        **READINGS[reading], **path), 15, X, Y)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)


def test_readings_change_the_step_by_the_stated_amount():
    """One step from the same state, by hand: (b) divides lr·λ·Q by √v̂ + ε (= |g|/√(1−β₂)·√(1−β₂)
    = |g| + ε at step 1), (c) drops the lr, (a) perturbs the whole first tensors only."""
    torch.manual_seed(0)
    w0, b0 = torch.randn(3, 4) * 2, torch.randn(3)
    gw, gb = torch.randn(3, 4), torch.randn(3)
    lr, lam, eps = 0.1, 0.5, 1e-8

    def one_step(**kw):
        w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
        w.grad, b.grad = gw.clone(), gb.clone()
        SuperpositionalAdam([w, b], lr=lr, quantum_weight=lam, eps=eps, **kw).step()
        return w.detach(), b.detach()

    aw = torch.optim.AdamW([w := w0.clone().requires_grad_(), b := b0.clone().requires_grad_()], lr=lr,
                           weight_decay=0.0, eps=eps)
    w.grad, b.grad = gw.clone(), gb.clone()
    aw.step()
    adam_w, adam_b = w.detach(), b.detach()
    qw, qb = torch.sin(math.pi * w0) * gw, torch.sin(math.pi * b0) * gb
    w_b, b_b = one_step(normalize_q=True, n_qubits=None)
    torch.testing.assert_close(w_b, adam_w - lr * lam * qw / (gw.abs() + eps))
    torch.testing.assert_close(b_b, adam_b - lr * lam * qb / (gb.abs() + eps))
    w_c, _ = one_step(q_times_lr=False, n_qubits=None)
    torch.testing.assert_close(w_c, adam_w - lam * qw)
    w_a, b_a = one_step(scope="whole_tensors", n_qubits=1)
    torch.testing.assert_close(w_a, adam_w - lr * lam * qw)
    torch.testing.assert_close(b_a, adam_b)


def test_whole_tensor_scope_counts_tensors_across_groups():
    assert perturbed_counts([3, 10, 2], 2, "whole_tensors") == [3, 10, 0]
    assert perturbed_counts([3, 10, 2], 2, "whole_tensors", offset=1) == [3, 0, 0]
    torch.manual_seed(0)
    a, b, c = (torch.randn(4, requires_grad=True) for _ in range(3))
    opt = SuperpositionalAdam([{"params": [a, b]}, {"params": [c]}], lr=0.1, n_qubits=2, scope="whole_tensors")
    ref = torch.optim.AdamW([x.detach().clone().requires_grad_() for x in (a, b, c)], lr=0.1, weight_decay=0.0)
    for x, y in zip((a, b, c), ref.param_groups[0]["params"]):
        x.grad = torch.ones(4)
        y.grad = torch.ones(4)
    opt.step()
    ref.step()
    new = ref.param_groups[0]["params"]
    assert not torch.equal(a, new[0]) and not torch.equal(b, new[1])
    torch.testing.assert_close(c, new[2])  # the third tensor is outside the first two


def test_perturbation_really_changes_only_the_first_elements():
    """One step from the same state: the difference from AdamW is exactly -lr*lam*sin(pi*theta)*g."""
    torch.manual_seed(0)
    p0 = torch.randn(3, 4) * 2
    g = torch.randn(3, 4)
    a = p0.clone().requires_grad_()
    b = p0.clone().requires_grad_()
    oa = SuperpositionalAdam([a], lr=0.1, weight_decay=0.5, quantum_weight=0.5, n_qubits=5)
    ob = torch.optim.AdamW([b], lr=0.1, weight_decay=0.5)
    a.grad, b.grad = g.clone(), g.clone()
    oa.step()
    ob.step()
    diff = (a - b).detach().view(-1)
    expected = torch.zeros(12)
    expected[:5] = -0.1 * 0.5 * torch.sin(math.pi * p0.view(-1)[:5]) * g.view(-1)[:5]  # θ_t before the decay
    torch.testing.assert_close(diff, expected, atol=1e-6, rtol=1e-5)


def test_perturbed_counts():
    assert perturbed_counts([3, 10, 2], 4, "tensor") == [3, 4, 2]
    assert perturbed_counts([3, 10, 2], 4, "global") == [3, 1, 0]
    assert perturbed_counts([3, 10, 2], 4, "global", offset=3) == [1, 0, 0]
    assert perturbed_counts([3, 10, 2], None, "global") == [3, 10, 2]
    assert perturbed_counts([3, 10, 2], 0, "tensor") == [0, 0, 0]


@pytest.mark.parametrize("path", PATHS, ids=PATH_IDS)
def test_param_groups_with_their_own_hyperparameters(path):
    X, Y = data()
    base = make_model()
    m = copy.deepcopy(base)
    groups = [dict(params=m[0].parameters(), lr=5e-2, quantum_weight=0.0),
              dict(params=m[2].parameters(), weight_decay=0.3, n_qubits=2)]
    opt = SuperpositionalAdam(groups, lr=1e-2, quantum_weight=0.4, **path)
    assert opt.param_groups[0]["lr"] == 5e-2 and opt.param_groups[1]["lr"] == 1e-2
    train(m, opt, 10, X, Y)
    # Separate optimizers on the same model must give the same result (groups do not interact,
    # with scope="tensor").
    m2 = copy.deepcopy(base)
    o1 = SuperpositionalAdam(m2[0].parameters(), lr=5e-2, quantum_weight=0.0, **path)
    o2 = SuperpositionalAdam(m2[2].parameters(), lr=1e-2, weight_decay=0.3, n_qubits=2, quantum_weight=0.4, **path)
    for _ in range(10):
        o1.zero_grad()
        o2.zero_grad()
        torch.nn.functional.mse_loss(m2(X), Y).backward()
        o1.step()
        o2.step()
    for p, q in zip(m.parameters(), m2.parameters()):
        torch.testing.assert_close(p, q, atol=0, rtol=0)


def test_global_scope_counts_across_groups():
    w1 = torch.nn.Parameter(torch.full((2,), 0.25))
    w2 = torch.nn.Parameter(torch.full((3,), 0.25))
    opt = SuperpositionalAdam([dict(params=[w1]), dict(params=[w2])], lr=0.1, quantum_weight=1.0, n_qubits=3,
                              scope="global")
    w1.grad, w2.grad = torch.ones(2), torch.ones(3)
    opt.step()
    adam_only = 0.25 - 0.1 * 1.0 / (1.0 + 1e-8)
    q = 0.1 * math.sin(math.pi * 0.25)
    torch.testing.assert_close(w1.detach(), torch.full((2,), adam_only - q))
    torch.testing.assert_close(w2.detach(), torch.tensor([adam_only - q, adam_only, adam_only]))


@pytest.mark.parametrize("path", PATHS, ids=PATH_IDS)
def test_state_dict_round_trip_keeps_the_trajectory(path):
    X, Y = data()
    m = make_model()
    opt = SuperpositionalAdam(m.parameters(), lr=1e-2, weight_decay=0.01, **path)
    train(m, opt, 5, X, Y)
    saved_model, saved_opt = copy.deepcopy(m.state_dict()), copy.deepcopy(opt.state_dict())
    straight = train(m, opt, 7, X, Y)
    m2 = make_model(seed=123)
    m2.load_state_dict(saved_model)
    opt2 = SuperpositionalAdam(m2.parameters(), lr=1.0, **path)  # hyperparameters come from the state dict
    opt2.load_state_dict(saved_opt)
    assert opt2.param_groups[0]["lr"] == 1e-2
    resumed = train(m2, opt2, 7, X, Y)
    torch.testing.assert_close(resumed, straight, atol=0, rtol=0)
    assert set(opt2.state[next(iter(m2.parameters()))]) == {"step", "exp_avg", "exp_avg_sq"}


def test_closure_is_called_and_its_loss_returned():
    X, Y = data()
    m = make_model()
    opt = SuperpositionalAdam(m.parameters())
    calls = []

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(m(X), Y)
        loss.backward()
        calls.append(1)
        return loss

    before = [p.detach().clone() for p in m.parameters()]
    loss = opt.step(closure)
    assert calls == [1]
    assert torch.is_tensor(loss) and loss.item() > 0
    assert all(not torch.equal(a, b) for a, b in zip(before, m.parameters()))


def test_parameters_without_gradients_are_skipped():
    a = torch.nn.Parameter(torch.ones(4))
    b = torch.nn.Parameter(torch.ones(4))
    opt = SuperpositionalAdam([a, b], weight_decay=0.5)
    a.grad = torch.ones(4)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(4))  # not even decayed
    assert b not in opt.state


def test_sparse_gradients_are_refused():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    opt = SuperpositionalAdam(emb.parameters())
    with pytest.raises(RuntimeError, match="sparse gradients"):
        opt.step()


@pytest.mark.parametrize("kwargs,name", [
    (dict(lr=-1e-3), "lr"),
    (dict(lr=float("nan")), "lr"),
    (dict(betas=(1.0, 0.999)), r"betas\[0\]"),
    (dict(betas=(0.9, -0.1)), r"betas\[1\]"),
    (dict(betas=(0.9,)), "betas"),
    (dict(eps=0.0), "eps"),
    (dict(weight_decay=-0.1), "weight_decay"),
    (dict(quantum_weight=-0.5), "quantum_weight"),
    (dict(n_qubits=-1), "n_qubits"),
    (dict(n_qubits=2.5), "n_qubits"),
    (dict(n_qubits=True), "n_qubits"),
    (dict(scope="layer"), "scope"),
    (dict(foreach=True, fused=True), "foreach and fused"),
])
def test_bad_hyperparameters_are_refused_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SuperpositionalAdam([torch.nn.Parameter(torch.zeros(2))], **kwargs)


def test_bad_hyperparameters_in_a_later_param_group_are_refused():
    opt = SuperpositionalAdam([torch.nn.Parameter(torch.zeros(2))])
    with pytest.raises(ValueError, match="scope"):
        opt.add_param_group(dict(params=[torch.nn.Parameter(torch.zeros(2))], scope="all"))


def test_error_messages_name_the_accepted_range():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        SuperpositionalAdam([torch.nn.Parameter(torch.zeros(2))], betas=(0.9, 1.5))
    with pytest.raises(ValueError, match="tensor.*global"):
        SuperpositionalAdam([torch.nn.Parameter(torch.zeros(2))], scope="x")


def test_state_memory_equals_adamw():
    m = make_model()
    X, Y = data()
    opt = SuperpositionalAdam(m.parameters())
    train(m, opt, 1, X, Y)
    m2 = make_model()
    opt2 = torch.optim.AdamW(m2.parameters())
    train(m2, opt2, 1, X, Y)

    def nbytes(o):
        return sum(t.numel() * t.element_size() for s in o.state.values() for t in s.values() if torch.is_tensor(t))

    assert nbytes(opt) == nbytes(opt2)


# --------------------------------------------------------------------------------------
# The quantum-inspired moment baseline
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_moment_baseline_at_zero_is_adam(wd):
    X, Y = data()
    base = make_model()
    m1, m2 = copy.deepcopy(base), copy.deepcopy(base)
    ref = train(m1, torch.optim.AdamW(m1.parameters(), lr=1e-2, weight_decay=wd, foreach=False), 20, X, Y)
    ours = train(m2, QuantumMomentAdam(m2.parameters(), lr=1e-2, weight_decay=wd, moment_weight=0.0), 20, X, Y)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)
    if wd == 0.0:
        m3 = copy.deepcopy(base)
        adam = train(m3, torch.optim.Adam(m3.parameters(), lr=1e-2), 20, X, Y)
        torch.testing.assert_close(ours, adam, atol=1e-6, rtol=1e-6)


def test_moment_baseline_two_steps_by_hand():
    theta0 = torch.tensor([0.25, -0.5, 1.0, 0.1])
    g1 = torch.tensor([1.0, -2.0, 0.5, 3.0])
    g2 = torch.tensor([0.5, 1.0, -1.0, 2.0])
    p = torch.nn.Parameter(theta0.clone())
    lr, mu, (b1, b2), eps = 0.1, 0.5, (0.9, 0.999), 1e-8
    opt = QuantumMomentAdam([p], lr=lr, moment_weight=mu)
    th = theta0.double()
    m = v = torch.zeros(4, dtype=torch.float64)
    for t, g in enumerate([g1, g2], start=1):
        p.grad = g.clone()
        opt.step()
        gd = g.double()
        m = b1 * m + (1 - b1) * gd * (1 + mu * torch.sin(math.pi * th))
        v = b2 * v + (1 - b2) * gd**2
        th = th - lr * (m / (1 - b1**t)) / (torch.sqrt(v / (1 - b2**t)) + eps)
        torch.testing.assert_close(p.detach().double(), th, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(th, theta0.double() - 0.2 * torch.sign(g1.double()))  # it did differ from Adam


def test_moment_baseline_validates():
    with pytest.raises(ValueError, match="moment_weight"):
        QuantumMomentAdam([torch.nn.Parameter(torch.zeros(2))], moment_weight=-1)
    with pytest.raises(ValueError, match="lr"):
        QuantumMomentAdam([torch.nn.Parameter(torch.zeros(2))], lr=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("path", PATHS, ids=PATH_IDS)
def test_cuda_matches_cpu(path):
    X, Y = data()
    base = make_model()
    m_cpu, m_gpu = copy.deepcopy(base), copy.deepcopy(base).cuda()
    a = train(m_cpu, SuperpositionalAdam(m_cpu.parameters(), lr=1e-2, **path), 10, X, Y)
    b = train(m_gpu, SuperpositionalAdam(m_gpu.parameters(), lr=1e-2, **path), 10, X.cuda(), Y.cuda())
    torch.testing.assert_close(b.cpu(), a, atol=1e-5, rtol=1e-4)


def test_sharded_parameters_are_refused_with_an_explanation():
    """FSDP's FlatParameter carries _is_flat_param; FSDP2 hands DTensors. Both are refused."""
    flat = torch.nn.Parameter(torch.zeros(8))
    flat._is_flat_param = True
    flat.grad = torch.ones(8)
    with pytest.raises(NotImplementedError, match="sharded or flattened parameter.*DDP"):
        SuperpositionalAdam([flat]).step()


def test_dtensor_parameters_are_refused(tmp_path):
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        p = torch.nn.Parameter(distribute_tensor(torch.zeros(4, 4), mesh, [Shard(0)]))
        p.grad = distribute_tensor(torch.ones(4, 4), mesh, [Shard(0)])
        with pytest.raises(NotImplementedError, match="FSDP"):
            SuperpositionalAdam([p]).step()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("path", PATHS[:3], ids=PATH_IDS[:3])
def test_cos_perturbation_by_hand(path):
    torch.manual_seed(0)
    p0, g = torch.randn(3, 5) * 2, torch.randn(3, 5)
    a, b = p0.clone().requires_grad_(), p0.clone().requires_grad_()
    oa = SuperpositionalAdam([a], lr=0.1, quantum_weight=0.5, n_qubits=6, perturbation="cos", **path)
    ob = torch.optim.AdamW([b], lr=0.1, weight_decay=0.0)
    a.grad, b.grad = g.clone(), g.clone()
    oa.step()
    ob.step()
    expected = torch.zeros(15)
    expected[:6] = -0.1 * 0.5 * torch.cos(math.pi * p0.view(-1)[:6]) * g.view(-1)[:6]
    torch.testing.assert_close((a - b).detach().view(-1), expected, atol=1e-6, rtol=1e-5)


def test_random_controls_have_the_stated_scale():
    from sgdq.method.optim import perturbation

    torch.manual_seed(0)
    theta = torch.rand(200_000) * 2 - 1  # uniform: E[sin²(πθ)] = 1/2
    g = torch.full((200_000,), 3.0)
    rms = lambda q: q.pow(2).mean().sqrt().item()  # noqa: E731
    assert rms(perturbation("sin", theta, g)) == pytest.approx(3 / math.sqrt(2), rel=0.01)
    gauss = perturbation("gaussian", theta, g)
    assert rms(gauss) == pytest.approx(3 / math.sqrt(2), rel=0.01) and abs(gauss.mean().item()) < 0.02
    sign = perturbation("sign", theta, g)
    assert torch.equal(sign.abs(), g) and abs(sign.mean().item()) < 0.05
    # the placebo: entry by entry the size of Eq. (2)'s term, with a sign independent of it
    sin_q = perturbation("sin", theta, g)
    placebo = perturbation("placebo", theta, g)
    assert torch.equal(placebo.abs(), sin_q.abs())
    agree = (torch.sign(placebo) == torch.sign(sin_q)).double().mean().item()
    assert agree == pytest.approx(0.5, abs=0.01)  # a coin flip, not sin(πθ)'s sign
    expected = r"perturbation must be one of \('sin', 'cos', 'gaussian', 'sign', 'placebo'\)"
    with pytest.raises(ValueError, match=expected):
        SuperpositionalAdam([torch.nn.Parameter(torch.zeros(2))], perturbation="tan")


def test_cached_slices_follow_a_parameter_whose_storage_is_replaced():
    """The fast path caches views of each perturbed slice; replacing p.data must not fool it."""
    X, Y = data()
    base = make_model()
    m1, m2 = copy.deepcopy(base), copy.deepcopy(base)
    o1 = SuperpositionalAdam(m1.parameters(), lr=1e-2, fused=True)
    o2 = SuperpositionalAdam(m2.parameters(), lr=1e-2, foreach=False, fused=False)
    for step in range(6):
        if step == 3:  # e.g. a .to() or a weight reload after the optimizer was built
            for p in m1.parameters():
                p.data = p.data.clone()
        for m, o in ((m1, o1), (m2, o2)):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(X), Y).backward()
            o.step()
    for p, q in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


def test_fast_path_follows_changing_gradient_sets_and_layouts():
    """The fast path keeps a Q buffer sized for the tensors that had gradients last step, and
    reads gradient slices through views: a tensor that loses or regains its gradient, and a
    gradient stored transposed (not contiguous), must give the reference loop's numbers."""
    X, Y = data()
    base = make_model()
    models = [copy.deepcopy(base), copy.deepcopy(base)]
    opts = [SuperpositionalAdam(models[0].parameters(), lr=1e-2, fused=True),
            SuperpositionalAdam(models[1].parameters(), lr=1e-2, foreach=False, fused=False)]
    for step in range(6):
        for m, o in zip(models, opts):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(X), Y).backward()
            if step == 2:  # the last bias has no gradient this step
                m[2].bias.grad = None
            if step == 4:  # a weight gradient laid out column-major
                g = m[0].weight.grad
                m[0].weight.grad = g.t().contiguous().t()
                assert not m[0].weight.grad.is_contiguous()
            o.step()
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


def test_fused_path_with_mixed_dtypes_in_one_group():
    """The fused path calls torch's kernel directly only for one device and dtype; a group
    mixing float32 and float64 goes through torch's grouping and still matches the loop."""
    g = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (5,), (2, 2, 3)]
    base = [torch.randn(s, generator=g, dtype=torch.float64 if i == 1 else torch.float32)
            for i, s in enumerate(shapes)]
    grads = [[torch.randn(s, generator=g, dtype=b.dtype) for s, b in zip(shapes, base)] for _ in range(4)]
    out = []
    for path in (dict(fused=True), dict(foreach=False, fused=False)):
        params = [torch.nn.Parameter(b.clone()) for b in base]
        opt = SuperpositionalAdam(params, lr=0.05, weight_decay=0.1, **path)
        for gs in grads:
            for p, gr in zip(params, gs):
                p.grad = gr.clone()
            opt.step()
        out.append(params)
    for a, b in zip(*out):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
