"""The views' computations on the nnsight backend: each builds its requests (`nnsight_requests`),
sends them through `NnsightBackend.request`, and builds the same result objects as the native path
(llm_widgets.compute.*), with the same checks and the same arithmetic on the same tensors.

Round trips per view (a request is one trace):
- trace: 1 (hidden states, logits, and the post-rotary queries / keys of every attention call,
  read inside transformers' attention function through nnsight's `.source`),
- neuron activations: 1; ablation_effect: 1 (the intact and ablated runs are two rows of one batch),
- logit lens: 1 (the readout runs on the server; top-k come back, not [L, T, V] logits),
- activation patching: 1 when `answers` are given, else 2 (the clean / corrupted logits first, to
  pick the answers), as long as the sweep fits one batch (`batch_size` rows: the clean run is row 0,
  every patched run a row, patched from row 0 as the forward reaches each site),
- probing: 1 per `batch_size` texts (pooled on the server),
- attribution: 1 for the input embeddings, 1 for the baseline's, 1 for f(x) and f(baseline), then
  1 per batch of IG steps / perturbations (gradients: K copies of the batch, one backward pass).
"""
from __future__ import annotations

import inspect
from types import SimpleNamespace

import numpy as np
import torch

from ..checks import integer, names
from ..errors import LLMWidgetsError
from . import nnsight_requests as rq
from .nnsight_backend import BackendUnsupportedError, Cost, envoy_path


def _backend(session):
    return session.backend


def _keeps_logits(session) -> bool:
    """The model's forward takes `logits_to_keep` (read from its class: nnsight replaces the
    instance's forward)."""
    try:
        return "logits_to_keep" in inspect.signature(type(session.model).forward).parameters
    except (TypeError, ValueError):
        return False


def _path(ref) -> str:
    return envoy_path(ref.path)


# -- trace --------------------------------------------------------------------------------------------
REMOTE_LOGITS_MAX_VALUES = 1 << 22  # [T, V] logits a remote trace sends back (16 MB); views read what they need
def build_trace(session, text: str, truncate: bool = False):
    """Session.trace through nnsight: one request."""
    from ..compute.attention_source import CapturedAttention, _call_of
    from ..trace import _LOGITS_MAX_VALUES, Trace, _to_numpy

    be = _backend(session)
    enc, truncated, notice = session.encode(text, truncate=truncate)
    max_logits = REMOTE_LOGITS_MAX_VALUES if be.remote else _LOGITS_MAX_VALUES
    got = be.request("trace", rq.trace, {**enc, "output_hidden_states": True}, be.attention, max_logits)
    ids = enc["input_ids"][0].cpu()
    tokens = session.tokenizer.convert_ids_to_tokens(ids.tolist())
    try:
        word_ids = session.tokenizer(text, truncation=truncated,
                                     max_length=session.max_length if truncated else None).word_ids(0)
    except Exception:
        word_ids = [None] * len(tokens)
    special = np.array([i in set(session.tokenizer.all_special_ids) for i in ids.tolist()])
    source = None
    if got["attention"] is not None:
        calls = []
        for c in got["attention"]:
            a = {"query": c["query"][None], "key": c["key"][None],
                 "attention_mask": None if c["mask"] is None else c["mask"][None], "is_causal": c["is_causal"],
                 "position_bias": None if c["bias"] is None else c["bias"][None], "scaling": c["scaling"],
                 "kwargs": {"softcap": c["softcap"], "s_aux": c["sinks"]}}
            calls.append(_call_of(SimpleNamespace(is_causal=c["is_causal"]), a))
        source = CapturedAttention(calls)
    trace = Trace(
        text=text, raw_tokens=tokens, tokens=session.readable_tokens(tokens), input_ids=ids.numpy(),
        attentions=None, hidden_states=_to_numpy(got["hidden"], "hidden states"),
        logits=None if got["logits"] is None else _to_numpy(got["logits"], "logits"),
        word_ids=list(word_ids), special_mask=special, truncated=truncated, notice=notice,
        attention_note="" if source is not None else f"Attention through nnsight: {be.attention_note}.")
    trace.attention = source
    return trace


# -- neurons ------------------------------------------------------------------------------------------
def neuron_activations(session, text: str, *, truncate: bool = False):
    from ..compute.neurons import NeuronResult

    ad = session.adapter
    ad.require("neurons")
    enc, _, _ = session.encode(text, truncate=truncate)
    T = enc["input_ids"].shape[1]
    paths = [_path(ad.site("neurons", layer)) for layer in range(ad.n_layers)]
    got = _backend(session).request("neurons", rq.inputs_of, enc, paths, T)
    stacked = np.stack([a[0].float().cpu().numpy() for a in got])
    tokens = session.readable_tokens(session.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist()))
    return NeuronResult(tokens=tokens, activations=stacked)


# -- ablation -----------------------------------------------------------------------------------------
def ablation_effect(session, text: str, heads=(), neurons=(), mode: str = "zero", position: int = -1, k: int = 10):
    from ..compute.ablation import AblationEffect, _check_units, num_neurons
    from ..compute.hooks import output_names

    session.adapter.require("interventions")
    k = integer(k, "k", low=1)
    if mode not in ("zero", "mean"):
        raise LLMWidgetsError(f"mode must be 'zero' or 'mean', got {mode!r}")
    if session.adapter.output is None:
        raise LLMWidgetsError(f"{session.name} has no output head (no logits): there are no output "
                              f"probabilities to compare. Use a causal LM or a classifier.")
    ad = session.adapter
    dh = ad.head_dim
    heads = _check_units(session, heads, "heads", lambda l: session.n_heads)
    neurons = _check_units(session, neurons, "neurons", lambda l: num_neurons(session, l))
    by_site: dict = {}
    for layer, hd in heads:
        by_site.setdefault(("heads", layer), []).extend(range(hd * dh, (hd + 1) * dh))
    for layer, n in neurons:
        by_site.setdefault(("neurons", layer), []).append(n)
    order = _backend(session).order
    edits = [(_path(ad.site(s, l)), torch.tensor(sorted(set(cols))), mode)
             for (s, l), cols in sorted(by_site.items(), key=lambda kv: (kv[0][1], order.get(kv[0][0], 0)))]
    enc, _, _ = session.encode(text)
    two = {key: v.expand(2, *v.shape[1:]) for key, v in enc.items()}
    lg = _backend(session).request("ablation", rq.ablation, two, edits, position, False)
    before, after = torch.softmax(lg[0], -1), torch.softmax(lg[1], -1)
    order_ = torch.argsort((after - before).abs(), descending=True)[:k].tolist()
    return AblationEffect(outputs=output_names(session, order_), ids=order_, before=before[order_].cpu().numpy(),
                          after=after[order_].cpu().numpy(), position=position)


# -- logit lens ---------------------------------------------------------------------------------------
def _lens(session, text, truncate, k, full):
    ad = session.adapter
    ad.require("logit_lens")
    enc, _, _ = session.encode(text, truncate=truncate)
    blocks = [_path(b) for b in ad.blocks]
    norms = [envoy_path(p) for p in ad.final_norm]
    got = _backend(session).request("logit lens", rq.logit_lens, enc, blocks, norms, envoy_path(ad.head),
                                    float(ad.logit_scale), ad.softcap, enc["input_ids"][0].cpu(), k, full)
    return enc, got


def lens_logits(session, text: str, *, truncate: bool = False) -> torch.Tensor:
    return _lens(session, text, truncate, 1, True)[1]


def logit_lens(session, text: str, *, k: int = 5, truncate: bool = False):
    from ..compute.hooks import output_names
    from ..compute.logit_lens import LogitLensResult

    k = integer(k, "k", low=1)
    enc, got = _lens(session, text, truncate, k, False)
    top_i = got["top_i"]
    vocab_ids = sorted(set(top_i.flatten().tolist()))
    where = {v: j for j, v in enumerate(vocab_ids)}
    index = np.vectorize(where.__getitem__, otypes=[np.int32])(top_i.cpu().numpy())
    n = top_i.shape[0] - 1
    tokens = session.readable_tokens(session.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist()))
    return LogitLensResult(tokens=tokens, layer_names=["embeddings"] + [f"layer {l}" for l in range(n)],
                           top_tokens=output_names(session, vocab_ids), top_index=index,
                           top_probs=got["top_p"].cpu().numpy(), next_prob=got["next"].numpy())


# -- probing activations ------------------------------------------------------------------------------
def _base_path(session) -> str:
    model = session.model
    base = getattr(model, "base_model", model)
    if base is model:
        return ""
    for name, mod in model.named_modules():
        if mod is base:
            return envoy_path(name)
    return ""


def _padded(session, encs, chunk, keys):
    width = max(len(encs[i]["input_ids"]) for i in chunk)
    pad_id = session.tokenizer.pad_token_id or 0
    batch = {}
    for key in keys:
        fill = pad_id if key == "input_ids" else 0
        batch[key] = torch.tensor([list(encs[i][key]) + [fill] * (width - len(encs[i][key])) for i in chunk],
                                  device=session.device)
    if "attention_mask" not in batch:
        batch["attention_mask"] = torch.tensor(
            [[1] * len(encs[i]["input_ids"]) + [0] * (width - len(encs[i]["input_ids"])) for i in chunk],
            device=session.device)
    return batch, width


def _chunks(encs, batch_size):
    keys = [k for k in ("input_ids", "attention_mask") if k in encs[0]]
    if any(any(e.get("token_type_ids") or []) for e in encs):
        keys.append("token_type_ids")
    order = sorted(range(len(encs)), key=lambda i: len(encs[i]["input_ids"]))
    return keys, [order[s:s + batch_size] for s in range(0, len(order), batch_size)]


def _states(session, batch, how, select, step, report):
    inputs = {**batch, "output_hidden_states": True}
    return _backend(session).request("hidden states", rq.hidden_states, inputs, _base_path(session), how, select,
                                     report=report, step=step)


def token_states(session, texts, *, batch_size: int = 32, truncate: bool = False):
    from ..compute.activations import _encode_all, check_texts

    texts = check_texts(texts)
    encs = _encode_all(session, texts, truncate)
    keys, chunks = _chunks(encs, batch_size)
    out: list = [None] * len(texts)
    for j, chunk in enumerate(chunks):
        batch, _ = _padded(session, encs, chunk, keys)
        hs = _states(session, batch, "all", None, (j, len(chunks)), None)
        for b, i in enumerate(chunk):
            n = len(encs[i]["input_ids"])
            special = np.asarray(list(encs[i].get("special_tokens_mask") or [0] * n), dtype=bool)
            out[i] = (hs[:, b, :n].cpu().numpy(), special)
    return out


def extract(session, texts, labels=None, *, level: str = "sentence", pooling: str = "mean", batch_size: int = 32,
            truncate: bool = False, report=None):
    """compute.activations.extract through nnsight: one request per batch, pooled (sentence level) or
    the labelled tokens' rows picked (token level) on the server."""
    from ..compute.activations import Activations, _encode_all, _row_plan, check_labels, check_texts
    from ..errors import NonFiniteError
    from ..compute.progress import no_progress

    report = report or no_progress
    texts = check_texts(texts)
    labels = check_labels(texts, labels, level)
    if pooling not in ("mean", "first"):
        raise LLMWidgetsError(f"pooling must be 'mean' or 'first', got {pooling!r}")
    if batch_size < 1:
        raise LLMWidgetsError(f"batch_size must be >= 1, got {batch_size}")
    encs = _encode_all(session, texts, truncate)
    text_index, token_index, types, row_labels, tokens = _row_plan(session, texts, encs, labels, level)
    if level == "token" and len(text_index) == 0:
        raise LLMWidgetsError("No labelled tokens: every word label is None.")
    rows_of = {}
    for r, (i, j) in enumerate(zip(text_index, token_index)):
        rows_of.setdefault(int(i), []).append((r, int(j)))
    keys, chunks = _chunks(encs, batch_size)
    states = None
    done = 0
    for step, chunk in enumerate(chunks):
        batch, width = _padded(session, encs, chunk, keys)
        if level == "sentence":
            mask = torch.zeros(len(chunk), width)
            for b, i in enumerate(chunk):
                special = list(encs[i].get("special_tokens_mask") or [0] * len(encs[i]["input_ids"]))
                keep = [1.0 - s for s in special] if pooling == "mean" else [1.0] + [0.0] * (len(special) - 1)
                if sum(keep) == 0:
                    keep = [1.0] * len(special)
                mask[b, :len(keep)] = torch.tensor(keep)
            got = _states(session, batch, "pool", mask, (step, len(chunks)), None)
            r_idx = list(chunk)
        else:
            b_idx, t_idx, r_idx = [], [], []
            for b, i in enumerate(chunk):
                for r, j in rows_of.get(i, []):
                    b_idx.append(b)
                    t_idx.append(j)
                    r_idx.append(r)
            if not r_idx:
                continue
            got = _states(session, batch, "rows", (torch.tensor(b_idx), torch.tensor(t_idx)),
                          (step, len(chunks)), None)
        if states is None:
            states = np.zeros((got.shape[0], len(text_index), got.shape[-1]), dtype=np.float32)
        states[:, r_idx] = got.cpu().numpy()
        done += len(chunk)
        report(done / len(texts), f"hidden states {done}/{len(texts)} texts ({step + 1}/{len(chunks)} requests)")
    if not np.isfinite(states).all():
        raise NonFiniteError("The model produced NaN/inf hidden states; with float16 try "
                             "dtype='float32' (or 'bfloat16').")
    return Activations(states, level, texts, tokens, text_index, token_index, types, row_labels)


# -- activation patching -------------------------------------------------------------------------------
PATCH_ROWS = 1024  # most rows (patched runs) per request when the memory budget allows
REMOTE_PATCH_ROWS = 2048  # ... when it runs elsewhere (unmeasured here; a forward without gradients keeps ~1
# layer of activations per row, and the logits are kept at one position only)


def patch_rows(session, n_tokens: int, batch_size: int | None) -> int:
    from ..compute.budget import batch_size_for

    if batch_size is not None:
        return batch_size
    if not _backend(session).weights_here:
        return REMOTE_PATCH_ROWS
    return batch_size_for(session, n_tokens, cap=PATCH_ROWS)


def patching(session, clean: str, corrupted: str, *, metric="logit_diff", answers=None, position: int = -1,
             sites=None, per_head: bool = True, batch_size: int | None = None, k: int = 5, report=None):
    """compute.patching.patching through nnsight: every patched run is a row of one batch whose row 0
    is the clean input; each site is patched from row 0 as the forward reaches it. The metric and
    top-k are computed on the server (a callable metric gets the logits back)."""
    from ..compute.hooks import SITES, available_sites
    from ..compute.patching import METRICS, _answer_id, encode_pair, make_metric, patching_result

    sites = available_sites(session.model) if sites is None else tuple(names(sites, "sites"))
    batch_size = integer(batch_size, "batch_size", low=1, allow_none=True)
    k = integer(k, "k", low=1)
    position = integer(position, "position")
    for s in sites:
        if s not in SITES:
            raise LLMWidgetsError(f"unknown site {s!r}; use any of {SITES}")
    if not callable(metric) and metric not in METRICS:
        raise LLMWidgetsError(f"metric must be one of {METRICS} or a function of the logits [B, V] -> [B]; "
                              f"got {metric!r}")
    be = _backend(session)
    ad = session.adapter
    ad.require("patching")
    L, H, dh = ad.n_layers, ad.n_heads, ad.head_dim
    ec, ex = encode_pair(session, clean, corrupted)
    T = ex["input_ids"].shape[1]
    pos = position if position >= 0 else T + position
    if not 0 <= pos < T:
        raise LLMWidgetsError(f"position {position} is outside the {T} tokens")
    kept = _keeps_logits(session)
    extra = {"logits_to_keep": torch.tensor([pos], device=ex["input_ids"].device)} if kept else {}

    def rows_of(n):  # row 0 clean, then n corrupted
        return {key: torch.cat([ec[key], ex[key].expand(n, *ex[key].shape[1:])]) for key in ec}

    patches = [(s, l, p) for s in sites for l in range(L) for p in range(T)]
    if per_head:
        patches += [("heads", l, hd) for l in range(L) for hd in range(H)]
    per = patch_rows(session, T, batch_size)
    chunks = [list(range(i, min(i + per, len(patches)))) for i in range(0, len(patches), per)]
    n_req = len(chunks) + (answers is None and not callable(metric))
    spec, lc, lx, step = None, None, None, 0
    if answers is None and not callable(metric):  # the answers are the clean and corrupted predictions
        ends = be.request("patching: clean and corrupted", rq.output_logits, {**rows_of(1), **extra}, pos, kept,
                          report=report, step=(0, n_req))
        lc, lx, step = ends[0:1], ends[1:2], 1
    if not callable(metric):
        if answers is None:
            a, b = int(lc[0].argmax()), int(lx[0].argmax())
            ids = [a, b] if a != b else [a]
            kind = "prob" if metric == "logit_diff" and a == b else metric
        else:
            ids = [_answer_id(session, x) for x in ([answers] if isinstance(answers, (str, int)) else list(answers))]
            kind = metric
            if kind == "logit_diff" and len(ids) != 2:
                raise LLMWidgetsError("metric='logit_diff' needs answers=(correct, wrong): two outputs")
        spec = (kind, *ids[:2]) if kind == "logit_diff" else (kind, ids[0])

    if lc is not None:
        fn, name = make_metric(session, metric, answers, lc[0], lx[0])
        m_clean, m_corr = float(fn(lc)[0]), float(fn(lx)[0])
        _check_difference(name, m_clean, m_corr)

    order = be.order
    values = np.empty(len(patches), dtype=np.float64)
    tops_p, tops_i = None, None
    done = 0
    for c, idx in enumerate(chunks):
        ends = lc is None and c == 0  # row 1: the corrupted run, unpatched
        first = 2 if ends else 1
        groups: dict = {}
        for j, pi in enumerate(idx):
            s, l, i = patches[pi]
            groups.setdefault((s, l), []).append((first + j, i))
        plan = []
        for (s, l), items in sorted(groups.items(), key=lambda kv: (kv[0][1], order.get(kv[0][0], 0))):
            rows = torch.tensor([r for r, _ in items])
            where = "in" if s == "heads" else "out"
            if s == "heads":
                plan.append((_path(ad.site(s, l)), where, rows, None, [(i * dh, (i + 1) * dh) for _, i in items]))
            else:
                plan.append((_path(ad.site(s, l)), where, rows, torch.tensor([i for _, i in items]), None))
        n_rows = len(idx) + first - 1
        got = be.request("patching sweep", rq.patch, {**rows_of(n_rows), **extra}, plan, pos, kept, spec, k, T,
                         ends, report=report, step=(step + c, n_req))
        if ends:
            lc, lx = got["ends"][0:1], got["ends"][1:2]
            fn, name = make_metric(session, metric, answers, lc[0], lx[0])
            m_clean, m_corr = float(fn(lc)[0]), float(fn(lx)[0])
            _check_difference(name, m_clean, m_corr)
        vals = got["values"][first:]
        if spec is None:  # a custom metric, on the returned logits
            vals = fn(vals.float()).double()
        values[idx] = vals.cpu().numpy()
        if tops_p is None:
            kk = got["top_p"].shape[-1]
            tops_p, tops_i = torch.empty(len(patches), kk), torch.empty(len(patches), kk, dtype=torch.long)
        tops_p[idx] = got["top_p"][first:].cpu()
        tops_i[idx] = got["top_i"][first:].cpu()
        done += len(idx)

    kk = min(k, int(lx.shape[-1]))
    return patching_result(session, ec, ex, sites, L, H, T, per_head, values, tops_p, tops_i, kk, lc, lx,
                           m_clean, m_corr, name, pos)


def _check_difference(name, m_clean, m_corr):
    if abs(m_clean - m_corr) < 1e-6:
        raise LLMWidgetsError(f"{name} is the same on clean ({m_clean:.4g}) and corrupted ({m_corr:.4g}) inputs: "
                              f"there is no difference for patching to restore. Pick inputs or answers "
                              f"that the model treats differently.")


def patching_cost(session, n_tokens: int, *, sites=None, per_head=True, batch_size=None, answers=True, k=5) -> Cost:
    """Requests, rows and bytes returned of a patching sweep (before running it)."""
    ad = session.adapter
    n_sites = len(ad.sites if sites is None else tuple(sites))
    n = n_sites * ad.n_layers * n_tokens + (ad.n_layers * ad.n_heads if per_head else 0)
    per = patch_rows(session, n_tokens, batch_size)
    req = -(-n // per) + (0 if answers else 1)
    rows = n + -(-n // per) + 1
    return Cost(requests=req, forward_rows=rows, tokens=n_tokens, bytes_returned=rows * (8 + 12 * k),
                parameters=_backend(session).parameters())


# -- attribution ---------------------------------------------------------------------------------------
from ..compute.attribution.objective import Objective as _Objective  # noqa: E402
from ..compute.attribution.runner import Runner as _Runner  # noqa: E402

GRADIENT_METHODS = ("ig", "grad_x_input", "saliency")
FORWARD_METHODS = ("occlusion", "shapley", "lime", "permutation", "shap")


class Runner(_Runner):
    """Runner whose gradients come from one request per batch: K copies of the batch (one per
    target) and one backward pass on the server."""

    def grads(self, E: torch.Tensor) -> torch.Tensor:
        f = self.f
        k = f.num_targets
        b = E.shape[0]
        got = f.session.backend.request("attribution gradients", rq.gradients, f.inputs(b), f.block_path,
                                        E.to(f.dtype), f.suffix, f.spec, f.head_cut if k > 1 else None, grad=True)
        from ..compute.attribution.runner import check_finite

        check_finite(got["values"], "target outputs")
        return got["grads"]


class Objective(_Objective):
    """f(E) through nnsight: the first block's input replaced by E inside the trace, the targets
    computed from the model output there (`nnsight_requests._targets`, from `spec`)."""

    runner = Runner

    def __init__(self, session, enc, spec, names_, ids, output, suffix_ids=None, contrast=None, forward=None):
        self.spec = spec
        self.forward_kwargs = dict(forward or {})
        self.block_path = envoy_path(session.adapter.blocks[0].path)
        self.head_cut = None  # (head path, target positions): two-stage gradients, as Runner._split_grads
        super().__init__(session, enc, None, names_, ids, output, suffix_ids=suffix_ids, contrast=contrast)

    def inputs(self, b: int, **over) -> dict:
        return {**self._kwargs(b, **over), **self.forward_kwargs}

    def capture(self, **inputs) -> torch.Tensor:
        return self.session.backend.request("attribution: embeddings", rq.first_input, self._kwargs(1, **inputs),
                                            self.block_path)

    def word_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        path = envoy_path(_module_path(self.session.model, self.session.model.get_input_embeddings()))
        return self.session.backend.request("attribution: word embeddings", rq.first_output,
                                            self._kwargs(ids.shape[0], input_ids=ids), path)

    def __call__(self, E, cut=None, *, extra=None, watch=()):
        if cut is not None or extra or watch:
            raise BackendUnsupportedError("this attribution method reads activations or attention weights with "
                                          "torch hooks; through the nnsight backend use one of "
                                          f"{GRADIENT_METHODS + FORWARD_METHODS}.")
        out = self.session.backend.request("attribution: f(E)", rq.targets, self.inputs(E.shape[0]),
                                           self.block_path, E.to(self.dtype), self.suffix, self.spec)
        return out.float()


def _module_path(model, module) -> str:
    for name, mod in model.named_modules():
        if mod is module:
            return name
    raise LLMWidgetsError("could not find the input embeddings in the model's module tree")


def _next_tokens(session, input_ids, k: int) -> list[int]:
    """objective.greedy_generate through nnsight: one request per generated token."""
    ids, out = input_ids, []
    limit = session.max_length
    kept = _keeps_logits(session)
    for step in range(k):
        if limit is not None and ids.shape[1] >= limit:
            break
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), **({"logits_to_keep": 1} if kept else {})}
        lg = session.backend.request("generate", rq.output_logits, inputs, -1, kept, step=(step, k))
        nxt = int(lg[0].argmax())
        out.append(nxt)
        ids = torch.cat([ids, torch.tensor([[nxt]], device=ids.device)], dim=1)
    return out


def build_objective(session, enc, target=None, *, contrast=None, generate=None, output=None):
    """compute.attribution.objective.build_objective through nnsight (the same targets, checks and
    names; the model runs only inside requests)."""
    from ..compute.attribution.objective import class_targets, decoder_targets

    kind = session.kind
    if kind == "encoder-decoder":
        raise LLMWidgetsError("Attribution supports classifiers, causal LMs and encoders with a "
                              "callable target; encoder-decoder models are not supported yet.")
    if callable(target) and not isinstance(target, (str, int)):
        name = getattr(target, "__name__", "custom")
        name = "custom" if name == "<lambda>" else name
        spec = {"kind": "custom", "fn": target}
        f = Objective(session, enc, spec, [name], [-1], "custom")
        try:
            probe = f(f.x)
        except BackendUnsupportedError:
            raise
        except Exception as e:
            raise LLMWidgetsError("A callable target must return a tensor [batch] or [batch, K] computed "
                                  f"from the model output (with gradients); it raised {type(e).__name__}: {e}") from e
        k = probe.shape[-1]
        f.names, f.ids = ([name] if k == 1 else [f"{name}[{i}]" for i in range(k)]), [-1] * k
        return f

    if kind == "decoder":
        tgt, output, other = decoder_targets(session, enc, target, contrast, generate, output, _next_tokens)
        k = len(tgt)
        T = enc["input_ids"].shape[1]
        tgt_t = torch.tensor(tgt)
        kept = _keeps_logits(session)
        spec = {"kind": "decoder", "kept": kept, "positions": torch.arange(T - 1, T - 1 + k), "output": output,
                "ids": tgt_t, "other": other}
        labels = session.readable_tokens(session.tokenizer.convert_ids_to_tokens(tgt))
        cname = None
        if other is not None:
            cname = session.readable_tokens(session.tokenizer.convert_ids_to_tokens([other]))[0]
            labels = [f"{labels[0]} \u2212 {cname}"]
        f = Objective(session, enc, spec, labels, tgt, output, suffix_ids=tgt_t[:-1].to(session.device),
                      contrast=cname, forward={"logits_to_keep": k} if kept else {})
        head = session.model.get_output_embeddings()
        if head is not None and other is None:
            f.head_cut = (envoy_path(_module_path(session.model, head)),
                          list(range(k)) if kept else [T - 1 + j for j in range(k)])
        return f

    def predicted() -> int:
        lg = session.backend.request("attribution: prediction", rq.output_logits, dict(enc), None, False)
        return int(lg[0].argmax())

    labels, classes, other, output = class_targets(session, target, contrast, generate, output, predicted)
    spec = {"kind": "classes", "output": output, "ids": classes, "other": other}
    names_ = [labels[c] for c in classes]
    if other is not None:
        names_ = [f"{names_[0]} \u2212 {labels[other]}"]
    return Objective(session, enc, spec, names_, classes, output, contrast=labels[other] if other is not None else None)


def attribution_cost(session, n_tokens: int, method, *, n_targets: int = 1, steps: int = 50, n_samples=None,
                     n_features: int | None = None, batch: int = 64, faithfulness: bool = True) -> Cost:
    """Requests, rows forward / backward and bytes returned of one attribution (first IG pass)."""
    ad = session.adapter
    n = n_features if n_features is not None else n_tokens
    fwd, back, back_bytes = 3, 0, 0
    if method.key == "ig":
        back = steps * n_targets
        back_bytes = back * n_tokens * ad.d_model * 4
    elif method.key in ("grad_x_input", "saliency"):
        back = n_targets
        back_bytes = back * n_tokens * ad.d_model * 4
    elif method.key == "occlusion":
        fwd += n
    elif method.key == "shapley":
        fwd += (n_samples or 25) * (n + 1)
    elif method.key == "lime":
        fwd += (n_samples or 200) * n_targets
    elif method.key == "permutation":
        fwd += n * min(n_samples or 8, max(1, n - 1))
    elif method.key == "shap":
        fwd += 2 ** min(n, 12)
    if faithfulness:
        fwd += 2 * n + 2
    reqs = 3 + -(-(fwd - 3) // max(1, batch)) + (-(-back // max(1, batch)) if back else 0)
    return Cost(requests=reqs, forward_rows=fwd + back, backward_rows=back, tokens=n_tokens,
                bytes_returned=back_bytes + fwd * n_targets * 4 + 2 * n_tokens * ad.d_model * 4,
                parameters=_backend(session).parameters())


def check_method(session, method, *, n_tokens: int, n_targets: int, steps: int, n_samples, n_words: int) -> None:
    """Refuse attribution methods the backend does not express as traces, and remote runs whose
    estimated cost is above REMOTE_LIMITS, with the estimate."""
    if method.key not in GRADIENT_METHODS + FORWARD_METHODS:
        cost = attribution_cost(session, n_tokens, method, n_targets=n_targets, steps=steps)
        why = {"lrp": "AttnLRP replaces the backward rules of every norm and attention module (torch hooks and "
                      "patched forwards)",
               "gradcam": "Grad-CAM reads a block's activations and their gradients with torch hooks",
               "attention_gradcam": "attention Grad-CAM needs eager attention weights of every layer and their "
                                    "gradients ([L, H, T, T] twice)"}.get(method.key, "it runs the model directly")
        raise BackendUnsupportedError(
            f"method={method.key!r} does not run through the nnsight backend: {why}. It would take at least "
            f"{n_targets} backward pass(es) with {session.n_layers} x [{session.n_heads}, {n_tokens}, {n_tokens}] "
            f"attention weights kept ({cost}). Use one of {GRADIENT_METHODS + FORWARD_METHODS}, or "
            f"backend='native' on a local model.")
    if method.key == "shap" and n_words > 12:
        raise BackendUnsupportedError("method='shap' on more than 12 words uses the shap library's Partition "
                                      "explainer, which calls the model itself; through the nnsight backend use "
                                      "method='shapley' (sampling) or a text of at most 12 words.")
    be = _backend(session)
    be.check_cost(f"method={method.key!r}", attribution_cost(session, n_tokens, method, n_targets=n_targets,
                                                             steps=steps, n_samples=n_samples))
