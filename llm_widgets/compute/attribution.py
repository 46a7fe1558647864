"""Token attribution: which input tokens drive an output. Classifiers, causal LMs, custom targets.

Everything works on the word-embedding layer. A target is a function f(E) of the prompt's word
embeddings E [B, T, D] returning K scalars per example ([B, K]): a class logit, the log-prob of each
generated token (teacher-forced: ONE forward over prompt + generated tokens serves all K targets,
thanks to causal masking), a contrast "A rather than B" (difference), or a user callable.

Methods (one `method=` argument, one result type):
- 'ig'            integrated gradients from a baseline (Gauss-Legendre steps, like captum's default)
- 'grad_x_input'  gradient . embedding
- 'saliency'      sum |gradient| over the embedding (unsigned)
- 'occlusion'     f(x) - f(x with token i replaced by the baseline)  (feature ablation)
- 'shapley'       Shapley value sampling over random token orders (sums to f(x) - f(baseline))
- 'lime'          captum Lime over token presence masks
- 'permutation'   f(x) - mean f(x with token i replaced by the prompt's other tokens)

Special tokens ([CLS], [SEP], <s>) are never perturbed: they keep their embedding in the baseline
and get score 0. Every perturbation replaces a token's embedding by the baseline's (the pad/unk
token's embedding, or zeros) at the same position, so the length never changes. Outputs are
accumulated in float32 whatever the model dtype.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..adapter import CallHook
from ..checks import integer, no_unknowns, one_token
from ..session import model_lock
from ..errors import EmptyInputError, LLMWidgetsError, NonFiniteError
from .faithfulness import Faithfulness, completeness, faithfulness
from .gradcam import attention_gradcam, layer_gradcam
from .lrp import attn_lrp_rules
from .shap_values import MAX_EXACT_WORDS, exact_shap, partition_shap

METHODS = {
    "ig": "integrated gradients",
    "grad_x_input": "gradient \u00d7 input",
    "saliency": "saliency |gradient|",
    "occlusion": "occlusion (feature ablation)",
    "shapley": "Shapley value sampling",
    "lime": "LIME",
    "permutation": "permutation importance",
    "shap": "SHAP (exact over words; shap Partition when long)",
    "gradcam": "layer Grad-CAM",
    "attention_gradcam": "attention Grad-CAM (Chefer et al.)",
    "lrp": "AttnLRP (layer-wise relevance)",
}
ALIASES = {"integrated_gradients": "ig", "gradient_x_input": "grad_x_input", "gxi": "grad_x_input",
           "input_x_gradient": "grad_x_input", "feature_ablation": "occlusion", "ablation": "occlusion",
           "shapley_sampling": "shapley", "gradient": "saliency", "grad_cam": "gradcam",
           "layer_gradcam": "gradcam", "chefer": "attention_gradcam", "attnlrp": "lrp", "attn_lrp": "lrp",
           "kernel_shap": "shap", "partition_shap": "shap"}
SIGNED = {"ig": True, "grad_x_input": True, "saliency": False, "occlusion": True, "shapley": True,
          "lime": True, "permutation": True, "shap": True, "gradcam": True, "attention_gradcam": False,
          "lrp": True}
BASELINES = ("auto", "pad", "unk", "zero", "mask")
MAX_RELATIVE_DELTA = 0.05  # IG steps are doubled until |delta| / |f(x) - f(x')| is below this


# ------------------------------------------------------------------------------------------------
# results


@dataclass
class AttributionResult:
    tokens: list[str]  # prompt tokens (tokenizer's own)
    labels: list[str]  # the same as a person reads them
    scores: np.ndarray  # [K, T] float32: row k = attribution of target k to each prompt token
    targets: list[str]  # K display names ("POSITIVE", " Paris", "POSITIVE \u2212 NEGATIVE", ...)
    target_ids: list[int]  # class index or token id per row (-1 for custom targets)
    method: str  # key of METHODS
    baseline: str  # what the baseline is, for the UI
    output: str  # 'logit', 'prob', 'log_prob' or 'custom': what f measures
    steps: int  # IG steps used (0 for other methods)
    n_samples: int  # samples used by shapley / lime / permutation (0 otherwise)
    faithfulness: Faithfulness | None
    special_mask: np.ndarray  # [T] bool: special tokens (never perturbed, score 0)
    groups: list[int]  # [T] word index of each token (special tokens are their own word)
    group_labels: list[str]  # one label per word
    generated: bool = False  # rows are greedily generated tokens of a causal LM
    contrast: str | None = None
    notice: str = ""
    input_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    output_values: np.ndarray | None = None  # [K] f(x), the explained outputs
    base_values: np.ndarray | None = None  # [K] f(baseline)

    def to_shap(self, row: int | None = None):
        """The scores as a `shap.Explanation` (special tokens left out; base values are f(baseline)),
        so shap's own plots work: shap.plots.text(result.to_shap(0)). row=None: every target, as
        rows of one Explanation; row=k: target k alone."""
        import shap

        keep = ~np.asarray(self.special_mask, bool)
        words = np.array(self.labels, dtype=object)[keep]
        if row is not None:
            return shap.Explanation(values=self.scores[row, keep].astype(np.float64),
                                    base_values=float(self.base_values[row]), data=words,
                                    feature_names=list(words))
        return shap.Explanation(values=self.scores[:, keep].astype(np.float64),
                                base_values=np.asarray(self.base_values, np.float64),
                                data=np.array([words] * len(self.targets)), feature_names=list(words),
                                output_names=list(self.targets))

    @property
    def signed(self) -> bool:
        return SIGNED[self.method]

    @property
    def delta(self) -> np.ndarray | None:
        return None if self.faithfulness is None else self.faithfulness.delta

    def word_scores(self) -> np.ndarray:
        """[K, W]: scores summed over the sub-word tokens of each word (see `group_labels`)."""
        out = np.zeros((self.scores.shape[0], len(self.group_labels)), dtype=np.float32)
        np.add.at(out.T, np.asarray(self.groups), self.scores.T)
        return out

    def top(self, row: int = 0, k: int = 5) -> list[tuple[str, float]]:
        """The k highest-scoring prompt tokens for target `row`, as (label, score)."""
        s = self.scores[row]
        order = [i for i in np.argsort(-s, kind="stable") if not self.special_mask[i]]
        return [(self.labels[i], float(s[i])) for i in order[:k]]


# ------------------------------------------------------------------------------------------------
# the target function f(E) -> [B, K]


class Objective:
    """f(E): embedding-layer outputs of the prompt E [B, T, D] -> target outputs [B, K] (float32).

    E is what the first transformer block reads (token + position embeddings, after BERT's
    LayerNorm): attributing there keeps gradient x input meaningful for post-LayerNorm encoders,
    and for GPT-2 style models it equals attributing to the token embeddings (positions add)."""

    def __init__(self, session, enc: dict, fn: Callable, names: list[str], ids: list[int],
                 output: str, suffix_ids: torch.Tensor | None = None, contrast: str | None = None):
        self.session = session
        self.model = session.model
        self.fn = fn  # fn(model_kwargs) -> [B, K]
        self.names, self.ids, self.output, self.contrast = names, ids, output, contrast
        # Position-wise head (causal LMs): target k reads only position head_pos[k] of the head's
        # input, so per-target gradients need one backward through the head, not one per target.
        self.head: torch.nn.Module | None = None
        self.head_pos: list[int] | None = None
        self.block = session.adapter.blocks[0]  # the first block (call 0 of a shared one)
        self.T = enc["input_ids"].shape[1]
        ids_full = enc["input_ids"]
        if suffix_ids is not None and suffix_ids.numel():
            ids_full = torch.cat([ids_full, suffix_ids[None]], dim=1)
        self.ids_full = ids_full
        self.extra = {k: v for k, v in enc.items() if k == "token_type_ids" and ids_full.shape[1] == self.T}
        full = self.capture(input_ids=ids_full)  # [1, T_full, D]
        self.x, self.suffix = full[:, :self.T], (full[:, self.T:] if full.shape[1] > self.T else None)
        self.dtype = self.x.dtype

    @property
    def num_targets(self) -> int:
        return len(self.names)

    def _kwargs(self, b: int, **over) -> dict:
        kw = {"input_ids": self.ids_full.expand(b, -1),
              "attention_mask": torch.ones((b, self.ids_full.shape[1]), dtype=torch.long,
                                           device=self.ids_full.device)}
        kw.update({k: v.expand(b, -1) for k, v in self.extra.items()})
        kw.update(over)
        if "inputs_embeds" in kw:
            kw.pop("input_ids")
        return kw

    def capture(self, **inputs) -> torch.Tensor:
        """The first block's input [1, T_full, D] for these inputs (one no-grad forward)."""
        box = []

        def pre(mod, args, kwargs):
            box.append((args[0] if args else kwargs["hidden_states"]).detach())
            raise _Stop

        with model_lock(self.model):  # no other thread's forward may run through this hook
            h = CallHook(self.model, self.block, pre, pre=True, with_kwargs=True)
            try:
                with torch.no_grad():
                    self.model(**self._kwargs(1, **inputs))
            except _Stop:
                pass
            finally:
                h.remove()
        return box[0]

    def __call__(self, E: torch.Tensor, cut: list | None = None, *, extra: dict | None = None,
                 watch: tuple = ()) -> torch.Tensor:
        """f(E) [B, K] float32. With `cut=[]` (and a position-wise head) the head's input h is
        detached: cut receives (h, h_leaf) so gradients can be taken in two stages. `extra`: more
        model keyword arguments (e.g. output_attentions); `watch`: (Ref, hook) pairs of forward
        hooks installed for this call only (the Grad-CAM methods read activations with them)."""
        b = E.shape[0]
        E = E.to(self.dtype)
        if self.suffix is not None:
            E = torch.cat([E, self.suffix.expand(b, -1, -1)], dim=1)

        def pre(mod, args, kwargs):
            if args:
                return (E,) + tuple(args[1:]), kwargs
            return args, {**kwargs, "hidden_states": E}

        def cut_head(mod, args):
            leaf = args[0].detach().requires_grad_(True)
            cut.append((args[0], leaf))
            return (leaf,) + tuple(args[1:])

        with model_lock(self.model):
            hooks = [CallHook(self.model, self.block, pre, pre=True, with_kwargs=True)]
            hooks += [CallHook(self.model, ref, hook, pre=False) for ref, hook in watch]
            if cut is not None:
                hooks.append(self.head.register_forward_pre_hook(cut_head))
            try:
                out = self.fn(self._kwargs(b, **(extra or {})))
            finally:
                for h in hooks:
                    h.remove()
        if out.dim() == 1:
            out = out[:, None]
        return out.float()


class _Stop(Exception):
    pass


def _as_class(session, t, labels: list[str]) -> int:
    if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
        if 0 <= int(t) < len(labels):
            return int(t)
        raise LLMWidgetsError(f"Target class index {t} is out of range: this model has "
                              f"{len(labels)} classes: {labels} (indices 0..{len(labels) - 1}).")
    if isinstance(t, str):
        if t in labels:
            return labels.index(t)
        lower = [x.lower() for x in labels]
        if t.lower() in lower:
            return lower.index(t.lower())
    raise LLMWidgetsError(f"Target {t!r} is not one of this model's labels: {labels}. "
                          f"Pass a label name or an index 0..{len(labels) - 1}.")


def _single_token(session, t, what: str) -> int:
    if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
        if not 0 <= int(t) < session.model.get_output_embeddings().weight.shape[0]:
            raise LLMWidgetsError(f"{what} token id {t} is outside the vocabulary.")
        return int(t)
    if not isinstance(t, str):
        raise LLMWidgetsError(f"{what} must be a token (str) or a token id, got {t!r}")
    return one_token(session, t, what)


def greedy_generate(session, input_ids: torch.Tensor, k: int) -> list[int]:
    """k greedy next tokens after input_ids [1, T] (full forward per token; k is small)."""
    ids = input_ids
    out = []
    limit = session.max_length
    last = {"logits_to_keep": 1} if _supports_logits_to_keep(session.model) else {}
    with torch.no_grad():
        for _ in range(k):
            if limit is not None and ids.shape[1] >= limit:
                break
            logits = session.model(input_ids=ids, attention_mask=torch.ones_like(ids), **last).logits[0, -1]
            nxt = int(logits.float().argmax())
            out.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]], device=ids.device)], dim=1)
    return out


def _supports_logits_to_keep(model) -> bool:
    import inspect

    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def build_objective(session, enc: dict, target=None, *, contrast=None, generate: int | None = None,
                    output: str | None = None) -> Objective:
    """Turn a user target into f(E). See `attribute` for the accepted forms."""
    model = session.model
    kind = session.kind
    if kind == "encoder-decoder":
        raise LLMWidgetsError("Attribution supports classifiers, causal LMs and encoders with a "
                              "callable target; encoder-decoder models are not supported yet.")
    if callable(target) and not isinstance(target, (str, int)):
        name = getattr(target, "__name__", "custom")
        name = "custom" if name == "<lambda>" else name

        def fn(kwargs):
            return target(model(**kwargs))

        probe = None
        with torch.no_grad():
            probe = fn({"input_ids": enc["input_ids"], **{k: v for k, v in enc.items() if k != "input_ids"}})
        if not isinstance(probe, torch.Tensor):
            raise LLMWidgetsError("A callable target must return a tensor [batch] or [batch, K] computed "
                                  f"from the model output (with gradients), got {type(probe).__name__}.")
        k = 1 if probe.dim() == 1 else probe.shape[-1]
        if probe.dim() not in (1, 2) or probe.shape[0] != 1 or k < 1:
            raise LLMWidgetsError("A callable target must return a tensor [batch] or [batch, K] "
                                  f"from the model output; got shape {tuple(probe.shape)}.")
        names = [name] if k == 1 else [f"{name}[{i}]" for i in range(k)]
        return Objective(session, enc, fn, names, [-1] * k, "custom")

    if kind == "decoder":
        if generate is not None and target is not None:
            raise LLMWidgetsError("Pass either generate=k (attribute k greedily generated tokens) or "
                                  "target=... (tokens you choose), not both.")
        if contrast is not None:
            if target is None:
                raise LLMWidgetsError("A contrastive target needs both: target='A', contrast='B' "
                                      "(why the model prefers A over B as the next token).")
            tgt = [_single_token(session, target, "target")]
        elif target is None:
            n = 1 if generate is None else int(generate)
            if n < 1:
                raise LLMWidgetsError(f"generate must be at least 1, got {generate}")
            tgt = greedy_generate(session, enc["input_ids"], n)
            if not tgt:
                raise LLMWidgetsError("No room to generate: the prompt already fills the model's context.")
        elif isinstance(target, str):
            tgt = session.tokenizer.encode(target, add_special_tokens=False)
            if not tgt:
                raise EmptyInputError("The target text produced no tokens.")
            no_unknowns(session, tgt, target, "target")
        elif isinstance(target, (int, np.integer)):
            tgt = [_single_token(session, target, "target")]
        else:
            tgt = [_single_token(session, t, "target") for t in target]
        if output not in (None, "log_prob", "logit"):
            raise LLMWidgetsError("For a causal LM the target output is the log-prob of each token "
                                  "(output='log_prob', the default) or its logit (output='logit').")
        output = output or "log_prob"
        k = len(tgt)
        T = enc["input_ids"].shape[1]
        tgt_t = torch.tensor(tgt, device=session.device)
        positions = torch.arange(T - 1, T - 1 + k, device=session.device)
        keep = _supports_logits_to_keep(model)
        other = _single_token(session, contrast, "contrast") if contrast is not None else None
        if other is not None and other == tgt[0]:
            raise LLMWidgetsError(f"contrast is the same token as target ({target!r}): the difference "
                                  "would be 0 everywhere. Pass two different tokens.")

        def fn(kwargs):
            if keep:
                logits = model(**kwargs, logits_to_keep=positions).logits
            else:
                logits = model(**kwargs).logits[:, positions]
            lp = torch.log_softmax(logits.float(), dim=-1) if output == "log_prob" else logits.float()
            vals = lp[:, torch.arange(k, device=lp.device), tgt_t]
            if other is not None:
                vals = vals - lp[:, 0, other][:, None]
            return vals

        labels = session.token_labels(session.tokenizer.convert_ids_to_tokens(tgt))
        cname = None
        if other is not None:
            cname = session.token_labels(session.tokenizer.convert_ids_to_tokens([other]))[0]
            labels = [f"{labels[0]} \u2212 {cname}"]
        f = Objective(session, enc, fn, labels, tgt, output, suffix_ids=tgt_t[:-1], contrast=cname)
        head = model.get_output_embeddings()
        if head is not None and other is None:
            f.head = head
            f.head_pos = list(range(k)) if keep else [T - 1 + j for j in range(k)]
        return f

    labels = session.class_labels
    if labels is None:
        raise LLMWidgetsError(f"{session.name} has no classification head, so there is no class to "
                              "explain. Pass target=callable(output) -> tensor[batch] (e.g. a probe "
                              "on output.last_hidden_state), or load a classifier or causal LM.")
    if generate is not None:
        raise LLMWidgetsError("generate= is for causal LMs; this model is a classifier: pass target='CLASS'.")
    output = output or "logit"
    if output not in ("logit", "prob", "log_prob"):
        raise LLMWidgetsError(f"output must be 'logit', 'prob' or 'log_prob', got {output!r}")
    if target is None:
        with torch.no_grad():
            target = int(model(**enc).logits[0].float().argmax())
    classes = [_as_class(session, t, labels) for t in (target if isinstance(target, (list, tuple)) else [target])]
    other = _as_class(session, contrast, labels) if contrast is not None else None
    if other is not None and len(classes) != 1:
        raise LLMWidgetsError("A contrastive target compares one class with another: pass a single target.")
    if other is not None and other == classes[0]:
        raise LLMWidgetsError(f"contrast is the same class as target ({labels[other]!r}): the difference "
                              "would be 0 everywhere. Pass two different classes.")

    def fn(kwargs):
        logits = model(**kwargs).logits.float()
        if output == "prob":
            logits = torch.softmax(logits, -1)
        elif output == "log_prob":
            logits = torch.log_softmax(logits, -1)
        vals = logits[:, classes]
        if other is not None:
            vals = vals - logits[:, other][:, None]
        return vals

    names = [labels[c] for c in classes]
    if other is not None:
        names = [f"{names[0]} \u2212 {labels[other]}"]
    return Objective(session, enc, fn, names, classes, output,
                     contrast=labels[other] if other is not None else None)


# ------------------------------------------------------------------------------------------------
# baselines, batching


def baseline_embeddings(f: Objective, special: np.ndarray, baseline) -> tuple[torch.Tensor, str]:
    """[1, T, D] embedding-layer output of the baseline input: special tokens keep their token,
    every other token becomes the pad / unk / mask token, a given token id, or a zero token vector
    (positions are kept). Returns (embeddings, description)."""
    session = f.session
    tok = session.tokenizer
    input_ids = f.ids_full[:, :f.T]
    keep = torch.zeros(f.ids_full.shape, dtype=torch.bool, device=input_ids.device)
    keep[:, :f.T] = torch.as_tensor(special, device=input_ids.device)
    keep[:, f.T:] = True  # generated tokens stay as they are
    if baseline == "auto":  # the pad token where there is one (GPT-2 has none), else unk, else zero
        baseline = next((b for b in ("pad", "unk") if getattr(tok, f"{b}_token_id", None) is not None), "zero")
    if baseline == "zero":
        with torch.no_grad():
            words = session.model.get_input_embeddings()(f.ids_full)
        embeds = torch.where(keep[..., None], words, torch.zeros_like(words))
        return _keep_special(f, f.capture(inputs_embeds=embeds), special), "zero token vector (special tokens kept)"
    if isinstance(baseline, (int, np.integer)) and not isinstance(baseline, bool):
        vocab = session.model.get_input_embeddings().weight.shape[0]
        if not 0 <= baseline < vocab:
            raise LLMWidgetsError(f"baseline token id {baseline} is outside the vocabulary (0..{vocab - 1}).")
        tid, name = int(baseline), tok.convert_ids_to_tokens(int(baseline))
    elif baseline in ("pad", "unk", "mask"):
        tid = getattr(tok, f"{baseline}_token_id", None)
        name = getattr(tok, f"{baseline}_token", None)
        if tid is None:
            have = [b for b in ("pad", "unk", "mask") if getattr(tok, f"{b}_token_id", None) is not None]
            raise LLMWidgetsError(f"This tokenizer has no {baseline} token. Use baseline='zero'"
                                  + (f" or one of {have}" if have else "") + ", or a token id.")
    else:
        raise LLMWidgetsError(f"baseline must be one of {BASELINES} or a token id, got {baseline!r}")
    ids = torch.where(keep, f.ids_full, torch.full_like(f.ids_full, tid))
    return _keep_special(f, f.capture(input_ids=ids), special), f"{name} token (id {tid}) at every non-special position"


def _keep_special(f, base: torch.Tensor, special: np.ndarray) -> torch.Tensor:
    """The baseline's special-token rows are exactly the input's: models that number positions
    by counting non-pad tokens (RoBERTa) would otherwise move [SEP]'s position embedding, and
    f(baseline) would not be the value of the empty coalition."""
    base = base[:, :f.T].clone()
    keep = torch.as_tensor(special, device=base.device)
    base[:, keep] = f.x[:, keep].to(base.dtype)
    return base


def _free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        try:
            import os

            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except Exception:
            return 4 << 30


def auto_batch_size(session, seq_len: int, num_targets: int, grad: bool, cap: int = 64) -> int:
    """Sequences per forward so that activations use at most a quarter of free memory."""
    ad = session.adapter
    d, layers, heads = ad.d_model, ad.n_layers, ad.n_heads
    out = session.model.get_output_embeddings() if session.kind == "decoder" else None
    vocab = int(out.weight.shape[0]) if out is not None else 16
    per = 4 * layers * seq_len * (16 * d + 3 * heads * seq_len) + 12 * num_targets * vocab
    if grad:
        per = per * 2 + 4 * num_targets * seq_len * d * 2  # backward buffers + batched input grads
    return int(max(1, min(cap, _free_bytes(session.device) // 4 // max(per, 1))))


def _chunks(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def _check_finite(t: torch.Tensor, what: str):
    if not torch.isfinite(t).all():
        raise NonFiniteError(f"The model produced non-finite values in the {what}. With float16 "
                             "weights this is overflow: load with dtype='float32' or 'bfloat16'.")


class _Runner:
    """Evaluates f on batches of perturbed embeddings, with progress."""

    def __init__(self, f: Objective, base: torch.Tensor, feats: np.ndarray, batch: int,
                 report: Callable[[float, str], None] | None):
        self.f, self.base, self.feats, self.batch = f, base, feats, batch
        self.x = f.x
        self.report = report or (lambda frac, label="": None)

    def embeds(self, masks: np.ndarray) -> torch.Tensor:
        """masks [N, n_feats] bool (True: keep the input token) -> embeddings [N, T, D]."""
        keep = torch.ones((masks.shape[0], self.x.shape[1]), dtype=torch.bool, device=self.x.device)
        keep[:, torch.as_tensor(self.feats, device=self.x.device)] = torch.as_tensor(masks, device=self.x.device)
        return torch.where(keep[..., None], self.x, self.base)

    def eval_embeds(self, E: torch.Tensor, label: str = "") -> np.ndarray:
        """f on embeddings [N, T, D] in batches -> [N, K] float32 numpy."""
        return self._eval(E.shape[0], lambda sl: E[sl], label)

    def eval_masks(self, masks: np.ndarray, label: str = "") -> np.ndarray:
        """f on token-presence masks [N, n_feats] (False: baseline) in batches -> [N, K]."""
        return self._eval(masks.shape[0], lambda sl: self.embeds(masks[sl]), label)

    def _eval(self, n: int, get, label: str) -> np.ndarray:
        outs = []
        with torch.no_grad():
            for sl in _chunks(n, self.batch):
                out = self.f(get(sl))
                _check_finite(out, "target outputs")
                outs.append(out.cpu().numpy())
                if label:
                    self.report(sl.stop / n, label)
        return np.concatenate(outs) if outs else np.zeros((0, self.f.num_targets), np.float32)

    def grads(self, E: torch.Tensor) -> torch.Tensor:
        """[K, b, T, D] float32 gradient of each target wrt E [b, T, D] (one backward per target,
        batched with vmap when the model allows)."""
        E = E.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            if self.f.head is not None and self.f.num_targets > 1:
                return self._split_grads(E)
            out = self.f(E)
            _check_finite(out, "target outputs")
            k = out.shape[1]
            if k == 1:
                return torch.autograd.grad(out[:, 0].sum(), E)[0].float()[None]
            try:
                eye = torch.eye(k, device=out.device, dtype=out.dtype)[:, None, :].expand(k, out.shape[0], k)
                g = torch.autograd.grad(out, E, grad_outputs=eye, is_grads_batched=True, retain_graph=True)[0]
            except RuntimeError:  # an op without a batching rule: one backward per target
                g = torch.stack([torch.autograd.grad(out[:, j].sum(), E, retain_graph=j < k - 1)[0]
                                 for j in range(k)])
        return g.float()

    def _split_grads(self, E: torch.Tensor) -> torch.Tensor:
        """Per-target gradients for a position-wise head (causal LM): ONE backward through the
        head (over the vocabulary) gives dK/dh at each target's own position; then K backward
        passes through the transformer from h, batched with vmap."""
        cut = []
        out = self.f(E, cut=cut)
        _check_finite(out, "target outputs")
        (h, leaf), = cut
        g_head = torch.autograd.grad(out.sum(), leaf)[0]  # [B, P, D]; target j lives at head_pos[j]
        pos = torch.as_tensor(self.f.head_pos, device=h.device)
        k = len(self.f.head_pos)
        go = torch.zeros((k,) + tuple(h.shape), dtype=h.dtype, device=h.device)
        go[torch.arange(k, device=h.device), :, pos] = g_head[:, pos].transpose(0, 1)
        try:
            g = torch.autograd.grad(h, E, grad_outputs=go, is_grads_batched=True, retain_graph=True)[0]
        except RuntimeError:  # an op without a batching rule: one backward per target
            g = torch.stack([torch.autograd.grad(h, E, grad_outputs=go[j], retain_graph=j < k - 1)[0]
                             for j in range(k)])
        return g.float()


# ------------------------------------------------------------------------------------------------
# methods: each returns scores [K, T] float32 (torch, on device)


def gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """IG interpolation points in [0, 1] and their weights (captum's 'gausslegendre')."""
    x, w = np.polynomial.legendre.leggauss(steps)
    return 0.5 * (1 + x), 0.5 * w


def _ig(run: _Runner, steps: int) -> torch.Tensor:
    alphas, weights = gauss_legendre(steps)
    x, base = run.x.float(), run.base.float()
    diff = x - base
    acc = torch.zeros((run.f.num_targets,) + tuple(x.shape[1:]), dtype=torch.float32, device=x.device)
    for sl in _chunks(steps, run.batch):
        a = torch.as_tensor(alphas[sl], dtype=torch.float32, device=x.device)[:, None, None]
        w = torch.as_tensor(weights[sl], dtype=torch.float32, device=x.device)[None, :, None, None]
        g = run.grads((base + a * diff).to(run.x.dtype))
        acc += (g * w).sum(dim=1)
        run.report(sl.stop / steps, f"integrated gradients: {sl.stop}/{steps} steps")
    return (diff[0] * acc).sum(-1)


def _grad_methods(run: _Runner, method: str) -> torch.Tensor:
    g = run.grads(run.x)[:, 0]  # [K, T, D]
    if method == "saliency":
        return g.abs().sum(-1)
    return (g * run.x.float()[0]).sum(-1)


def _occlusion(run: _Runner, fx: np.ndarray) -> np.ndarray:
    n = len(run.feats)
    masks = ~np.eye(n, dtype=bool)
    out = run.eval_masks(masks, "occlusion")
    return (fx[None, :] - out).T  # [K, n]


def _shapley(run: _Runner, n_samples: int, seed: int) -> np.ndarray:
    n = len(run.feats)
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(n) for _ in range(n_samples)])  # [S, n]
    masks = np.zeros((n_samples, n + 1, n), dtype=bool)
    for s in range(n_samples):
        for j in range(n):
            masks[s, j + 1:, perms[s, j]] = True
    vals = run.eval_masks(masks.reshape(-1, n), "Shapley sampling").reshape(n_samples, n + 1, -1)
    marg = np.diff(vals, axis=1)  # [S, n, K]: gain from adding perms[s, j]
    attr = np.zeros((vals.shape[-1], n), dtype=np.float64)
    for s in range(n_samples):
        attr[:, perms[s]] += marg[s].T
    return (attr / n_samples).astype(np.float32)


def _lime(run: _Runner, n_samples: int, seed: int) -> np.ndarray:
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime

    n = len(run.feats)
    k = run.f.num_targets

    def forward(mask):  # [B, n] float in {0, 1}
        return torch.as_tensor(run.eval_masks(mask.detach().cpu().numpy() > 0.5))  # no per-call progress

    out = np.zeros((k, n), dtype=np.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for j in range(k):
            lime = Lime(forward, interpretable_model=SkLearnRidge(alpha=1e-3))
            a = lime.attribute(torch.ones((1, n)), baselines=0.0, target=j, n_samples=n_samples,
                               perturbations_per_eval=run.batch)
            out[j] = a[0].detach().float().numpy()
            run.report((j + 1) / k, f"LIME: target {j + 1}/{k}")
    return out


def _permutation(run: _Runner, fx: np.ndarray, n_samples: int, seed: int) -> np.ndarray:
    n = len(run.feats)
    if n < 2:
        return np.zeros((run.f.num_targets, n), np.float32)
    rng = np.random.default_rng(seed)
    r = min(n_samples, n - 1)
    feats = torch.as_tensor(run.feats, device=run.x.device)
    src = []
    for i in range(n):
        others = np.delete(np.arange(n), i)
        src.append(rng.choice(others, size=r, replace=False))
    src = np.stack(src)  # [n, r] donor feature per (feature, sample)
    E = run.x.expand(n * r, -1, -1).clone()
    rows = torch.arange(n * r, device=E.device)
    tgt_pos = feats.repeat_interleave(r)
    E[rows, tgt_pos] = run.x[0, feats[torch.as_tensor(src.reshape(-1), device=E.device)]]
    out = run.eval_embeds(E, "permutation importance").reshape(n, r, -1)
    return (fx[None, :] - out.mean(axis=1)).T  # [K, n]


# ------------------------------------------------------------------------------------------------
# entry point


def _n_words(groups: list[int], special: np.ndarray) -> int:
    return len({g for g, sp in zip(groups, special) if not sp})


def groups_of_feats(session, trace, special) -> list[int]:
    """Word index of every token (special tokens are their own words)."""
    return _groups(session, trace.tokens, trace.word_ids, special)[0]


def _groups(session, tokens: list[str], word_ids: list, special: np.ndarray) -> tuple[list[int], list[str]]:
    groups, members, last = [], [], None
    for i, w in enumerate(word_ids if len(word_ids) == len(tokens) else [None] * len(tokens)):
        if w is None or special[i] or w != last or not members:
            members.append([i])
        else:
            members[-1].append(i)
        last = None if special[i] else w
        groups.append(len(members) - 1)
    labels = []
    for m in members:
        try:
            s = session.tokenizer.convert_tokens_to_string([tokens[i] for i in m])
        except Exception:
            s = "".join(tokens[i] for i in m)
        labels.append((s or tokens[m[0]]).replace("\n", "\u21b5").replace("\t", "\u21e5"))
    return groups, labels


def attribute(session, text: str, target: Any = None, *, method: str = "ig", contrast: Any = None,
              generate: int | None = None, baseline: Any = "auto", output: str | None = None,
              steps: int = 50, max_steps: int = 400, n_samples: int | None = None, seed: int = 0,
              internal_batch_size: int | None = None, truncate: bool = False,
              compute_faithfulness: bool = True, layer: int | None = None,
              report: Callable[[float, str], None] | None = None) -> AttributionResult:
    """Attribute a model output to the tokens of `text`.

    target: for a classifier, a class name or index (or a list of them; default: the predicted
      class); for a causal LM, a string / token id(s) to score as the continuation, or None with
      `generate=k` to greedily generate k tokens and attribute the log-prob of each (a [k x T]
      matrix); for any model, a callable taking the model output and returning a tensor [batch] or
      [batch, K]. contrast: a second class / token: explain "target rather than contrast"
      (difference of logits / log-probs).
    method: one of METHODS (aliases accepted). baseline: 'auto' (pad, else unk, else zero), 'pad',
      'unk', 'mask', 'zero' or a token id
      (special tokens always keep their embedding). output (classifiers): 'logit' (default), 'prob',
      'log_prob'. steps: IG steps (doubled up to max_steps while the relative completeness delta
      exceeds 5%). n_samples: permutations (shapley, default 25), perturbations (lime, 200), or
      donors per token (permutation, 8), the shap Partition explainer's evaluations (shap on more
      than 12 words, 500). layer: the block whose output layer Grad-CAM reads (default: the first;
      at the last block a classifier reads one position, so only that token has a gradient).
      method='lrp' explains the logit (AttnLRP conserves relevance of logits, not log-probs).
      report(fraction, label): progress callback.
    """
    method = ALIASES.get(method, method) if isinstance(method, str) else method
    if method not in METHODS:
        raise LLMWidgetsError(f"Unknown method {method!r}; use one of {sorted(METHODS)}.")
    steps, max_steps = integer(steps, "steps", low=1), integer(max_steps, "max_steps", low=1)
    seed = integer(seed, "seed", low=0)
    n_samples = integer(n_samples, "n_samples", low=1, allow_none=True)
    internal_batch_size = integer(internal_batch_size, "internal_batch_size", low=1, allow_none=True)
    if generate is not None:
        generate = integer(generate, "generate", low=1)
    trace = session.trace(text, truncate=truncate)
    enc, _, _ = session.encode(text, truncate=truncate)
    special = np.asarray(trace.special_mask if trace.special_mask is not None
                         else np.zeros(trace.num_tokens, bool), dtype=bool)
    feats = np.flatnonzero(~special)
    if feats.size == 0:
        raise EmptyInputError("The text has only special tokens: nothing to attribute.")
    report = report or (lambda frac, label="": None)
    report(0.0, "preparing")
    if method == "lrp" and session.kind == "decoder" and output is None:
        output = "logit"
    f = build_objective(session, enc, target, contrast=contrast, generate=generate, output=output)
    if layer is not None:
        layer = session.adapter.check_layer(layer)
    base, base_desc = baseline_embeddings(f, special, baseline)
    T = enc["input_ids"].shape[1] + (0 if f.suffix is None else f.suffix.shape[1])
    grad = method in ("ig", "grad_x_input", "saliency", "gradcam", "attention_gradcam", "lrp")
    batch = internal_batch_size or auto_batch_size(session, T, f.num_targets, grad)
    run = _Runner(f, base, feats, batch, None)
    with torch.no_grad():
        ends = f(torch.cat([f.x, base]))
    _check_finite(ends, "target outputs")
    fx, fbase = ends[0].cpu().numpy(), ends[1].cpu().numpy()

    used_steps, samples, notice = 0, 0, ""
    k_targets = f.num_targets
    scores = np.zeros((k_targets, trace.num_tokens), np.float32)
    work_share = 0.8 if compute_faithfulness else 1.0
    run.report = lambda frac, label="": report(work_share * frac, label)
    if method == "ig":
        used_steps = steps
        while True:
            s = _ig(run, used_steps).cpu().numpy()
            rel = np.nan_to_num(completeness(s, fx, fbase)[1], nan=0.0).max()
            if rel <= MAX_RELATIVE_DELTA or used_steps >= max_steps:
                break
            used_steps = min(max_steps, used_steps * 2)
        if used_steps != steps:
            notice = f"IG steps raised from {steps} to {used_steps} to bring the completeness delta under 5%."
        if rel > MAX_RELATIVE_DELTA:
            notice = (f"IG completeness delta is still {rel:.0%} of f(x) \u2212 f(baseline) at {used_steps} "
                      "steps: read these scores with care (try another baseline).")
        scores = s
    elif method in ("grad_x_input", "saliency"):
        scores = _grad_methods(run, method).cpu().numpy()
    elif method == "gradcam":
        layer = 0 if layer is None else layer
        scores = layer_gradcam(f, f.x, layer).cpu().numpy()
        notice = f"Grad-CAM at the output of block {layer}."
        if np.abs(scores).max() < 1e-3 * max(1.0, float(np.abs(fx).max())):
            notice += (" It is ~0 here: a LayerNorm after this block makes its gradient mean-free over the "
                       "features, so mean gradient x summed activation vanishes. Try attention_gradcam or lrp.")
    elif method == "attention_gradcam":
        scores = attention_gradcam(f, f.x).cpu().numpy()
    elif method == "lrp":
        with model_lock(session.model), attn_lrp_rules(session.model):
            g = run.grads(run.x)[:, 0]  # [K, T, D] relevance per unit of input
        scores = (g * run.x.float()[0]).sum(-1).cpu().numpy()
        total = scores.sum(-1)
        conservation = np.abs(total - fx) / np.maximum(np.abs(fx), 1e-6)
        notice = ("AttnLRP conservation: input relevance sums to "
                  + ", ".join(f"{a:.3g} of {b:.3g}" for a, b in zip(total, fx))
                  + f" ({conservation.max():.1%} apart; biases and the epsilon absorb the rest).")
    elif method == "shap" and _n_words(groups_of_feats(session, trace, special), special) > MAX_EXACT_WORDS:
        if session.class_labels is None or callable(target) or contrast is not None:
            raise LLMWidgetsError(f"SHAP on more than {MAX_EXACT_WORDS} words uses the shap library's Partition "
                                  "explainer, which explains class logits of a classifier here; for this target "
                                  "use method='shapley' (sampling).")
        samples = n_samples or 500
        fs, _ = partition_shap(session, text, list(f.ids), samples, seed, run.report)
        if fs.shape[1] != trace.num_tokens:
            raise LLMWidgetsError("The shap text masker split the text into other tokens than the model's "
                                  f"({fs.shape[1]} vs {trace.num_tokens}); use method='shapley'.")
        scores = fs
        notice = "SHAP values from the shap library's Partition explainer (masking with the mask token)."
    else:
        if method == "occlusion":
            fs = _occlusion(run, fx)
        elif method == "shapley":
            samples = n_samples or 25
            fs = _shapley(run, samples, seed)
        elif method == "shap":
            fs = exact_shap(run, groups_of_feats(session, trace, special))
            notice = "Exact Shapley values over words (every coalition evaluated)."
        elif method == "lime":
            samples = n_samples or 200
            fs = _lime(run, samples, seed)
        else:
            samples = n_samples or 8
            fs = _permutation(run, fx, samples, seed)
        scores[:, feats] = fs
    scores = np.asarray(scores, np.float32)
    scores[:, special] = 0.0
    if not np.isfinite(scores).all():
        raise NonFiniteError("The attribution produced non-finite values; with float16 weights load "
                             "the model with dtype='float32'.")
    faith = None
    if compute_faithfulness:
        run.report = lambda frac, label="": report(work_share + (1 - work_share) * frac, "faithfulness")
        faith = faithfulness(lambda m: run.eval_masks(m, "faithfulness"), scores[:, feats], fx, fbase,
                             seed=seed)
    report(1.0, "done")
    groups, group_labels = _groups(session, trace.tokens, trace.word_ids, special)
    return AttributionResult(
        tokens=list(trace.tokens), labels=list(trace.labels), scores=scores, targets=list(f.names),
        target_ids=[int(i) for i in f.ids], method=method, baseline=base_desc, output=f.output,
        steps=used_steps, n_samples=samples, faithfulness=faith, special_mask=special, groups=groups,
        group_labels=group_labels, generated=session.kind == "decoder" and not callable(target)
        and target is None and contrast is None, contrast=f.contrast,
        notice=" ".join(x for x in (trace.notice, notice) if x), input_ids=np.asarray(trace.input_ids),
        output_values=np.asarray(fx, np.float32), base_values=np.asarray(fbase, np.float32))
