"""The replacement model of an attribution graph: the model with every MLP replaced by its
transcoder plus an error term, attention patterns and normalisation scales frozen at their values on
one input, so that everything between the residual writes (token embeddings, feature decoder
writes, error terms, constant biases) and every feature's pre-activation and every logit is linear.

    tc = transcoders_of(session, transcoders)     # per-layer transcoders or a cross-layer transcoder
    obs = observe(session, enc, tc)               # one forward of the model itself: values, norms, q/k
    out = frozen_forward(session, obs, tc, batch=8)   # the frozen model: sources, targets, logits

Freezing is found from what the model does, never from its class or a per-family table:
- norms: every leaf module (not a linear map or an embedding) whose output keeps its input's shape
  and does not change when its input is scaled by 3 is a normalisation; its behaviour on this input
  is fitted as `(centre(x) if it centres else x) * scale + bias` per row (the scale frozen; whether
  it centres is observed with a probe of non-zero mean) and checked (llm_widgets.compute.direct_logit);
  in the frozen forward its output is that affine map of its input,
- attention: transformers' attention functions (eager, sdpa, ...) are called with the queries and
  keys this input gave (detached), so the pattern (with its mask, soft-capping and sinks) is this
  input's and the output is linear in the values,
- MLPs: the MLP output is replaced by a `Source` (llm_widgets.circuits.frozen_ops): a leaf holding
  the model's own MLP output on this input (or, for the constant terms, the transcoder's decoder bias).
Anything else that is nonlinear in the residual stream (gated attention outputs, a block without
attention) is not frozen: attribution.py checks that the effects add up and refuses where they do not.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Optional

import torch

from ..adapter.facts import first_output, get_module
from ..adapter.probe import is_linear
from ..compute.direct_logit import _frozen_norm, _tolerance
from ..compute.outputs import keeps_logits
from ..dictionaries import Dictionary
from ..dictionaries.activations import reads_of
from ..dictionaries.coding import Stash
from ..dictionaries.crosslayer import CrossLayerTranscoder
from ..errors import DoesNotApplyError, LLMWidgetsError
from ..execution import Program, Read, Write, run
from ..guards import model_lock
from ..layers import EMBEDDINGS
from .frozen_ops import Source

LINEAR_ACTIVATIONS = ("relu", "jumprelu", "topk", "batchtopk")  # pre-activation = x @ W_enc + b_enc
SCALE_INVARIANT = 1e-2  # a module whose output moves less than this (relative) when its input is tripled


@dataclass
class Transcoders:
    """The transcoders replacing every MLP, in one form: `encoders[i]` (a Dictionary reading block
    i's MLP input, "mlp_in", or its "resid_mid"), `decoders[i]` [F_i, n_out, D] (layer i's features
    into the MLP outputs of blocks i .. i + n_out - 1: n_out = 1 for per-layer transcoders), `b_dec`
    [L, D] (the decoder bias of each block's MLP output), `skip[i]` (a skip connection's W_skip
    [D, d_in], or None)."""

    encoders: list
    decoders: list
    b_dec: torch.Tensor
    skip: list
    name: str = ""
    cross_layer: bool = False

    @property
    def n_layers(self) -> int:
        return len(self.encoders)

    def to(self, device) -> "Transcoders":
        """A copy with every tensor on `device`, in float32 (the attribution's arithmetic)."""
        def moved(w):
            return replace(w, **{f.name: getattr(w, f.name).to(device).float() for f in fields(w)
                                 if torch.is_tensor(getattr(w, f.name))})
        return replace(self, encoders=[replace(d, weights=moved(d.weights)) for d in self.encoders],
                       decoders=[w.to(device).float() for w in self.decoders], b_dec=self.b_dec.to(device).float(),
                       skip=[None if w is None else w.to(device).float() for w in self.skip])


def transcoders_of(session, transcoders) -> Transcoders:
    """`transcoders` (a list of per-layer transcoders, one per block, or a CrossLayerTranscoder)
    checked against the session's model; refuses what the replacement model cannot be linear in."""
    L = session.adapter.n_layers
    if isinstance(transcoders, CrossLayerTranscoder):
        if transcoders.n_layers != L:
            raise LLMWidgetsError(f"the cross-layer transcoder has {transcoders.n_layers} layers, the model {L}")
        for i, d in enumerate(transcoders.layers):
            _check_layer(session, d, i)
        decs = [w.float() for w in transcoders.decoders]
        for i, w in enumerate(decs):
            if w.dim() != 3 or w.shape[1] != L - i:
                raise LLMWidgetsError(f"the cross-layer transcoder's decoder {i} must be [F, {L - i}, d], got "
                                      f"{list(w.shape)}")
        return Transcoders(list(transcoders.layers), decs, transcoders.b_dec.float(), [None] * L,
                           transcoders.name or "cross-layer transcoder", True)
    if isinstance(transcoders, Dictionary) or not isinstance(transcoders, (list, tuple)):
        raise LLMWidgetsError("transcoders must be a list of per-layer transcoders (one Dictionary per block, "
                              "each reading the block's MLP input and writing its MLP output) or a "
                              f"CrossLayerTranscoder, got {type(transcoders).__name__}")
    by: dict = {}
    for d in transcoders:
        if not isinstance(d, Dictionary) or not d.transcoder:
            raise LLMWidgetsError(f"every entry of transcoders must be a transcoder (a Dictionary with an out_site), "
                                  f"got {d!r}")
        layer = d.out_site.layer
        if d.out_site.site != "mlp" or not isinstance(layer, int):
            raise LLMWidgetsError(f"{d!r} writes {d.out_site}: an attribution graph replaces MLP outputs ('mlp' of "
                                  f"a block)")
        layer = session.adapter.check_layer(layer)
        if layer in by:
            raise LLMWidgetsError(f"two transcoders replace the MLP of block {layer}: {by[layer]!r} and {d!r}")
        by[layer] = d
    missing = [l for l in range(L) if l not in by]
    if missing:
        raise LLMWidgetsError(
            f"no transcoder for the MLP of block(s) {missing}: an attribution graph replaces every MLP by a "
            f"transcoder (the MLPs left as they are would not be linear in the features). Pass one transcoder per "
            f"block ({L} in all), or a cross-layer transcoder.")
    encs = [by[l] for l in range(L)]
    for i, d in enumerate(encs):
        _check_layer(session, d, i)
    return Transcoders(encs, [d.weights.W_dec.float()[:, None, :] for d in encs],
                       torch.stack([d.weights.b_dec.float() for d in encs]),
                       [None if d.weights.W_skip is None else d.weights.W_skip.float() for d in encs],
                       ", ".join(sorted({d.name for d in encs if d.name})) or "transcoders")


def _check_layer(session, d: Dictionary, layer: int) -> None:
    w = d.weights
    d.check(session)
    if d.site.site not in ("mlp_in", "resid_mid") or d.site.layer != layer:
        raise LLMWidgetsError(f"{d!r} reads {d.site}: the transcoder of block {layer}'s MLP must read that block's "
                              f"MLP input ('mlp_in' or 'resid_mid' of block {layer})")
    if w.activation not in LINEAR_ACTIVATIONS:
        raise LLMWidgetsError(f"{d!r} has a {w.activation} activation: attribution graphs need features whose "
                              f"pre-activation is linear in the input ({LINEAR_ACTIVATIONS})")
    if w.normalize not in ("none", "expected_average_only_in"):
        raise LLMWidgetsError(f"{d!r} normalizes its input at run time ({w.normalize}), which is not linear: not "
                              f"supported in attribution graphs")


# -- the model itself, observed ---------------------------------------------------------------------
@dataclass
class FrozenNorm:
    """One normalisation module, frozen per call: (input shape, scale [N, D], centred, bias [D])."""

    module: torch.nn.Module
    path: str
    calls: list = field(default_factory=list)


@dataclass
class Observed:
    """The model's own forward on one input (batch of one): `emb` [T, D] (the embedding output),
    `mlp[l]` [T, D] (the MLP outputs), `x[l]` [T, d_in] (each transcoder's input), `head` [V] (the
    head's output at the last position times the logit scale: the logits before soft-capping),
    `logits` [V] (the model's output logits at the last position), the frozen `norms`, and `qk`
    (the queries and keys of every attention-function call, in order)."""

    inputs: dict
    emb: torch.Tensor
    mlp: list
    x: list
    head: torch.Tensor
    logits: torch.Tensor
    norms: list
    qk: list


def _x_reads(tc: Transcoders, l: int) -> list:
    return [Read(r.site, r.layer, name=("x", l, j)) for j, r in enumerate(reads_of(tc.encoders[l].site))]


def observe(session, enc: dict, tc: Transcoders) -> Observed:
    """One forward of the model on `enc` (batch of one): the values every node needs, the
    normalisations found and frozen, the attention queries and keys recorded."""
    model, ad = session.model, session.adapter
    L = ad.n_layers
    head_mod = get_module(model, ad.head)
    names = {m: n for n, m in model.named_modules()}
    leaves = [m for m in names if not any(True for _ in m.children()) and not is_linear(m)
              and not isinstance(m, torch.nn.Embedding) and m is not head_mod]
    seen: dict = {}
    heads: list = []

    def keep(mod, args, out):
        x, y = (args[0] if args else None), first_output(out)
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.is_floating_point() \
                and x.shape == y.shape and x.dim() >= 2 and x.shape[-1] >= 3:
            seen.setdefault(mod, []).append((x.detach(), y.detach()))

    reads = [Read("resid", EMBEDDINGS, name="emb")] + [Read("mlp", l, name=("mlp", l)) for l in range(L)]
    reads += [r for l in range(L) for r in _x_reads(tc, l)]
    with model_lock(model):
        handles = [m.register_forward_hook(keep) for m in leaves]
        handles.append(head_mod.register_forward_hook(lambda m, a, o: heads.append(first_output(o)[:, -1].detach())))
        try:
            with attention_qk(record=True) as qk:
                res = run(session, Program(enc, reads=reads, logits=[-1], extra=_last_only(model),
                                           label="attribution graph: the model"))
        finally:
            for h in handles:
                h.remove()
    if len(heads) != 1:
        raise LLMWidgetsError(f"the language-model head ({ad.head}) ran {len(heads)} times in one forward")
    attention = len(ad.attention_blocks)
    if len(qk) < attention:
        raise DoesNotApplyError(
            f"{len(qk)} attention-function calls were seen in one forward, and the model has {attention} blocks with "
            f"attention: some attention does not go through transformers' attention functions, so its pattern "
            f"cannot be frozen for an attribution graph")
    dev = res.reads["emb"].device  # everything on the input device (a model dispatched over several)
    x = [sum(res.reads[r.key].to(dev) for r in _x_reads(tc, l))[0].float() for l in range(L)]
    return Observed(inputs=enc, emb=res.reads["emb"][0], mlp=[res.reads[("mlp", l)][0].to(dev) for l in range(L)],
                    x=x, head=heads[0][0].to(dev).float() * float(ad.logit_scale),
                    logits=res.logits[0, -1].to(dev).float(),
                    norms=_norms(seen, names, _tolerance(session.dtype)), qk=qk)


def _norms(seen: dict, names: dict, tol: float) -> list:
    """The modules among `seen` (module -> [(input, output)] per call) that behave as normalisations
    (scale-invariant), each call fitted as an affine map with its scale frozen."""
    out = []
    for mod, calls in seen.items():
        x, y = calls[0]
        with torch.no_grad():
            y3, flipped = first_output(mod(3 * x)), first_output(mod(x.flip(-1)))
        if not float((y3 - y).float().norm()) <= SCALE_INVARIANT * float(y.float().norm()) \
                or torch.allclose(flipped, y):  # not scale-invariant, or not reading its input at all
            continue
        path = names[mod]
        frozen = FrozenNorm(mod, path)
        for x, _ in calls:
            try:
                scale, centred, bias = _frozen_norm(mod, x.reshape(-1, x.shape[-1]), tol, path)
            except DoesNotApplyError as e:
                raise DoesNotApplyError(
                    f"{path} is scale-invariant like a normalisation, but does not behave as a LayerNorm or RMSNorm "
                    f"on this input, so its scale cannot be frozen for an attribution graph ({e})") from None
            frozen.calls.append((tuple(x.shape), scale, centred, bias))
        out.append(frozen)
    return out


# -- attention with this input's pattern ----------------------------------------------------------
_local = threading.local()
_lock = threading.Lock()
_installed = [False]


@dataclass
class _QK:
    record: bool
    calls: list
    i: int = 0


def _install() -> None:
    """Wrap `AttentionInterface.get_interface` once, so the attention functions it hands out take
    the recorded queries and keys on a thread that is replaying them (`attention_qk`)."""
    from transformers.modeling_utils import AttentionInterface

    with _lock:
        if _installed[0]:
            return
        original = AttentionInterface.get_interface

        def get_interface(self, attn_implementation, default):
            fn = original(self, attn_implementation, default)
            return _frozen(fn) if callable(fn) else fn

        for flag in ("_lw_observed",):  # the other wrappers' "installed" marks, kept visible
            if getattr(original, flag, False):
                setattr(get_interface, flag, True)
        AttentionInterface.get_interface = get_interface
        _installed[0] = True


def _frozen(fn):
    def wrapped(module, query, key, *args, **kwargs):
        st = getattr(_local, "qk", None)
        if st is not None and isinstance(query, torch.Tensor):
            if st.record:
                st.calls.append((query.detach(), key.detach()))
            else:
                if st.i >= len(st.calls):
                    raise LLMWidgetsError("the frozen forward called attention more often than the model's own forward")
                q, k = st.calls[st.i]
                st.i += 1
                if q.shape[1:] != query.shape[1:] or k.shape[1:] != key.shape[1:]:
                    raise LLMWidgetsError(f"attention call {st.i - 1} of the frozen forward has queries "
                                          f"{list(query.shape)}, the model's own forward had {list(q.shape)}")
                query, key = q.to(query.dtype).expand(query.shape), k.to(key.dtype).expand(key.shape)
        return fn(module, query, key, *args, **kwargs)

    return wrapped


@contextmanager
def attention_qk(record: bool, calls: Optional[list] = None):
    """While inside, this thread's attention-function calls record their queries and keys (`record`:
    the list is yielded) or take the recorded ones, in call order (the patterns frozen)."""
    _install()
    outer = getattr(_local, "qk", None)
    st = _QK(record, [] if calls is None else calls)
    _local.qk = st
    try:
        yield st.calls
    finally:
        _local.qk = outer
    if not record and st.i != len(st.calls):
        raise LLMWidgetsError(f"the frozen forward called attention {st.i} times, the model's own forward "
                              f"{len(st.calls)}")


# -- the frozen forward -------------------------------------------------------------------------------
@dataclass
class Frozen:
    """What a frozen forward gives (every row of the batch is the same input): `emb` [B, T, D] and
    `mlp[l]` [B, T, D] (the sources, leaves: gradients are taken at them; with a skip connection the
    MLP output is `mlp[l]` plus the skip path), `x[l]` (the tensors whose sum is
    block l's transcoder input, [B, T, d_in] each), `head` [B, V] (the logits before soft-capping
    at the last position)."""

    emb: torch.Tensor
    mlp: list
    x: list
    head: torch.Tensor


def frozen_forward(session, obs: Observed, tc: Transcoders, *, batch: int = 1, zero: bool = False,
                   grad: bool = True) -> Frozen:
    """The replacement model on the observed input, repeated `batch` times: embeddings and MLP
    outputs are sources (the model's own values; `zero`: every source zero, so that what reaches the
    targets are the constant terms alone: norm and attention biases and the transcoders' b_dec),
    norms and attention frozen at the observed input."""
    model, ad = session.model, session.adapter
    L = ad.n_layers
    enc = {k: v.repeat(batch, *[1] * (v.dim() - 1)) if isinstance(v, torch.Tensor) else v
           for k, v in obs.inputs.items()}
    def leaf(v):
        return v[None].expand(batch, *v.shape).clone().requires_grad_(grad)

    emb = leaf(torch.zeros_like(obs.emb) if zero else obs.emb)
    mlp = []
    writes = [Write("resid", EMBEDDINGS, Source(emb))]
    for l in range(L):
        W = tc.skip[l]
        keys: tuple = ()
        if W is not None:
            keys = tuple(f"skip:{l}:{j}" for j in range(len(reads_of(tc.encoders[l].site))))
            writes += [Write(r.site, r.layer, Stash(k)) for r, k in zip(reads_of(tc.encoders[l].site), keys)]
        if zero:
            value = tc.b_dec[l].expand_as(obs.mlp[l])
        else:
            value = obs.mlp[l].float() - (obs.x[l] @ W.T if W is not None else 0)
        mlp.append(leaf(value.to(obs.mlp[l].dtype)))
        writes.append(Write("mlp", l, Source(mlp[-1], W, keys)))
    reads = [r for l in range(L) for r in _x_reads(tc, l)]
    heads: list = []
    head_mod = get_module(model, ad.head)
    with model_lock(model):
        handles = [n.module.register_forward_hook(_norm_hook(n)) for n in obs.norms]
        handles.append(head_mod.register_forward_hook(lambda m, a, o: heads.append(first_output(o)[:, -1])))
        try:
            with attention_qk(record=False, calls=obs.qk):
                res = run(session, Program(enc, reads=reads, writes=writes, grad=grad, extra=_last_only(model),
                                           label="attribution graph: frozen replacement model"))
        finally:
            for h in handles:
                h.remove()
    return Frozen(emb=emb, mlp=mlp,
                  x=[[res.reads[r.key] for r in _x_reads(tc, l)] for l in range(L)],
                  head=heads[0].float() * float(ad.logit_scale))  # x and head where the model computed them


def _last_only(model) -> dict:
    """The model computes logits at the last position only, where its forward can (the head's
    [B, T, V] output would dominate memory on long inputs)."""
    return {"logits_to_keep": 1} if keeps_logits(model) else {}


def _norm_hook(norm: FrozenNorm):
    count = [0]

    def hook(mod, args, out):
        i = count[0]
        count[0] += 1
        if i >= len(norm.calls):
            raise LLMWidgetsError(f"{norm.path} ran more often in the frozen forward than in the model's own")
        shape, scale, centred, bias = norm.calls[i]
        x = args[0]
        s = scale.reshape(shape).to(x.device)
        if x.shape[0] != shape[0]:
            s = s.repeat(x.shape[0] // shape[0], *[1] * (len(shape) - 1))
        xf = x.float()
        y = (xf - xf.mean(-1, keepdim=True) if centred else xf) * s + bias.to(x.device)
        y = y.to(first_output(out).dtype)
        return (y,) + tuple(out[1:]) if isinstance(out, tuple) else y

    return hook
