"""Superpositional Gradient Descent, Eq. (1)–(2), and the "quantum-inspired moment" baseline.

Eq. (1) of Pamuk et al. (2025) adds a sine-modulated copy of the gradient to the Adam update:

    θ_{t+1} = θ_t − α·( m̂_t / (√v̂_t + ε) + λ·Q(θ_t, g_t) )                 (Eq. 1)
    Q_i     = sin(π·θ_{t,i})·g_{t,i}  if i < n_qubits,  else 0                (Eq. 2)

The layout follows ``torch/optim/adam.py``: a functional core
(:func:`superpositional_adam`) and a thin :class:`torch.optim.Optimizer` class around it.

Our interpretation, where the paper is silent
---------------------------------------------
* **Which elements are "i < n_qubits".** The paper does not say whether i counts within each
  parameter tensor or across the whole model. ``scope="tensor"`` (default) perturbs the
  first ``n_qubits`` elements of every tensor, flattened row-major; ``scope="global"``
  perturbs the first ``n_qubits`` elements of all parameters concatenated in optimizer
  order (every parameter counts towards the offset, with or without a gradient). "tensor" is
  the default because it is the only reading under which the perturbation reaches every
  layer at all: with "global" and n_qubits = 4, only four weights of the first embedding
  row ever move differently from Adam, and the optimizer would be Adam for all practical
  purposes. ``n_qubits=None`` perturbs every element.
* **Weight decay** is decoupled (AdamW) and applied first, θ′ = θ_t·(1 − α·wd), because the
  paper's LLM experiment compares against AdamW with wd = 0.01 (Table III).
* **Q uses θ_t from before the decay**, and the raw gradient g_t; the Adam moments are
  computed from the raw g_t as well, so at λ = 0 this is exactly AdamW.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch.optim import Optimizer
from torch.optim.adam import adam as _torch_adam

SCOPES = ("tensor", "global")
PERTURBATIONS = ("sin", "cos", "gaussian", "sign")


def perturbation(kind: str, theta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Q for the perturbed entries: Eq. (2) (``"sin"``) or one of the ablation controls.

    * ``"sin"``: sin(π·θ)·g, the paper's Eq. (2);
    * ``"cos"``: cos(π·θ)·g, the same oscillation shifted by a quarter period;
    * ``"gaussian"``: z·g/√2 with z ~ N(0, 1), noise with the root-mean-square of sin(πθ)·g
      over a uniform θ;
    * ``"sign"``: a random sign times |g|.

    The random controls draw from torch's global generator, so a seeded run repeats.
    """
    if kind == "sin":
        return torch.sin(math.pi * theta).mul_(grad)
    if kind == "cos":
        return torch.cos(math.pi * theta).mul_(grad)
    if kind == "gaussian":
        return torch.randn(grad.shape, dtype=grad.dtype, device=grad.device).mul_(grad).mul_(math.sqrt(0.5))
    if kind == "sign":
        signs = torch.randint(0, 2, grad.shape, device=grad.device).to(grad.dtype).mul_(2).sub_(1)
        return signs.mul_(grad.abs())
    raise ValueError(f"perturbation must be one of {PERTURBATIONS}, got {kind!r}")


# --------------------------------------------------------------------------------------
# Validation (shared by both optimizers and by every param group)
# --------------------------------------------------------------------------------------
def _is_real_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _validate_adam(group: dict) -> None:
    lr, betas, eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
    if not _is_real_number(lr) or lr < 0:
        raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), each in [0, 1), got {betas!r}")
    for name, b in zip(("betas[0]", "betas[1]"), betas):
        if not _is_real_number(b) or not 0.0 <= b < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {b!r}")
    if not _is_real_number(eps) or eps <= 0:
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    if not _is_real_number(wd) or wd < 0:
        raise ValueError(f"weight_decay must be a finite number >= 0, got {wd!r}")
    for p in group["params"]:
        if torch.is_complex(p):
            raise ValueError("complex parameters are not supported: sin(π·θ) needs real θ")


def _validate_superpositional(group: dict) -> None:
    _validate_adam(group)
    qw, nq, scope = group["quantum_weight"], group["n_qubits"], group["scope"]
    if not _is_real_number(qw) or qw < 0:
        raise ValueError(f"quantum_weight must be a finite number >= 0, got {qw!r}")
    if nq is not None and (not isinstance(nq, numbers.Integral) or isinstance(nq, bool) or nq < 0):
        raise ValueError(f"n_qubits must be an integer >= 0 (or None for every element), got {nq!r}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if group.get("perturbation", "sin") not in PERTURBATIONS:
        raise ValueError(f"perturbation must be one of {PERTURBATIONS}, got {group['perturbation']!r}")
    for flag in ("foreach", "fused"):
        if group[flag] not in (None, True, False):
            raise ValueError(f"{flag} must be None, True or False, got {group[flag]!r}")


# --------------------------------------------------------------------------------------
# Functional core
# --------------------------------------------------------------------------------------
def perturbed_counts(numels, n_qubits, scope="tensor", offset=0):
    """How many leading elements of each tensor Eq. (2) perturbs.

    ``numels`` are the tensors' sizes in order; ``offset`` is the number of elements that
    come before them in the global concatenation (only used when ``scope="global"``).
    """
    if n_qubits is None:
        return list(numels)
    if scope == "tensor":
        return [min(n_qubits, n) for n in numels]
    counts = []
    for n in numels:
        counts.append(max(0, min(n, n_qubits - offset)))
        offset += n
    return counts


def perturbed_fraction(shapes, n_qubits=4, scope="tensor") -> tuple[int, int]:
    """(perturbed elements, all elements) for parameter tensors of the given shapes.
    """
    numels = [math.prod(s) for s in shapes]
    return sum(perturbed_counts(numels, n_qubits, scope)), sum(numels)


def _refuse_sharded(p: torch.Tensor, who: str) -> None:
    """FSDP hands the optimizer flattened or sharded parameters; Eq. (2)'s "first n_qubits
    entries of each tensor" would then silently pick the wrong entries, so refuse."""
    if getattr(p, "_is_flat_param", False) or type(p).__name__ in ("DTensor", "FlatParameter") \
            or type(getattr(p, "data", None)).__name__ == "DTensor":
        raise NotImplementedError(
            f"{who} got a sharded or flattened parameter (FSDP). Eq. (2) perturbs the first n_qubits entries "
            "of each whole tensor, which a shard does not know; use DDP (whole parameters on every rank) or a "
            "single device.")


def _cached_head(p: torch.Tensor, k: int, cache: dict | None) -> torch.Tensor:
    """``_head(p, k)``, reused from ``cache`` while ``p`` keeps the same storage."""
    if cache is None:
        return _head(p, k)
    hit = cache.get(id(p))
    ptr = p.data_ptr()
    if hit is None or hit[0] != ptr or hit[1] != k:
        hit = (ptr, k, _head(p, k))
        cache[id(p)] = hit
    return hit[2]


def _head(p: torch.Tensor, k: int) -> torch.Tensor:
    """A view of the first k elements of p in row-major order."""
    if not p.is_contiguous():
        raise ValueError("SuperpositionalAdam needs contiguous parameters (row-major flattening)")
    return p.view(-1)[:k]


def _grad_head(g: torch.Tensor, k: int) -> torch.Tensor:
    """The first k elements of a gradient in row-major order (a view when g is contiguous)."""
    return g.as_strided((k,), (1,)) if g.is_contiguous() else g.flatten()[:k]


_BUFFER_LIMIT = 2**20  # perturbed elements up to which the batched Q buffer is kept between steps


def _q_buffer(sizes: list[int], like: torch.Tensor, cache: dict | None):
    """A flat buffer for the batched Q and its split views, kept in ``cache`` between steps
    (at most ``_BUFFER_LIMIT`` elements, so n_qubits=None on a large model allocates anew)."""
    if cache is not None:
        hit = cache.get("q")
        if hit is not None and hit[0] == sizes and hit[1].dtype == like.dtype and hit[1].device == like.device:
            return hit[1], hit[2]
    buf = like.new_empty(sum(sizes))
    views = list(buf.split(sizes))
    if cache is not None and buf.numel() <= _BUFFER_LIMIT:
        cache["q"] = (list(sizes), buf, views)
    return buf, views


def _reference_adamw(param, grad, exp_avg, exp_avg_sq, step_t, *, lr, beta1, beta2, eps, weight_decay,
                     moment_grad=None):
    """One AdamW step on one tensor, op for op as torch's single-tensor Adam.

    ``moment_grad`` (default: ``grad``) is what enters the first moment; the second moment
    always uses ``grad``. Used by both optimizers' reference paths.
    """
    step_t += 1
    if weight_decay != 0:
        param.mul_(1 - lr * weight_decay)
    exp_avg.lerp_(grad if moment_grad is None else moment_grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    step = step_t.item()
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)


def _adamw(params, grads, exp_avgs, exp_avg_sqs, state_steps, *, foreach, fused, lr, beta1, beta2, eps,
           weight_decay) -> None:
    """The Adam part of Eq. (1): one step of torch's functional AdamW on all tensors."""
    if fused and not all(g.is_contiguous() for g in grads):
        # torch 2.13's fused CPU kernel reads a non-contiguous gradient as if it were laid out
        # like its parameter (AdamW(fused=True) gives wrong numbers then); hand it a copy.
        grads = [g if g.is_contiguous() else g.contiguous() for g in grads]
    _torch_adam(params, grads, exp_avgs, exp_avg_sqs, [], state_steps, foreach=foreach, fused=fused,
                decoupled_weight_decay=True, amsgrad=False, beta1=beta1, beta2=beta2, lr=lr,
                weight_decay=weight_decay, eps=eps, maximize=False)


def superpositional_adam(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    state_steps: list[torch.Tensor],
    counts: list[int],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    quantum_weight: float,
    foreach: bool | None = None,
    fused: bool | None = None,
    kind: str = "sin",
    head_cache: dict | None = None,
) -> None:
    """Functional Eq. (1)–(2): update ``params`` in place.

    ``counts[i]`` is how many leading elements of ``params[i]`` get the perturbation (see
    :func:`perturbed_counts`). With ``foreach`` and ``fused`` both False this runs the
    plain per-tensor reference loop; otherwise torch's own multi-tensor or fused AdamW kernel
    does the Adam part and the perturbation of all tensors is one batched operation.
    ``head_cache`` (optional, kept by the optimizer between steps) holds the views of each
    parameter's perturbed slice, revalidated against the parameter's storage every step,
    and a buffer of n_qubits·(number of tensors) elements for Q with its split views.
    """
    if not foreach and not fused:
        for p, g, m, v, s, k in zip(params, grads, exp_avgs, exp_avg_sqs, state_steps, counts):
            q = None
            if k and quantum_weight:
                q = perturbation(kind, _head(p, k), _grad_head(g, k))  # Eq. (2), from θ_t (a new tensor)
            _reference_adamw(p, g, m, v, s, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                             weight_decay=weight_decay)
            if q is not None:
                _head(p, k).add_(q, alpha=-lr * quantum_weight)
        return

    if not quantum_weight:
        counts = [0] * len(params)
    sizes = [k for k in counts if k]
    if sizes:
        # Batched Eq. (2): gather every perturbed slice of θ_t and g_t (views: cached for θ,
        # as_strided for g), compute Q for all of them in one buffer, and add it with one
        # foreach call after the Adam kernel. The buffer's split views are kept between steps.
        heads = [_cached_head(p, k, head_cache) for p, k in zip(params, counts) if k]
        theta = torch.cat(heads)
        grad = torch.cat([_grad_head(g, k) for g, k in zip(grads, counts) if k])
        q, q_views = _q_buffer(sizes, theta, head_cache)
        torch.mul(perturbation(kind, theta, grad), -lr * quantum_weight, out=q)
    _adamw(params, grads, exp_avgs, exp_avg_sqs, state_steps, foreach=foreach, fused=fused, lr=lr, beta1=beta1,
           beta2=beta2, eps=eps, weight_decay=weight_decay)
    if sizes:
        torch._foreach_add_(heads, q_views)


# --------------------------------------------------------------------------------------
# Optimizer classes
# --------------------------------------------------------------------------------------
class _AdamFamily(Optimizer):
    """Shared plumbing: validation of every group, lazy state, closure, sparse-grad check."""

    _validate = staticmethod(_validate_adam)

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        self._validate(self.param_groups[-1])

    def _gather(self, group):
        """Collect tensors that have gradients; return lists and the perturbed counts."""
        params, grads, exp_avgs, exp_avg_sqs, steps, numels, has_grad = [], [], [], [], [], [], []
        fused = group.get("fused")
        state_of = self.state
        for p in group["params"]:
            numels.append(p.numel())
            g = p.grad
            has_grad.append(g is not None)
            if g is None:
                continue
            if g.is_sparse:
                raise RuntimeError(
                    f"{type(self).__name__} does not support sparse gradients; "
                    "use dense gradients (e.g. nn.Embedding(sparse=False))"
                )
            state = state_of[p]
            if len(state) == 0:
                _refuse_sharded(p, type(self).__name__)
                state["step"] = (torch.zeros((), dtype=torch.float32, device=p.device) if fused
                                 else torch.tensor(0.0, dtype=torch.float32))
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(g)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        return params, grads, exp_avgs, exp_avg_sqs, steps, numels, has_grad

    def _closure_loss(self, closure):
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()


class SuperpositionalAdam(_AdamFamily):
    """Superpositional Gradient Descent, Eq. (1)–(2), as a :class:`torch.optim.Optimizer`.

    Per step, for every parameter θ with a gradient g:

    1. Q = sin(π·θ_t)·g on the perturbed elements (Eq. 2), 0 elsewhere;
    2. θ′ = θ_t·(1 − lr·weight_decay) (decoupled, as AdamW);
    3. bias-corrected Adam moments m̂, v̂ from g;
    4. θ_{t+1} = θ′ − lr·m̂/(√v̂ + ε) − lr·quantum_weight·Q (Eq. 1).

    The paper does not define which elements are "the first n_qubits": ``scope="tensor"``
    (default) takes the first ``n_qubits`` elements of each tensor, flattened row-major;
    ``scope="global"`` the first ``n_qubits`` of all parameters concatenated in optimizer
    order. "tensor" is the default because under "global" a 4-element perturbation touches
    one corner of the first tensor and nothing else, which would make the method
    indistinguishable from Adam; see the module docstring. ``n_qubits=None`` perturbs all.

    ``foreach`` / ``fused`` choose the path as in torch's Adam. Both False: the plain
    reference loop. Otherwise torch's multi-tensor or fused AdamW kernel does the Adam
    part and Eq. (2) is one batched operation. ``None`` (default) picks fused where torch
    supports it (floating tensors on CPU or CUDA) and the reference loop elsewhere.
    The state per parameter is the same as AdamW's: ``step``, ``exp_avg``, ``exp_avg_sq``.
    ``perturbation`` swaps Eq. (2)'s sin(πθ)·g for an ablation control (see
    :func:`perturbation`); the default is the paper's.

    At ``quantum_weight=0`` it equals :class:`torch.optim.AdamW` to float precision.
    """

    _validate = staticmethod(_validate_superpositional)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 quantum_weight=0.5, n_qubits=4, scope="tensor", *, foreach=None, fused=None,
                 perturbation="sin"):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps,
                        weight_decay=weight_decay, quantum_weight=quantum_weight, n_qubits=n_qubits,
                        scope=scope, foreach=foreach, fused=fused, perturbation=perturbation)
        super().__init__(params, defaults)

    @staticmethod
    def _resolve_path(group):
        """Pick fused where torch supports it, unless the user chose."""
        if group["fused"] is None and group["foreach"] is None:
            ok = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in group["params"])
            group["fused"] = ok
            group["foreach"] = False
        if group["fused"] and group["foreach"]:
            raise ValueError("foreach and fused cannot both be True")

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        self._resolve_path(self.param_groups[-1])

    @torch.no_grad()
    def step(self, closure=None):
        """One step of Eq. (1) for every param group; returns the closure's loss if given."""
        loss = self._closure_loss(closure)
        offset = 0  # global element offset, for scope="global"
        for group in self.param_groups:
            params, grads, ms, vs, steps, numels, has_grad = self._gather(group)
            counts_all = perturbed_counts(numels, group["n_qubits"], group["scope"], offset)
            offset += sum(numels)
            counts = [k for k, h in zip(counts_all, has_grad) if h]
            if not params:
                continue
            beta1, beta2 = group["betas"]
            superpositional_adam(params, grads, ms, vs, steps, counts, lr=group["lr"], beta1=beta1,
                                 beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                                 quantum_weight=group["quantum_weight"], foreach=group["foreach"],
                                 fused=group["fused"], kind=group.get("perturbation", "sin"),
                                 head_cache=self.__dict__.setdefault("_head_cache", {}))
        return loss


def _validate_moment(group: dict) -> None:
    _validate_adam(group)
    mw = group["moment_weight"]
    if not _is_real_number(mw) or mw < 0:
        raise ValueError(f"moment_weight must be a finite number >= 0, got {mw!r}")


class QuantumMomentAdam(_AdamFamily):
    """Baseline 2 of Sec. IV-B, "Adam with quantum-inspired moment updates" (our definition).

    The paper names this baseline but never defines it. Our interpretation: the same sine
    modulation as Eq. (2), but applied inside the *first moment* on every element, not added
    to the update on a few of them:

        m_t = β₁·m_{t−1} + (1 − β₁)·g_t·(1 + μ·sin(π·θ_t))
        v_t = β₂·v_{t−1} + (1 − β₂)·g_t²                      (unchanged)

    with μ = ``moment_weight``, and decoupled weight decay as in AdamW. At μ = 0 this is
    exactly AdamW (and Adam when weight_decay = 0). The factor 1 + μ·sin(πθ) lies in
    [1 − μ, 1 + μ], so for μ < 1 it never flips the gradient's sign; it only re-weights
    the momentum, which is what separates it from the additive Eq. (1).
    """

    _validate = staticmethod(_validate_moment)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 moment_weight=0.5):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps,
                        weight_decay=weight_decay, moment_weight=moment_weight)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One step for every param group; returns the closure's loss if given."""
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            params, grads, ms, vs, steps, _, _ = self._gather(group)
            beta1, beta2 = group["betas"]
            mw = group["moment_weight"]
            for p, g, m, v, s in zip(params, grads, ms, vs, steps):
                mg = g * (1 + mw * torch.sin(math.pi * p)) if mw else None
                _reference_adamw(p, g, m, v, s, lr=group["lr"], beta1=beta1, beta2=beta2,
                                 eps=group["eps"], weight_decay=group["weight_decay"], moment_grad=mg)
        return loss
