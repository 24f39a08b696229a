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
* **Readings of Eq. (1)–(2) under which Q could matter** (issue 15; each a switch, each
  AdamW at λ = 0; the defaults are the literal reading):

  - (a) ``scope="whole_tensors"``: "the first n_qubits" counts parameter *tensors* in
    optimizer order, every entry of those tensors perturbed (for a Llama model the token
    embedding and the first layer's projections, about a fifth of the weights);
  - (b) ``normalize_q=True``: Q is divided by Adam's own denominator, Q/(√v̂_t + ε), so it
    is measured in the units of Adam's step rather than the raw gradient's;
  - (c) ``q_times_lr=False``: θ_{t+1} = … − λ·Q, without the learning rate (a slip that
    code of Eq. (1) can easily make, and the only reading in which the schedule does not
    scale Q);
  - (d) ``n_qubits=None``: every entry of every tensor.
* **Weight decay** is decoupled (AdamW) and applied first, θ′ = θ_t·(1 − α·wd), because the
  paper's LLM experiment compares against AdamW with wd = 0.01 (Table III).
* **Q uses θ_t from before the decay**, and the raw gradient g_t; the Adam moments are
  computed from the raw g_t as well, so at λ = 0 this is exactly AdamW.
"""

from __future__ import annotations

import math
import numbers
import weakref

import torch
from torch.optim import Optimizer
from torch.optim.adam import adam as _torch_adam

from .checks import check_number, is_number

SCOPES = ("tensor", "global", "whole_tensors")
PERTURBATIONS = ("sin", "cos", "gaussian", "sign", "placebo")


def perturbation(kind: str, theta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Q for the perturbed entries: Eq. (2) (``"sin"``) or one of the ablation controls.

    * ``"sin"``: sin(π·θ)·g, the paper's Eq. (2);
    * ``"cos"``: cos(π·θ)·g, the same oscillation shifted by a quarter period;
    * ``"gaussian"``: z·g/√2 with z ~ N(0, 1), noise with the root-mean-square of sin(πθ)·g
      over a uniform θ;
    * ``"sign"``: a random sign times |g|;
    * ``"placebo"``: a random sign times |sin(π·θ)·g|: the same entries and, entry by entry,
      the same size of extra step as Eq. (2), with a direction that no longer depends on θ
      (the control that separates an effect of sin(πθ) from "any small extra step").

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
    if kind == "placebo":
        signs = torch.randint(0, 2, grad.shape, device=grad.device).to(grad.dtype).mul_(2).sub_(1)
        return torch.sin(math.pi * theta).mul_(grad).abs_().mul_(signs)
    raise ValueError(f"perturbation must be one of {PERTURBATIONS}, got {kind!r}")


def perturbation_size(kind: str, theta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """|Q| entry by entry for :func:`perturbation` ``kind``, without drawing random numbers:
    exact for every kind but ``"gaussian"``, whose root-mean-square |g|/√2 is used."""
    if kind in ("sin", "placebo"):
        return torch.sin(math.pi * theta).mul_(grad).abs_()
    if kind == "cos":
        return torch.cos(math.pi * theta).mul_(grad).abs_()
    if kind == "sign":
        return grad.abs()
    if kind == "gaussian":
        return grad.abs().mul_(math.sqrt(0.5))
    raise ValueError(f"perturbation must be one of {PERTURBATIONS}, got {kind!r}")


@torch.no_grad()
def adam_direction_norm(optimizer: Optimizer) -> float:
    """‖m̂_t / (√v̂_t + ε)‖ over every parameter with Adam state: the size of Eq. (1)'s Adam
    term per unit learning rate, from the state ``optimizer.step()`` has just written (torch's
    Adam/AdamW and both optimizers here keep ``exp_avg``, ``exp_avg_sq`` and ``step``)."""
    total = 0.0
    for group in optimizer.param_groups:
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            state = optimizer.state.get(p)
            if not state or "exp_avg" not in state:
                continue
            t = float(state["step"])
            m_hat = state["exp_avg"].double() / (1 - beta1**t)
            v_hat = state["exp_avg_sq"].double() / (1 - beta2**t)
            total += float((m_hat / (v_hat.sqrt() + group["eps"])).pow(2).sum())
    return math.sqrt(total)


# --------------------------------------------------------------------------------------
# Validation (shared by both optimizers; run on every step, so values set later are checked)
# --------------------------------------------------------------------------------------
UNSUPPORTED_FLAGS = ("amsgrad", "maximize", "capturable", "differentiable")


def _check_lr(lr) -> None:
    if isinstance(lr, torch.Tensor):
        if lr.numel() != 1 or lr.is_complex() or not lr.is_floating_point():
            raise ValueError(f"a tensor lr must be a 1-element real floating tensor, got {lr!r}")
        if lr.device.type != "meta" and (not torch.isfinite(lr).all() or (lr < 0).any()):
            raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
        return
    if not is_number(lr) or lr < 0:
        raise ValueError(f"lr must be a finite number >= 0 (or a 1-element tensor), got {lr!r}")


def _validate_adam(group: dict) -> None:
    """The hyper-parameters every Adam-family group shares (cheap: no loop over parameters)."""
    _check_lr(group["lr"])
    betas, eps, wd = group["betas"], group["eps"], group["weight_decay"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), each in [0, 1), got {betas!r}")
    for name, b in zip(("betas[0]", "betas[1]"), betas):
        if not is_number(b) or not 0.0 <= b < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {b!r}")
    check_number("eps", eps, strict=True)
    check_number("weight_decay", wd)
    for flag in UNSUPPORTED_FLAGS:
        if group.get(flag):
            raise ValueError(f"{flag}=True is not supported (this optimizer implements plain AdamW moments); "
                             f"a state dict or param group asked for it")


def _validate_superpositional(group: dict) -> None:
    _validate_adam(group)
    qw, nq, scope = group["quantum_weight"], group["n_qubits"], group["scope"]
    check_number("quantum_weight", qw)
    if nq is not None and (not isinstance(nq, numbers.Integral) or isinstance(nq, bool) or nq < 0):
        raise ValueError(f"n_qubits must be an integer >= 0 (or None for every element), got {nq!r}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if group["perturbation"] not in PERTURBATIONS:
        raise ValueError(f"perturbation must be one of {PERTURBATIONS}, got {group['perturbation']!r}")
    for flag in ("normalize_q", "q_times_lr"):
        if not isinstance(group[flag], bool):
            raise ValueError(f"{flag} must be True or False, got {group[flag]!r}")
    for flag in ("foreach", "fused"):
        if group[flag] not in (None, True, False):
            raise ValueError(f"{flag} must be None, True or False, got {group[flag]!r}")
    if group["fused"] and group["foreach"]:
        raise ValueError("foreach and fused cannot both be True")


def _validate_moment(group: dict) -> None:
    _validate_adam(group)
    check_number("moment_weight", group["moment_weight"])


# --------------------------------------------------------------------------------------
# Eq. (2)'s "first n_qubits entries": row-major order of the tensor's index, for any layout
# --------------------------------------------------------------------------------------
def perturbed_counts(numels, n_qubits, scope="tensor", offset=0):
    """How many leading elements of each tensor Eq. (2) perturbs.

    ``numels`` are the tensors' sizes in order; ``offset`` is the number of elements
    (``scope="global"``) or of tensors (``scope="whole_tensors"``) that come before them in
    optimizer order (unused for ``scope="tensor"``).
    """
    if n_qubits is None:
        return list(numels)
    if scope == "tensor":
        return [min(n_qubits, n) for n in numels]
    if scope == "whole_tensors":
        return [n if offset + i < n_qubits else 0 for i, n in enumerate(numels)]
    counts = []
    for n in numels:
        counts.append(max(0, min(n, n_qubits - offset)))
        offset += n
    return counts


def perturbed_fraction(shapes, n_qubits=4, scope="tensor") -> tuple[int, int]:
    """(perturbed elements, all elements) for parameter tensors of the given shapes."""
    numels = [math.prod(s) for s in shapes]
    return sum(perturbed_counts(numels, n_qubits, scope)), sum(numels)


def _head_index(t: torch.Tensor, k: int):
    """Index tensors of the first k elements of ``t`` in row-major order of its *index*
    (``t[0, 0, 0]``, ``t[0, 0, 1]``, …), whatever its memory layout."""
    return torch.unravel_index(torch.arange(k, device=t.device), t.shape)


def read_head(t: torch.Tensor, k: int) -> torch.Tensor:
    """The first k elements of ``t`` in row-major index order (Eq. 2's i < n_qubits).

    A view when ``t`` is contiguous; otherwise (channels_last, transposed, strided) a gathered
    copy of just those k elements, the same values ``t.contiguous().view(-1)[:k]`` would give.
    """
    if t.is_contiguous():
        return t.as_strided((k,), (1,))  # a view: one op instead of view(-1)[:k]
    if k == t.numel():
        return t.reshape(-1)
    return t[_head_index(t, k)]


def add_to_head(t: torch.Tensor, k: int, q: torch.Tensor) -> None:
    """t's first k elements in row-major index order += q, in place, for any layout."""
    if t.is_contiguous():
        t.view(-1)[:k].add_(q)
    elif k == t.numel():
        t.add_(q.view(t.shape))
    else:
        t.index_put_(_head_index(t, k), q, accumulate=True)


def _refuse_sharded(p: torch.Tensor, who: str) -> None:
    """FSDP hands the optimizer flattened or sharded parameters; Eq. (2)'s "first n_qubits
    entries of each tensor" would then silently pick the wrong entries, so refuse."""
    if getattr(p, "_is_flat_param", False) or type(p).__name__ in ("DTensor", "FlatParameter") \
            or type(getattr(p, "data", None)).__name__ == "DTensor":
        raise NotImplementedError(
            f"{who} got a sharded or flattened parameter (FSDP). Eq. (2) perturbs the first n_qubits entries "
            "of each whole tensor, which a shard does not know; use DDP (whole parameters on every rank) or a "
            "single device.")


class _Offsets:
    """What comes before a param group in optimizer order: elements (``scope="global"``) and
    tensors (``scope="whole_tensors"``), for :func:`perturbed_counts` across groups."""

    def __init__(self):
        self.elements = self.tensors = 0

    def counts(self, group) -> list[int]:
        numels = [p.numel() for p in group["params"]]
        offset = self.tensors if group["scope"] == "whole_tensors" else self.elements
        counts = perturbed_counts(numels, group["n_qubits"], group["scope"], offset)
        self.elements += sum(numels)
        self.tensors += len(numels)
        return counts


class _HeadCache:
    """Views of each contiguous parameter's perturbed slice and one buffer for Q, kept between
    eager steps. An entry is reused only while its parameter is the same live object with the
    same data pointer (storage and offset), strides, dtype and k; so re-assigning ``p.data``,
    changing n_qubits or freeing a parameter (whose id() a new one may take) cannot give a
    stale view.
    Not used under ``torch.compile`` (the compiled graph makes its own views)."""

    BUFFER_LIMIT = 2**20  # perturbed elements up to which the Q buffer is kept between steps

    def __init__(self):
        self.heads: dict[int, tuple] = {}
        self.buffer = None

    def head(self, p: torch.Tensor, k: int) -> torch.Tensor:
        # data_ptr covers storage and offset (and device); strides and dtype cover re-views of the
        # same memory; k ≤ numel always, so a shrunken shape cannot make the view overrun.
        sig = (p.data_ptr(), p.stride(), p.dtype, k)
        hit = self.heads.get(id(p))
        if hit is None or hit[1] != sig or hit[0]() is not p:
            hit = (weakref.ref(p), sig, read_head(p, k))
            self.heads[id(p)] = hit
        return hit[2]

    def q_buffer(self, sizes: list[int], like: torch.Tensor):
        hit = self.buffer
        if hit is not None and hit[0] == sizes and hit[1].dtype == like.dtype and hit[1].device == like.device:
            return hit[1], hit[2]
        buf = like.new_empty(sum(sizes))
        views = list(buf.split(sizes))
        if buf.numel() <= self.BUFFER_LIMIT:
            self.buffer = (list(sizes), buf, views)
        return buf, views


def _is_dense(t: torch.Tensor) -> bool:
    """Whether ``t`` fills its memory without gaps or overlaps in some order of its dimensions
    (contiguous, channels_last, transposed: yes; a strided slice such as ``x[..., 0]``: no)."""
    if t.is_contiguous():
        return True
    expected = 1
    for stride, size in sorted((st, sz) for sz, st in zip(t.shape, t.stride()) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


# --------------------------------------------------------------------------------------
# Functional core
# --------------------------------------------------------------------------------------
def _adamw(params, grads, exp_avgs, exp_avg_sqs, state_steps, *, foreach, fused, lr, beta1, beta2, eps,
           weight_decay) -> None:
    """The Adam part of Eq. (1): torch's own functional AdamW (``torch.optim.adam.adam``) with
    the same ``foreach``/``fused`` flags, so each path equals the matching torch AdamW."""
    # Under torch.compile the for-loop and foreach kernels run in their "capturable" form (all
    # arithmetic on tensors, the same formulas), as dynamo itself arranges for torch's Adam on
    # GPUs; their non-capturable form mixes Python scalars and step tensors that CPU tracing refuses.
    capturable = bool(not fused and torch.compiler.is_compiling())
    plain = all(p.is_contiguous() and g.is_contiguous() for p, g in zip(params, grads))  # the usual case
    if fused and not plain and not all(_is_dense(p) for p in params):
        # torch 2.13's fused CPU kernel gives wrong numbers for a parameter with gaps in its
        # memory (a strided slice): those go through the for-loop kernel, the rest stay fused.
        tensors = [params, grads, exp_avgs, exp_avg_sqs, state_steps]
        for dense in (True, False):
            part = [[t[i] for i in range(len(params)) if _is_dense(params[i]) == dense] for t in tensors]
            if part[0]:
                _adamw(*part, foreach=False, fused=dense, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                       weight_decay=weight_decay)
        return
    if fused and not plain:
        # torch 2.13's fused CPU kernel reads a gradient whose strides differ from its
        # parameter's as if they were the same; hand it a copy laid out like the parameter.
        grads = [g if g.stride() == p.stride() else torch.empty_like(p).copy_(g) for p, g in zip(params, grads)]
    elif isinstance(lr, torch.Tensor) and not capturable:
        lr = lr.item()  # torch's for-loop and foreach kernels take a tensor lr only when capturable
    _torch_adam(params, grads, exp_avgs, exp_avg_sqs, [], state_steps, foreach=foreach, fused=fused,
                capturable=capturable, decoupled_weight_decay=True, amsgrad=False, beta1=beta1, beta2=beta2,
                lr=lr, weight_decay=weight_decay, eps=eps, maximize=False)


def superpositional_adam(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    state_steps: list[torch.Tensor],
    counts: list[int],
    *,
    lr: float | torch.Tensor,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    quantum_weight: float,
    foreach: bool | None = None,
    fused: bool | None = None,
    kind: str = "sin",
    normalize_q: bool = False,
    q_times_lr: bool = True,
    head_cache: _HeadCache | None = None,
) -> None:
    """Functional Eq. (1)–(2): update ``params`` in place.

    ``counts[i]`` is how many leading elements (row-major index order) of ``params[i]`` get
    the perturbation (see :func:`perturbed_counts`). Steps, in order:

    1. Q = λ·sin(π·θ_t)·g_t on those elements (Eq. 2), from θ_t before anything moves it;
    2. torch's functional AdamW with the same ``foreach``/``fused`` flags (Eq. 1's Adam part,
       decoupled weight decay included);
    3. with ``normalize_q`` (reading b), Q ← Q/(√v̂_t + ε) from the moments step 2 wrote;
    4. θ_{t+1} = (result of 2) − lr·Q on the perturbed elements, or − Q without
       ``q_times_lr`` (reading c).

    With ``foreach`` and ``fused`` both False, Q is computed tensor by tensor (the readable
    reference); otherwise it is one batched operation over all perturbed slices.
    ``head_cache`` (kept by the optimizer between eager steps) holds the slice views and Q's buffer.
    """
    if not quantum_weight:
        counts = [0] * len(params)
    # a number, or a 0-d tensor when lr is a tensor
    scale = -lr * quantum_weight if q_times_lr else -float(quantum_weight)
    if not foreach and not fused:
        qs = [(p, k, perturbation(kind, read_head(p, k), read_head(g, k)).mul_(scale), v, s)
              for p, g, k, v, s in zip(params, grads, counts, exp_avg_sqs, state_steps) if k]
        _adamw(params, grads, exp_avgs, exp_avg_sqs, state_steps, foreach=False, fused=False, lr=lr,
               beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)
        for p, k, q, v, s in qs:
            if normalize_q:
                q.div_(adam_denominator(read_head(v, k), s, beta2, eps))
            add_to_head(p, k, q)
        return

    sizes = [k for k in counts if k]
    if sizes:
        # Batched Eq. (2): gather every perturbed slice of θ_t and g_t, compute Q for all of
        # them in one buffer, and add it after the Adam kernel (one foreach call for the
        # contiguous parameters' slice views, index_put_ for any other layout).
        if torch.compiler.is_compiling():
            head_cache = None
        perturbed = [(p, k, p.is_contiguous()) for p, k in zip(params, counts) if k]
        heads = [head_cache.head(p, k) if head_cache is not None and c else read_head(p, k) for p, k, c in perturbed]
        theta = torch.cat(heads)
        grad = torch.cat([read_head(g, k) for g, k in zip(grads, counts) if k])
        if head_cache is not None:
            q, q_views = head_cache.q_buffer(sizes, theta)
            torch.mul(perturbation(kind, theta, grad), scale, out=q)
        else:
            q = perturbation(kind, theta, grad).mul_(scale)
            q_views = list(q.split(sizes))
    _adamw(params, grads, exp_avgs, exp_avg_sqs, state_steps, foreach=foreach, fused=fused, lr=lr, beta1=beta1,
           beta2=beta2, eps=eps, weight_decay=weight_decay)
    if sizes:
        if normalize_q:
            moments = [(v, s, k) for v, s, k in zip(exp_avg_sqs, state_steps, counts) if k]
            for qv, (v, s, k) in zip(q_views, moments):
                qv.div_(adam_denominator(read_head(v, k), s, beta2, eps))
        if all(c for _, _, c in perturbed):
            torch._foreach_add_(heads, q_views)
            return
        pairs = [(h, qv) for h, qv, (_, _, c) in zip(heads, q_views, perturbed) if c]
        if pairs:
            torch._foreach_add_([h for h, _ in pairs], [qv for _, qv in pairs])
        for (p, k, c), qv in zip(perturbed, q_views):
            if not c:
                add_to_head(p, k, qv)


def adam_denominator(exp_avg_sq: torch.Tensor, step: torch.Tensor, beta2: float, eps: float) -> torch.Tensor:
    """√v̂_t + ε as torch's Adam forms it, √v_t/√(1 − β₂ᵗ) + ε, for reading (b)'s Q/(√v̂_t + ε)."""
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
    return (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)


def _reference_adamw(param, grad, exp_avg, exp_avg_sq, step_t, *, lr, beta1, beta2, eps, weight_decay,
                     moment_grad=None):
    """One AdamW step on one tensor, op for op as torch's single-tensor Adam, except that
    ``moment_grad`` (default: ``grad``) is what enters the first moment. Used by
    :class:`QuantumMomentAdam`, whose first moment torch's kernels cannot express."""
    if isinstance(lr, torch.Tensor):
        lr = lr.item()
    step_t += 1
    if weight_decay != 0:
        param.mul_(1 - lr * weight_decay)
    exp_avg.lerp_(grad if moment_grad is None else moment_grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    step = step_t if torch.compiler.is_compiling() else step_t.item()  # as torch's _get_value
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)


# --------------------------------------------------------------------------------------
# Optimizer classes
# --------------------------------------------------------------------------------------
@torch.compiler.disable
def _checked(validate, group) -> None:
    """Run a group's validation eagerly, also inside a compiled step (dynamo guards on the
    values, so a value changed later recompiles and is checked again here)."""
    validate(group)


def _scalar_dtype(fused: bool) -> torch.dtype:
    """The step counter's dtype, as torch's Adam: float32, or float64 under a float64 default
    dtype (the fused kernels take float32 only)."""
    return torch.float64 if not fused and torch.get_default_dtype() == torch.float64 else torch.float32


def _new_step(value: float, p: torch.Tensor, fused: bool) -> torch.Tensor:
    """A step counter where torch's Adam keeps it: on the parameter's device for the fused
    kernel, on the CPU otherwise (whatever the default device, so no sync per step)."""
    if fused:
        return torch.tensor(value, dtype=_scalar_dtype(True), device=p.device)
    return torch.tensor(value, dtype=_scalar_dtype(False), device="cpu")


class _AdamFamily(Optimizer):
    """Shared plumbing, shaped like torch's Adam so that torch.compile traces it the same way:
    ``_init_group`` (lazy state; dynamo runs it eagerly), validation of every group on every
    step, ``__setstate__`` that fills what older or foreign (AdamW) state dicts lack."""

    _validate = staticmethod(_validate_adam)
    _fused_capable = False

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for p in group["params"]:
            if torch.is_complex(p):
                raise ValueError("complex parameters are not supported: sin(π·θ) needs real θ")
        self._resolve_path(group)
        self._validate(group)

    def _resolve_path(self, group) -> None:
        """Nothing to choose for the for-loop-only optimizers."""

    def __setstate__(self, state):
        """Load pickles and state dicts from older versions of this class or from torch's
        AdamW: missing group keys take this optimizer's defaults; a plain-number ``step``
        becomes a tensor where torch's Adam keeps it; AdamW-only flags that are off are
        accepted, ones that are on are refused (see :func:`_validate_adam`)."""
        super().__setstate__(state)
        defaults = getattr(self, "defaults", {})
        for group in self.param_groups:
            for key, value in self._DEFAULTS.items():
                group.setdefault(key, defaults.get(key, value))
            if isinstance(group.get("betas"), list):
                group["betas"] = tuple(group["betas"])
            self._resolve_path(group)
            self._validate(group)
            fused = bool(group.get("fused"))
            for p in group["params"]:
                p_state = self.state.get(p, {})
                if len(p_state) != 0 and not torch.is_tensor(p_state.get("step")):
                    p_state["step"] = _new_step(float(p_state.get("step", 0)), p, fused)
        self.__dict__.setdefault("_head_cache", _HeadCache())

    def _init_group(self, group, params, grads, exp_avgs, exp_avg_sqs, state_steps):
        """Collect the tensors that have gradients (lazy state, as torch's Adam)."""
        fused = bool(group.get("fused"))
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients; "
                                   "use dense gradients (e.g. nn.Embedding(sparse=False))")
            state = self.state[p]
            if len(state) == 0:
                _refuse_sharded(p, type(self).__name__)
                state["step"] = _new_step(0.0, p, fused)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            state_steps.append(state["step"])
        return False  # has_complex, as torch's _init_group returns

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

    **Which elements.** The paper does not define "the first n_qubits": ``scope="tensor"``
    (default) takes the first ``n_qubits`` elements of each tensor in row-major order of its
    index (``p[0, 0]``, ``p[0, 1]``, …), whatever its memory layout (channels_last and
    transposed parameters pick the same entries as their contiguous copies);
    ``scope="global"`` the first ``n_qubits`` of all parameters concatenated in optimizer
    order; ``scope="whole_tensors"`` every entry of the first ``n_qubits`` tensors (reading a).
    ``n_qubits=None`` perturbs all (reading d). See the module docstring.

    **How Q enters.** ``normalize_q=True`` divides Q by Adam's √v̂_t + ε (reading b);
    ``q_times_lr=False`` subtracts λ·Q without the learning rate (reading c). Defaults: the
    literal Eq. (1), − lr·λ·Q.

    **Paths.** ``foreach`` / ``fused`` choose torch's AdamW kernel for steps 2–4's Adam part,
    exactly as in :class:`torch.optim.AdamW`; Q is added after it. ``None`` (default) picks
    fused where torch has the kernel (floating tensors on CPU or CUDA) and the for-loop
    elsewhere. ``lr`` may be a 1-element tensor (the for-loop and foreach paths read it with
    ``.item()``, which syncs once per step on a GPU; the fused path uses it as a tensor).

    **When it equals AdamW.** With ``quantum_weight=0`` or ``n_qubits=0``, each path runs
    exactly torch's functional AdamW with the same flags, so it equals
    ``torch.optim.AdamW(..., foreach=f, fused=u)`` with the *same* ``f``/``u`` bit for bit.
    Against a different path (say ours fused, torch's for-loop) the two differ by float
    rounding only (within about 1e-6 relative in float32 after tens of steps).

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq``, as AdamW's, so AdamW
    checkpoints load (missing group keys take this optimizer's defaults) and ours load into
    AdamW. ``perturbation`` swaps Eq. (2)'s sin(πθ)·g for an ablation control.
    """

    _validate = staticmethod(_validate_superpositional)
    _DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, quantum_weight=0.5, n_qubits=4,
                     scope="tensor", foreach=None, fused=None, perturbation="sin", normalize_q=False,
                     q_times_lr=True)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 quantum_weight=0.5, n_qubits=4, scope="tensor", *, foreach=None, fused=None,
                 perturbation="sin", normalize_q=False, q_times_lr=True):
        _check_lr(lr)  # before torch's Optimizer sees it
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps,
                        weight_decay=weight_decay, quantum_weight=quantum_weight, n_qubits=n_qubits,
                        scope=scope, foreach=foreach, fused=fused, perturbation=perturbation,
                        normalize_q=normalize_q, q_times_lr=q_times_lr)
        self._head_cache = _HeadCache()
        super().__init__(params, defaults)

    def _resolve_path(self, group) -> None:
        """Pick fused where torch supports it, unless the user chose (as torch's defaults do)."""
        if group.get("fused") is None and group.get("foreach") is None:
            ok = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in group["params"])
            group["fused"], group["foreach"] = ok, False

    @torch.no_grad()
    def step(self, closure=None):
        """One step of Eq. (1) for every param group; returns the closure's loss if given."""
        loss = self._closure_loss(closure)
        offsets = _Offsets()
        for group in self.param_groups:
            _checked(self._validate, group)
            params, grads, ms, vs, steps = [], [], [], [], []
            self._init_group(group, params, grads, ms, vs, steps)
            counts_all = offsets.counts(group)
            if not params:
                continue
            counts = [k for k, p in zip(counts_all, group["params"]) if p.grad is not None]
            beta1, beta2 = group["betas"]
            superpositional_adam(params, grads, ms, vs, steps, counts, lr=group["lr"], beta1=beta1,
                                 beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                                 quantum_weight=group["quantum_weight"], foreach=group["foreach"],
                                 fused=group["fused"], kind=group["perturbation"], normalize_q=group["normalize_q"],
                                 q_times_lr=group["q_times_lr"], head_cache=self._head_cache)
        return loss


    @torch.no_grad()
    def perturbation_norm(self) -> float:
        """‖λ·Q(θ_t, g_t)‖ over every perturbed entry (Eq. 2, or the chosen control, see
        :func:`perturbation_size`), from the current parameters and gradients: call it before
        :meth:`step`. Divided by :func:`adam_direction_norm` after the step, it is the size of
        the perturbation relative to Adam's step, both per unit learning rate."""
        total, offsets = 0.0, _Offsets()
        for group in self.param_groups:
            if group["normalize_q"] or not group["q_times_lr"]:
                raise NotImplementedError("perturbation_norm covers the literal reading (normalize_q=False, "
                                          "q_times_lr=True); see sgdq.experiments.llm_finetuning.magnitudes")
            counts = offsets.counts(group)
            for p, k in zip(group["params"], counts):
                if k and p.grad is not None:
                    q = perturbation_size(group["perturbation"], read_head(p, k), read_head(p.grad, k))
                    total += float(q.double().pow(2).sum()) * group["quantum_weight"] ** 2
        return math.sqrt(total)


class QuantumMomentAdam(_AdamFamily):
    """Baseline 2 of Sec. IV-B, "Adam with quantum-inspired moment updates" (our definition).

    The paper names this baseline but never defines it. Our interpretation: the same sine
    modulation as Eq. (2), but applied inside the *first moment* on every element, not added
    to the update on a few of them:

        m_t = β₁·m_{t−1} + (1 − β₁)·g_t·(1 + μ·sin(π·θ_t))
        v_t = β₂·v_{t−1} + (1 − β₂)·g_t²                      (unchanged)

    with μ = ``moment_weight``, and decoupled weight decay as in AdamW. At μ = 0 this is
    AdamW's for-loop path op for op (equal to ``AdamW(foreach=False)`` to float rounding).
    The factor 1 + μ·sin(πθ) lies in [1 − μ, 1 + μ], so for μ < 1 it never flips the
    gradient's sign; it only re-weights the momentum, which is what separates it from the
    additive Eq. (1).
    """

    _validate = staticmethod(_validate_moment)
    _DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, moment_weight=0.5)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 moment_weight=0.5):
        _check_lr(lr)
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps,
                        weight_decay=weight_decay, moment_weight=moment_weight)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """One step for every param group; returns the closure's loss if given."""
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            _checked(self._validate, group)
            params, grads, ms, vs, steps = [], [], [], [], []
            self._init_group(group, params, grads, ms, vs, steps)
            beta1, beta2 = group["betas"]
            mw = group["moment_weight"]
            for p, g, m, v, s in zip(params, grads, ms, vs, steps):
                mg = g * (1 + mw * torch.sin(math.pi * p)) if mw else None
                _reference_adamw(p, g, m, v, s, lr=group["lr"], beta1=beta1, beta2=beta2,
                                 eps=group["eps"], weight_decay=group["weight_decay"], moment_grad=mg)
        return loss
