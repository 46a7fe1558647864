"""The target function f(E): embedding-layer outputs of the prompt -> the K outputs to explain."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ...adapter import CallHook
from ...checks import one_token
from ...errors import EmptyInputError, LLMWidgetsError
from ...execution import Program, ops, run
from ...guards import model_lock
from ..answers import Teacher, answer_name, answer_tokens, teacher
from ..outputs import keeps_logits


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
        self.multi_position = False  # an output sums reads at several positions (a multi-token answer)
        self.block = session.adapter.blocks[0]  # the first block (call 0 of a shared one)
        self.T = enc["input_ids"].shape[1]
        # suffix_ids: the tokens appended to the prompt ([S]), or per copy ([R, S]: R copies of the
        # prompt run per input, copy-major, each with its own teacher-forced answer; see answers.py)
        suffixes = None if suffix_ids is None or not suffix_ids.numel() else \
            (suffix_ids if suffix_ids.dim() == 2 else suffix_ids[None])
        self.copies = 1 if suffixes is None else suffixes.shape[0]
        ids_all = enc["input_ids"].expand(self.copies, -1)
        if suffixes is not None:
            ids_all = torch.cat([ids_all, suffixes.to(ids_all.device)], dim=1)
        self.ids_all = ids_all  # [R, T_full]
        self.ids_full = ids_all[:1]  # copy 0 (its prompt positions are every copy's)
        self.extra = {k: v for k, v in enc.items() if k == "token_type_ids" and ids_all.shape[1] == self.T}
        full = torch.cat([self.capture(input_ids=ids_all[r:r + 1]) for r in range(self.copies)])  # [R, T_full, D]
        self.x, self.suffix = full[:1, :self.T], (full[:, self.T:] if full.shape[1] > self.T else None)
        self.dtype = self.x.dtype

    @property
    def num_targets(self) -> int:
        return len(self.names)

    def _kwargs(self, b: int, **over) -> dict:
        """The model's keyword arguments for b inputs (every copy of each, unless `over` gives the input)."""
        mine = "input_ids" not in over and "inputs_embeds" not in over
        ids = self.ids_all.repeat_interleave(b, 0) if mine and self.copies > 1 else self.ids_full.expand(b, -1)
        kw = {"input_ids": ids, "attention_mask": torch.ones(ids.shape, dtype=torch.long, device=ids.device)}
        kw.update({k: v.expand(ids.shape[0], -1) for k, v in self.extra.items()})
        kw.update(over)
        if "inputs_embeds" in kw:
            kw.pop("input_ids")
        return kw

    def embedded(self, E: torch.Tensor) -> torch.Tensor:
        """The first block's input for prompt embeddings E [b, T, D]: E followed by the appended
        tokens' embeddings, [copies * b, T_full, D] (copy-major)."""
        b = E.shape[0]
        E = E.to(self.dtype)
        if self.suffix is None:
            return E
        if self.copies == 1:
            return torch.cat([E, self.suffix.expand(b, -1, -1)], dim=1)
        return torch.cat([E.repeat(self.copies, 1, 1), self.suffix.to(E.dtype).repeat_interleave(b, 0)], dim=1)

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

    def word_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        """The input embedding layer's output (token vectors, no positions) for ids [1, T_full]."""
        with torch.no_grad():
            return self.model.get_input_embeddings()(ids)

    def __call__(self, E: torch.Tensor, cut: list | None = None, *, extra: dict | None = None,
                 watch: tuple = ()) -> torch.Tensor:
        """f(E) [B, K] float32. With `cut=[]` (and a position-wise head) the head's input h is
        detached: cut receives (h, h_leaf) so gradients can be taken in two stages. `extra`: more
        model keyword arguments (e.g. output_attentions); `watch`: (Ref, hook) pairs of forward
        hooks installed for this call only (the Grad-CAM methods read activations with them)."""
        b = E.shape[0]
        E = self.embedded(E)

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
    """k greedy next tokens after input_ids [1, T]: one run per token on the session's executor (a
    full forward each, k is small), the logits kept at the last position only where the model allows."""
    ids, out = input_ids, []
    limit = session.max_length
    last = {"logits_to_keep": 1} if keeps_logits(session.model) else {}
    for _ in range(k):
        if limit is not None and ids.shape[1] >= limit:
            break
        lg = run(session, Program({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, logits=[-1], extra=last,
                                  label="generate")).logits
        nxt = int(lg[0, -1].float().argmax())
        out.append(nxt)
        ids = torch.cat([ids, torch.tensor([[nxt]], device=ids.device)], dim=1)
    return out


@dataclass(frozen=True)
class DecoderTargets:
    """What a causal LM's attribution explains: the teacher-forced reads (`teacher`), the output
    measured ('log_prob' or 'logit'), each output's name and token id (-1: several tokens) and the
    contrast's name (or None)."""

    teacher: Teacher
    output: str
    names: list
    ids: list
    contrast: str | None


def decoder_targets(session, enc, target, contrast, generate, output, generate_tokens) -> DecoderTargets:
    """The targets of a causal LM's attribution, checked; shared by the hook-based objective and the
    Program one. A text target is ONE output, the sum of its tokens' log-probs (teacher-forced:
    llm_widgets.compute.answers); a list of tokens / ids, or `generate` greedily generated tokens
    (generate_tokens(session, input_ids, n)), one output per token, read along the continuation they
    form; `contrast` (a text or id) subtracts its own teacher-forced sum from the target's."""
    if generate is not None and target is not None:
        raise LLMWidgetsError("Pass either generate=k (attribute k greedily generated tokens) or "
                              "target=... (tokens you choose), not both.")
    if output not in (None, "log_prob", "logit"):
        raise LLMWidgetsError("For a causal LM the target output is the log-prob of each token "
                              "(output='log_prob', the default) or its logit (output='logit').")
    output = output or "log_prob"
    if contrast is not None:
        if target is None:
            raise LLMWidgetsError("A contrastive target needs both: target='A', contrast='B' "
                                  "(why the model prefers A over B as the continuation).")
        if not isinstance(target, (str, int, np.integer)) or isinstance(target, bool):
            raise LLMWidgetsError(f"With contrast=, the target is one answer (a text or a token id), got {target!r}")
        a, c = answer_tokens(session, target, "target"), answer_tokens(session, contrast, "contrast")
        if a == c:
            same = "token" if len(a) == 1 else "answer"
            raise LLMWidgetsError(f"contrast is the same {same} as target ({target!r}): the difference "
                                  "would be 0 everywhere. Pass two different answers.")
        t = teacher([(a, [1.0] * len(a), [0] * len(a)), (c, [-1.0] * len(c), [0] * len(c))])
        cname = _answer_name(session, c)
        return DecoderTargets(t, output, [f"{_answer_name(session, a)} \u2212 {cname}"],
                              [a[0] if len(a) == 1 else -1], cname)
    if isinstance(target, str) or (isinstance(target, (int, np.integer)) and not isinstance(target, bool)):
        a = answer_tokens(session, target, "target")
        return DecoderTargets(teacher([(a, [1.0] * len(a), [0] * len(a))]), output, [_answer_name(session, a)],
                              [a[0] if len(a) == 1 else -1], None)
    if target is None:
        n = 1 if generate is None else int(generate)
        if n < 1:
            raise LLMWidgetsError(f"generate must be at least 1, got {generate}")
        tgt = generate_tokens(session, enc["input_ids"], n)
        if not tgt:
            raise LLMWidgetsError("No room to generate: the prompt already fills the model's context.")
    else:
        try:
            items = list(target)
        except TypeError:
            raise LLMWidgetsError(f"target must be a text, a token id or a list of tokens, got {target!r}") from None
        tgt = [_single_token(session, t, "each token of a target list") for t in items]
        if not tgt:
            raise EmptyInputError("The target list is empty.")
    t = teacher([(tgt, [1.0] * len(tgt), list(range(len(tgt))))])
    return DecoderTargets(t, output, decoder_names(session, tgt), tgt, None)


def decoder_op(spec: DecoderTargets, T: int, kept: bool) -> tuple[ops.Targets, int]:
    """(the Targets op of a causal LM's targets for a prompt of T tokens, the number of last
    positions whose logits it reads); `kept`: the model keeps only those logits (logits_to_keep)."""
    t = spec.teacher
    return ops.Targets("decoder", ids=list(t.ids), output=spec.output,
                       positions=list(t.offsets) if kept else t.positions(T), rows=list(t.rows),
                       weights=list(t.weights), outputs=list(t.outputs), copies=t.copies), t.length + 1


def reads_of(f: "Objective", spec: DecoderTargets, T: int, kept: bool, head) -> "Objective":
    """f with what the gradient methods need to know of where its outputs read: a position-wise head
    (one row per token: `head`, `head_pos`) or outputs summed over several positions."""
    t = spec.teacher
    where: dict = {}
    for o, r, off in zip(t.outputs, t.rows, t.offsets):
        where.setdefault(o, set()).add((r, off))
    f.multi_position = any(len(v) > 1 for v in where.values())
    if head is not None and t.one_position_each():
        f.head = head
        f.head_pos = list(t.offsets) if kept else t.positions(T)
    return f


def class_targets(session, target, contrast, generate, output, predicted):
    """(class names, target class indices, contrast class or None, output) of a classifier's
    attribution, checked; target None is the predicted class (predicted() -> index). Shared by the
    hook-based objective and the Program one."""
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
        target = predicted()
    classes = [_as_class(session, t, labels) for t in (target if isinstance(target, (list, tuple)) else [target])]
    other = _as_class(session, contrast, labels) if contrast is not None else None
    if other is not None and len(classes) != 1:
        raise LLMWidgetsError("A contrastive target compares one class with another: pass a single target.")
    if other is not None and other == classes[0]:
        raise LLMWidgetsError(f"contrast is the same class as target ({labels[other]!r}): the difference "
                              "would be 0 everywhere. Pass two different classes.")
    return labels, classes, other, output


def custom_target_name(session, target) -> str | None:
    """The name of a callable target, None for the other forms; encoder-decoder models are refused.
    Shared by the hook-based objective and the Program one."""
    if session.kind == "encoder-decoder":
        raise LLMWidgetsError("Attribution supports classifiers, causal LMs and encoders with a "
                              "callable target; encoder-decoder models are not supported yet.")
    if callable(target) and not isinstance(target, (str, int)):
        name = getattr(target, "__name__", "custom")
        return "custom" if name == "<lambda>" else name
    return None


def custom_names(name: str, k: int) -> list[str]:
    """The names of a callable target's K outputs."""
    return [name] if k == 1 else [f"{name}[{i}]" for i in range(k)]


def _answer_name(session, ids: list[int]) -> str:
    """An answer's name: its token as read, or its tokens decoded."""
    return decoder_names(session, ids)[0] if len(ids) == 1 else answer_name(session, ids)


def decoder_names(session, tgt: list[int]) -> list[str]:
    """The names of a causal LM's target tokens, one each."""
    return session.readable_tokens(session.tokenizer.convert_ids_to_tokens(tgt))


def class_names(labels: list[str], classes: list[int], other: int | None) -> list[str]:
    """The names of a classifier's target classes, or of the one contrast "target - other"."""
    names = [labels[c] for c in classes]
    if other is not None:
        names = [f"{names[0]} \u2212 {labels[other]}"]
    return names


def build_objective(session, enc: dict, target=None, *, contrast=None, generate: int | None = None,
                    output: str | None = None) -> Objective:
    """Turn a user target into f(E). See `attribute` for the accepted forms."""
    model = session.model
    kind = session.kind
    name = custom_target_name(session, target)
    if name is not None:
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
        return Objective(session, enc, fn, custom_names(name, k), [-1] * k, "custom")

    if kind == "decoder":
        spec = decoder_targets(session, enc, target, contrast, generate, output, greedy_generate)
        T = enc["input_ids"].shape[1]
        keep = keeps_logits(model)
        targets, n_keep = decoder_op(spec, T, keep)

        def fn(kwargs):
            # the positions read are the last n_keep: an int keeps them with no index tensor (which
            # would have to be on the last block's device when a model is dispatched over several)
            return targets(model(**kwargs, logits_to_keep=n_keep) if keep else model(**kwargs), None)

        f = Objective(session, enc, fn, spec.names, spec.ids, spec.output,
                      suffix_ids=torch.tensor(spec.teacher.suffixes, device=session.device), contrast=spec.contrast)
        return reads_of(f, spec, T, keep, model.get_output_embeddings())

    def predicted() -> int:
        with torch.no_grad():
            return int(model(**enc).logits[0].float().argmax())

    labels, classes, other, output = class_targets(session, target, contrast, generate, output, predicted)

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

    return Objective(session, enc, fn, class_names(labels, classes, other), classes, output,
                     contrast=labels[other] if other is not None else None)
