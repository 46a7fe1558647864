"""Direct logit attribution (Elhage et al. 2021): split an output logit into the direct shares of the
parts whose sum is the final residual stream.

In a pre-norm residual model the residual stream after the last block is the sum of the embeddings
(token and, where the model adds them there, position), every attention head's output (the head's
slice of the output projection's input times that head's slice of the projection), each attention
output projection's bias, and each MLP block's output; in a hybrid or state-space stack a block
without attention contributes its token mixer's output (Mamba, short convolution, RG-LRU: the
adapter's "mixer" site) instead of heads, and a block with attention its heads in its own layout.
The readout is the final norm, then the
unembedding. With the norm's scale frozen at its value on the real input (LayerNorm: centre each
part and divide by the input's frozen standard deviation, times the gain; RMSNorm: divide by the
frozen RMS, times the gain; the norm's own bias and the unembedding's bias form one more part,
"readout bias"), the readout is affine, and each part gets its share of the logit: the shares add
up to the model's logit.

Everything is found through the session's adapter (the blocks, the attention output projection, the
MLP output, the final norm and the unembedding) and checked on the real input, where the numbers are
computed: each block's output must be its input plus its attention (or mixer) and MLP outputs, the heads must
add up to the attention output, the final norm must behave as a LayerNorm or an RMSNorm, and the
shares must add up to the model's own logit (within 1e-4 relative in float32). Where one check fails
(post-norm blocks as in BERT, norms after the attention or MLP as in Gemma 2 or OLMo 2, soft-capped
logits, another kind of final norm) it raises DoesNotApplyError saying why, never a number that does
not add up. Where the model's value itself is within the check's bound (|logit| <= tolerance x sum of
|shares|, e.g. a near-tie in bfloat16) the result flags it (`unresolved`, `notice`) instead of calling
it agreement.

    r = direct_logit_attribution(session, "The cat sat on the", target=" mat")
    dict(zip(r.components, r.values[:, 0, 0]))    # each part's share of the last position's logit
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..adapter.facts import first_output, get_module
from ..adapter.probe import execution_device
from ..checks import integer, one_token
from ..errors import DoesNotApplyError, LLMWidgetsError
from ..guards import model_lock
from ..layers import EMBEDDINGS
from ..execution import Program, Read, executor_of, ops, run
from .outputs import output_names
from .inputs import batch_inputs
from .patching import output_position

MEAN = "mean"  # contrast: the mean logit over the vocabulary (exactly this spelling)
CHUNK = 1 << 24  # elements per call of the output projection / unembedding on stacked parts

NOT_A_SUM = ("Direct logit attribution needs the final residual stream to be a sum of the embeddings and "
             "each block's attention and MLP outputs (pre-norm residual blocks). Measure each component's "
             "effect with ablation (ablation_effect) or activation patching (PatchingView) instead.")


@dataclass
class DirectLogitResult:
    """Each part's direct share of a logit (or logit difference) at some positions of a batch."""

    components: list[str]  # "embeddings", "L{layer}H{head}", "L{layer} attn bias", "L{layer} mlp", "readout bias"
    values: np.ndarray  # [C, B, P] share of component c in sequence b at positions[p]
    logit: np.ndarray  # [B, P] the model's own value: logit, minus the contrast's logit or the mean logit
    tokens: list[list[str]]  # [B][T] input tokens as read
    positions: list[int]  # the positions read (non-negative)
    targets: np.ndarray  # [B, P] target token ids
    metric: str  # what `logit` is, e.g. "logit(x) - mean logit"
    error: float  # max |sum of shares - logit| / sum of |shares|: the check that the shares add up
    tolerance: float  # the bound `error` and the checks on the parts were held to (by the model's dtype)
    n_layers: int
    n_heads: int
    resolution: np.ndarray  # [B, P] tolerance x sum of |shares|: the check's bound on |sum of shares - logit|

    @property
    def unresolved(self) -> np.ndarray:
        """[B, P] True where |logit| is within `resolution`: the model's dtype does not resolve the value
        (nor its sign) at this scale of shares, so their adding up to it says nothing about it."""
        return np.abs(self.logit) <= self.resolution

    def notice(self, b: int = 0) -> str:
        """What to say about the positions of sequence b whose value is unresolved ('' if none is)."""
        idx = np.flatnonzero(self.unresolved[b])
        if not len(idx):
            return ""
        i, more = idx[0], f" The same holds at {len(idx) - 1} more position(s)." if len(idx) > 1 else ""
        return unresolved_note(self.metric, self.positions[i], float(self.logit[b, i]), float(self.resolution[b, i]),
                               self.tolerance) + more

    @property
    def total(self) -> np.ndarray:
        """[B, P] the sum of the shares (equals `logit` within `error`)."""
        return self.values.sum(0)

    def share(self, component: str) -> np.ndarray:
        """[B, P] the share of one component (a name in `components`)."""
        if component not in self.components:
            raise LLMWidgetsError(f"no component {component!r}; components: {', '.join(self.components)}")
        return self.values[self.components.index(component)]

    def head_shares(self) -> np.ndarray:
        """[n_layers, n_heads, B, P] the share of every attention head; NaN for the heads a block does not
        have (a block without attention, or with fewer heads than another: hybrid stacks)."""
        out = np.full((self.n_layers, self.n_heads) + self.values.shape[1:], np.nan, dtype=self.values.dtype)
        for layer in range(self.n_layers):
            for head in range(self.n_heads):
                if f"L{layer}H{head}" in self.components:
                    out[layer, head] = self.share(f"L{layer}H{head}")
        return out


def unresolved_note(metric: str, position: int, value: float, resolution: float, tolerance: float) -> str:
    """Why a value within its resolution (|value| <= tolerance x sum of |shares|) is not read as agreement."""
    return (f"At position {position} the model's {metric} ({value:.3g}) is within the resolution of its dtype at "
            f"this scale of shares ({tolerance:.0e} x sum of |shares| = {resolution:.3g}): the shares add up to it "
            f"only as far as the dtype resolves, which does not fix its value, nor its sign. Load the model with "
            f"dtype='float32' to read it.")


def _tolerance(dtype: torch.dtype) -> float:
    """Relative tolerance of the checks: 1e-4 in float32; a few roundings of a 16-bit model's dtype."""
    eps = torch.finfo(dtype).eps
    return 1e-4 if eps < 1e-6 else 4 * eps


def _scalar_id(value) -> int | None:
    """A token id given as one integer (Python, numpy or 0-d torch / numpy integer), else None; never a
    bool. Python ints of any size: the range is checked against the vocabulary afterwards."""
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
        value = value.item()  # a Python int, float or bool
    if isinstance(value, (bool, np.bool_)):
        return None
    return int(value) if isinstance(value, (int, np.integer)) else None


def _token_ids(session, value, what: str, B: int, P: int, V: int) -> tuple[torch.Tensor, str]:
    """[B, P] token ids from a token (str), a token id (any integer scalar), or ids per position
    ([B, P], or [P] for one input), and a name for the metric."""
    one = _scalar_id(value)
    if isinstance(value, str):
        i = one_token(session, value, what)
        ids, name = torch.full((B, P), i), output_names(session, [i])[0]
    elif one is not None:
        if not 0 <= one < V:
            raise LLMWidgetsError(f"{what} token id must be in 0..{V - 1}, got {one}")
        ids, name = torch.full((B, P), one), None
    else:
        try:
            ids = torch.as_tensor(value if isinstance(value, torch.Tensor) else np.asarray(value)).cpu()
        except (TypeError, ValueError, RuntimeError, OverflowError):
            raise LLMWidgetsError(f"{what} must be a token, a token id or ids per position [batch, positions], "
                                  f"got {type(value).__name__}") from None
        if ids.numel() == 0:
            raise LLMWidgetsError(f"{what} is empty ({type(value).__name__} of shape {list(ids.shape)}): give a token, "
                                  f"a token id or ids per position [batch, positions] = {[B, P]}")
        if ids.dtype == torch.bool or ids.dtype.is_floating_point or ids.dtype.is_complex:
            raise LLMWidgetsError(f"{what} ids must be integers, got {ids.dtype}")
        if ids.dim() == 1 and B == 1:
            ids = ids[None]
        if tuple(ids.shape) != (B, P):
            raise LLMWidgetsError(f"{what} ids per position must have shape [batch, positions] = {[B, P]}, "
                                  f"got {list(ids.shape)}")
        name = what
    if int(ids.min()) < 0 or int(ids.max()) >= V:
        raise LLMWidgetsError(f"{what} ids must be in 0..{V - 1}, got {int(ids.min())}..{int(ids.max())}")
    if name is None:
        name = output_names(session, [int(ids[0, 0])])[0]
    return ids.long(), name


def _one_position(session, value, what: str) -> None:
    """Refuse an answer of several tokens (a text): its tokens are read at several positions, each
    after the answer's earlier tokens (teacher-forced), and its score there is a sum of log-probs,
    which are not linear in the residual stream; how to split each of its tokens' logits instead."""
    if not isinstance(value, str):
        return
    ids = session.tokenizer.encode(value, add_special_tokens=False)
    if len(ids) < 2:
        return
    raise LLMWidgetsError(
        f"{what} {value!r} is {len(ids)} tokens: direct logit attribution splits a logit at one position, and "
        f"an answer of several tokens is read at {len(ids)} positions, each after the answer's earlier tokens "
        f"(teacher-forced), where its score is a sum of log-probs, which do not split into direct shares. To split "
        f"each of its tokens' logits, pass the text followed by the answer as inputs (ids + answer ids[:-1]), "
        f"target=the answer's ids [[{', '.join(map(str, ids))}]] and positions=range(T - 1, T - 1 + {len(ids)}) "
        f"(T: the text's tokens); values.sum(-1) is then each part's share of the sum of those logits. For the "
        f"answer's log-prob use attribution (target={value!r}) or patching (answers=...).")


def _positions(positions, T: int) -> list[int]:
    if isinstance(positions, (int, np.integer)) and not isinstance(positions, bool):
        positions = [positions]
    if isinstance(positions, (str, bytes)):
        raise LLMWidgetsError(f"positions must be an integer or a list of integers, got {positions!r}")
    try:
        positions = list(positions)
    except TypeError:
        raise LLMWidgetsError(f"positions must be an integer or a list of integers, got {positions!r}") from None
    if not positions:
        raise LLMWidgetsError("positions is empty: give at least one position to read")
    return [output_position(integer(p, "position"), T) for p in positions]


def _device_dtype(module: torch.nn.Module, like: torch.Tensor) -> tuple[torch.device, torch.dtype]:
    """Where and in which dtype to call a module directly (an offloaded one computes on its hook's
    execution device, its weights being on the meta device between calls)."""
    p = next(module.parameters(), None)
    if p is None or not p.dtype.is_floating_point:
        return like.device, like.dtype
    return execution_device(module) or like.device, p.dtype


def _frozen_norm(module: torch.nn.Module, x: torch.Tensor, tol: float, path: str):
    """The final norm at the real input x [N, D] as an affine map with its scale frozen:
    module(y) = (centre(y) if centred else y) * scale + bias for y = x (row by row). Found from the
    module's behaviour (its output on two probes of mean 0 and RMS 1 gives the gain up to a common
    factor; the scale per row is fitted on x and checked, with a probe of non-zero mean deciding
    whether it centres), so any LayerNorm or RMSNorm variant qualifies and anything else is refused.
    Returns (scale [N, D], centred, bias [D]) in float32 on x's device."""
    N, D = x.shape
    if D < 3:
        raise DoesNotApplyError(f"the final norm's width is {D}: too small to identify")
    dev, dt = _device_dtype(module, x)

    def run(h: torch.Tensor) -> torch.Tensor:
        return first_output(module(h.to(dev, dt))).to(x.device).double()

    i = torch.arange(D, dtype=torch.float64, device=x.device)
    probes = math.sqrt(2) * torch.stack([torch.cos(2 * math.pi * i / D), torch.sin(2 * math.pi * i / D)])
    with torch.no_grad():
        bias = run(torch.zeros(1, D, dtype=torch.float64, device=x.device))[0]
        gain = ((run(probes) - bias) * probes).sum(0) / 2  # each feature: cos^2 + sin^2 = 2 over the probes
        rows = torch.cat([x.double(), probes[:1] + 2.0])  # the real rows, and one with mean 2
        want = run(rows) - bias
    best = None
    for centred in (True, False):
        u = (rows - rows.mean(-1, keepdim=True) if centred else rows) * gain
        dot = (u * want).sum(-1, keepdim=True)
        if not bool((dot != 0).all()):
            continue
        sigma = (u * u).sum(-1, keepdim=True) / dot
        err = float(((u / sigma - want).norm(dim=-1) / want.norm(dim=-1).clamp_min(1e-30)).max())
        if best is None or err < best[0]:
            best = (err, centred, sigma[:N])
    if best is None or not best[0] <= tol:
        raise DoesNotApplyError(
            f"the final norm ({path}) does not behave as a LayerNorm or RMSNorm on this input (best fit off by "
            f"{best[0] if best else float('nan'):.2g} relative; tolerance {tol:.0e}), so its scale cannot be "
            f"frozen to split the logit. {NOT_A_SUM}")
    _, centred, sigma = best
    return (gain / sigma).float(), centred, bias.float()


def why_not(session) -> str:
    """Why direct logit attribution does not apply to the session's model, from its structure alone
    (no forward; '' where it may: the forward's own checks can still refuse an input): interventions,
    a language-model head, no soft-capping, one final norm, and in every block either attention (a
    part "L{l}H{h}" per head, in the block's own layout) or one token-mixer module (a part "L{l} mixer")."""
    ad = session.adapter
    why = ad.why_not("interventions") or ad.why_not("logit_lens")
    if why:
        return why
    if ad.softcap:
        return (f"{session.name} soft-caps its logits (tanh(logit / {ad.softcap:g}) * {ad.softcap:g}): the logit "
                f"is not a sum of parts, so it has no direct shares. {NOT_A_SUM}")
    if len(ad.final_norm) > 1:
        return (f"{session.name} applies {len(ad.final_norm)} modules between its last block and the unembedding "
                f"({', '.join(ad.final_norm)}); direct logit attribution freezes one final norm. {NOT_A_SUM}")
    for layer in range(ad.n_layers):  # per block: its heads (its own layout), or its token mixer's output
        if ad.attn_out[layer] is None and ad.no_mixer(layer):
            return (f"direct logit attribution splits each block's contribution into parts, and "
                    f"{ad.no_attention(layer)}, whose output cannot be read as one part ({ad.no_mixer(layer)}). "
                    f"Measure each block's effect with activation patching (PatchingView) instead.")
    return ""


def why_not_grid(session) -> str:
    """Why DirectLogitView does not apply ('' where it does): `why_not`, or blocks whose heads are not
    of one layout (the view draws every head on one layer x head grid; `direct_logit_attribution`
    gives each block's parts as they are)."""
    why = why_not(session)
    if why:
        return why
    heads = session.adapter.uniform_heads()
    if heads:
        return (f"DirectLogitView draws every block's heads on one layer x head grid, and {heads}. "
                f"direct_logit_attribution(session, text, target=...) gives each block's parts (its heads where "
                f"it has attention, its token mixer's output where it has none); or measure each block's effect "
                f"with activation patching (PatchingView).")
    return ""


def direct_logit_attribution(session, inputs, *, target, contrast=None, positions=-1) -> DirectLogitResult:
    """Each part's direct share of the logit of `target` at `positions` of `inputs`.

    inputs: a text, a list of texts with the same number of tokens, or token ids ([T] or [B, T]).
    target: a token (str), a token id, or ids per position ([B, P], e.g. the next input token:
      `ids[:, 1:]` with positions=range(T - 1)). A text of several tokens is refused: its tokens are
      read at several positions, teacher-forced; pass the text and the answer's tokens but the last
      as inputs, the answer's ids per position as target and the positions before each (the error
      says how), and sum `values` over the positions.
    contrast: None (the logit itself), a token / id / ids per position (the logit difference
      target - contrast) or exactly "mean" (the logit minus the mean logit over the vocabulary; for
      the token "mean" itself pass its id). Another spelling of it ("MEAN", "Mean") is an error, not
      a token: whether the sentinel or the token was meant cannot be told.
    positions: an int or a list of ints (negative: from the end); default the last.

    Parts (`components`): "embeddings", "L{l}H{h}" for every head of a block with attention (in the
    block's own head layout), "L{l} attn bias" where the attention output projection has a bias,
    "L{l} mixer" for a block without attention (its token mixer's output: Mamba, short convolution,
    RG-LRU), "L{l} mlp" where the block has an MLP (a mixture of experts: the whole block), "readout
    bias" (the final norm's and the unembedding's biases) where there is one. Every block's parts
    are checked to add up to its output.
    Raises DoesNotApplyError where the logit is not such a sum (see the module docstring)."""
    executor_of(session).require("module_calls", "Direct logit attribution")  # it calls the projections here
    ad = session.adapter
    why = why_not(session)
    if why:
        raise DoesNotApplyError(why)
    mean = isinstance(contrast, str) and contrast == MEAN
    if isinstance(contrast, str) and not mean and contrast.lower() == MEAN:
        raise LLMWidgetsError(f"contrast={contrast!r} is ambiguous: write contrast={MEAN!r} (lower case) for the mean "
                              f"logit over the vocabulary, or pass the token's id for the token {contrast!r}.")
    _one_position(session, target, "target")
    _one_position(session, contrast if not mean else None, "contrast")
    enc = batch_inputs(session, inputs)
    B, T = enc["input_ids"].shape
    pos = _positions(positions, T)
    P, L = len(pos), ad.n_layers
    H = max((ad.head_layout(l)[0] for l in ad.attention_blocks), default=0)  # the most heads of any block
    model = session.model

    # per block: its heads and attention output where it has attention, else its token mixer's output
    sites = [(s, l) for l in range(L) for s in (("heads", "attn") if ad.attn_out[l] is not None else ("mixer",))
             + ("resid",)]
    sites += [("mlp", l) for l in range(L) if ad.mlp[l] is not None]
    at = ops.Positions(pos)
    reads = [Read("resid", EMBEDDINGS, reduce=at)] + [Read(s, l, reduce=at) for s, l in sites]
    res = run(session, Program(enc, reads=reads, logits=pos, label="direct logit attribution"))
    got = res.reads
    logits = res.logits.float()  # [B, P, V]
    V = logits.shape[-1]
    tgt, tname = _token_ids(session, target, "target", B, P, V)
    metric = f"logit({tname})"
    con = None
    if mean:
        metric += " - mean logit"
    elif contrast is not None:
        con, cname = _token_ids(session, contrast, "contrast", B, P, V)
        if bool((con == tgt).any()):
            raise LLMWidgetsError("contrast equals target (at some position): their logit difference is 0 by "
                                  "definition. Pick another contrast, 'mean', or None.")
        metric += f" - logit({cname})"
    emb0 = got[("resid", EMBEDDINGS)]
    dev = emb0.device
    tgt, con = tgt.to(dev), (con.to(dev) if con is not None else None)
    emb = emb0.float()
    tol = _tolerance(emb0.dtype)
    N = B * P

    def flat(key) -> torch.Tensor:
        return got[key].to(dev).reshape(N, -1)

    # 1. the parts, in the residual stream [N, D], checked block by block
    names, parts = ["embeddings"], [emb.reshape(N, -1)]
    prev = parts[0]
    with model_lock(model), torch.no_grad():
        for layer in range(L):
            if ad.attn_out[layer] is None:  # no attention: the token mixer's output is one part
                attn = flat(("mixer", layer)).float()
                names.append(f"L{layer} mixer")
                parts.append(attn)
                block_mixer = f"token mixer output ({ad.mixers[layer]})"
            else:
                attn = _heads(ad, layer, flat(("heads", layer)), flat(("attn", layer)).float(), emb.shape[-1], N,
                              dev, tol, names, parts)
                block_mixer = "attention output"
            mlp = flat(("mlp", layer)).float() if ad.mlp[layer] is not None else None
            if mlp is not None:
                names.append(f"L{layer} mlp")
                parts.append(mlp)
            resid = flat(("resid", layer)).float()
            err = _rel(prev + attn + (mlp if mlp is not None else 0), resid)
            if err > tol:
                what = f"{block_mixer} and MLP outputs" if mlp is not None else block_mixer
                raise DoesNotApplyError(
                    f"block {layer}'s output is not its input plus its {what} "
                    f"(relative mismatch {err:.2g}; tolerance {tol:.0e}): the "
                    f"block transforms them before or after the residual sum (post-norm blocks as in BERT, a norm "
                    f"after the attention or MLP as in Gemma 2 or OLMo 2) or adds a part the adapter does not "
                    f"see. {NOT_A_SUM}")
            prev = resid
        stack = torch.stack(parts)  # [C, N, D]
        err = _rel(stack.sum(0), prev)
        if err > tol:
            raise DoesNotApplyError(f"the parts do not add up to the final residual stream (relative mismatch "
                                    f"{err:.2g}; tolerance {tol:.0e}). {NOT_A_SUM}")

        # 2. the final norm, frozen at the real input; 3. the unembedding, on each part
        if ad.final_norm:
            norm = get_module(model, ad.final_norm[0])
            scale, centred, nbias = _frozen_norm(norm, flat(("resid", L - 1)), tol, ad.final_norm[0])
        else:
            scale, centred, nbias = None, False, torch.zeros(stack.shape[-1], device=dev)
        head = get_module(model, ad.head)
        hdev, hdt = _device_dtype(head, stack)
        head0 = first_output(head(torch.zeros(1, 1, stack.shape[-1], dtype=hdt, device=hdev))).float().to(dev)[0, 0]

        def read(vecs: torch.Tensor, minus_head0: bool = True) -> torch.Tensor:
            """[c, N] the metric of the unembedding of each vector [c, N, D]."""
            lg = first_output(head(vecs.to(hdev, hdt))).float().to(dev)
            if minus_head0:
                lg = lg - head0
            c = lg.shape[0]
            val = lg.gather(-1, tgt.reshape(1, N, 1).expand(c, N, 1))[..., 0]
            if mean:
                val = val - lg.mean(-1)
            elif con is not None:
                val = val - lg.gather(-1, con.reshape(1, N, 1).expand(c, N, 1))[..., 0]
            return val

        values = []
        step = max(1, CHUNK // max(1, N * V))
        for c0 in range(0, len(parts), step):
            v = stack[c0:c0 + step]
            if centred:
                v = v - v.mean(-1, keepdim=True)
            values.append(read(v * scale if scale is not None else v))
        readout_bias = read(nbias.expand(1, N, -1), minus_head0=False)
        if bool(readout_bias.abs().max() > 0):
            names.append("readout bias")
            values.append(readout_bias)
        values = torch.cat(values) * ad.logit_scale  # [C, N]

    own = logits.gather(-1, tgt.reshape(B, P, 1))[..., 0]
    if mean:
        own = own - logits.mean(-1)
    elif con is not None:
        own = own - logits.gather(-1, con.reshape(B, P, 1))[..., 0]
    own = own.reshape(N)
    error = float(((values.sum(0) - own).abs() / values.abs().sum(0).clamp_min(1e-30)).max())
    if not error <= tol:
        raise DoesNotApplyError(f"the shares add up to the model's {metric} only within {error:.2g} relative "
                                f"(tolerance {tol:.0e}): the readout after the final norm is not affine "
                                f"(e.g. an output head with a non-linearity, as masked-LM heads have). {NOT_A_SUM}")
    ids = enc["input_ids"].tolist()
    tokens = [session.readable_tokens(session.tokenizer.convert_ids_to_tokens(row)) for row in ids]
    return DirectLogitResult(components=names, values=values.reshape(-1, B, P).cpu().numpy(),
                             logit=own.reshape(B, P).cpu().numpy(), tokens=tokens, positions=pos,
                             targets=tgt.cpu().numpy(), metric=metric, error=error, tolerance=tol, n_layers=L,
                             n_heads=H, resolution=(tol * values.abs().sum(0)).reshape(B, P).cpu().numpy())


def _heads(ad, layer: int, z: torch.Tensor, attn: torch.Tensor, d: int, N: int, dev, tol: float, names: list,
           parts: list) -> torch.Tensor:
    """Block `layer`'s attention output [N, D] split into its heads, in the block's own layout (heads x
    width as its module computes them), each through the output projection; appends the parts
    ("L{l}H{h}", "L{l} attn bias") to names / parts, checks they add up to `attn`, returns `attn`."""
    post = ad.attn_post[layer] if layer < len(ad.attn_post) else None
    if post is not None:
        raise DoesNotApplyError(f"block {layer}'s attention output passes through a norm ({post.path!r}) before "
                                f"it is added to the residual stream (a 'sandwich' norm, as in Gemma 2 or OLMo 2), "
                                f"so its heads do not add up to what the block adds. {NOT_A_SUM}")
    H, dh = ad.head_layout(layer)
    if z.shape[-1] != H * dh:
        raise DoesNotApplyError(f"block {layer}'s attention output projection reads {z.shape[-1]} features, "
                                f"not {H} heads x {dh}. {NOT_A_SUM}")
    proj = ad.site("heads", layer).module
    pdev, pdt = _device_dtype(proj, z)
    zero = torch.zeros(1, H * dh, dtype=pdt, device=pdev)
    bias = first_output(proj(zero)).float().to(dev)[0]
    heads = []
    step = max(1, CHUNK // max(1, N * max(H * dh, d)))
    for h0 in range(0, H, step):
        hs = range(h0, min(H, h0 + step))
        masked = torch.zeros(len(hs), N, H * dh, dtype=pdt, device=pdev)
        for j, h in enumerate(hs):
            masked[j, :, h * dh:(h + 1) * dh] = z[:, h * dh:(h + 1) * dh].to(pdev, pdt)
        heads.append(first_output(proj(masked)).float().to(dev) - bias)
    heads = torch.cat(heads)  # [H, N, D]
    err = _rel(heads.sum(0) + bias, attn)
    if err > tol:
        raise DoesNotApplyError(f"block {layer}'s attention output is not the sum of its heads through the "
                                f"output projection (relative mismatch {err:.2g}; tolerance {tol:.0e}). "
                                f"{NOT_A_SUM}")
    names += [f"L{layer}H{h}" for h in range(H)]
    parts += list(heads)
    if bool(bias.abs().max() > 0):
        names.append(f"L{layer} attn bias")
        parts.append(bias.expand(N, -1))
    return attn


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    """max over rows of |got - want| / |want| (vector norms)."""
    return float(((got - want).norm(dim=-1) / want.norm(dim=-1).clamp_min(1e-30)).max())
