"""The layers x strengths grids of SteeringView: generations (a language model) or class
probabilities (a classifier), every strength of one layer in one batched run whose rows carry their
own strengths (steering_ops.RowAdd).

Generations are greedy (deterministic; seeded all the same) through the model's `generate` with the
steering standing as a hook (the native executor; other executors are refused). Per cell: the
continuation, which of its tokens differ from the unsteered one, a concept score (how far the
unsteered model's states of the continuation moved along the vector, in units of the vector's own
length: 1 = the full positive-negative contrast) and a coherence guard (the perplexity of the
continuation under the unsteered model): a topic change keeps perplexity low, a broken model does not.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import LLMWidgetsError
from ..execution import Program, Read, Write, executor_of, intervene, run
from .activations import batch_plan, padded_batch
from ..guards import model_lock
from .progress import Report, no_progress
from .steering import direction_at, steer_layer
from .steering_ops import RowAdd


@dataclass
class ClassSweep:
    """probs [n_layers, n_strengths, C]: the mean class probabilities over the prompts, steered at
    each layer with each strength; per_prompt [n_layers, n_strengths, P, C]."""

    layers: list
    strengths: list
    classes: list
    probs: np.ndarray
    per_prompt: np.ndarray

    def suggested_strength(self, target: str, layer) -> float | None:
        """The smallest strength (in the grid order) at which the target class's mean probability
        reaches 0.5 at `layer`; None where none does."""
        c, i = self.classes.index(target), self.layers.index(layer)
        hit = [s for s, p in zip(self.strengths, self.probs[i, :, c]) if p >= 0.5 and s != 0]
        return min(hit, key=abs) if hit else None


@dataclass
class GenerationGrid:
    """texts[l][s][p]: the continuation of prompt p steered at layers[l] with strengths[s];
    tokens (the same nesting, lists of token strings), changed (booleans: differs from the
    unsteered continuation at that position), score [L, S, P] and perplexity [L, S, P]."""

    layers: list
    strengths: list
    prompts: list
    texts: list
    tokens: list
    changed: list
    score: np.ndarray
    perplexity: np.ndarray
    base_texts: list  # [P] the unsteered continuations
    base_perplexity: np.ndarray  # [P] their perplexity

    def broken(self, factor: float = 4.0) -> np.ndarray:
        """[L, S] True where the continuations' mean perplexity is over `factor` x the unsteered one's:
        the coherence guard (the model broke, rather than changed the topic)."""
        return self.perplexity.mean(2) > factor * float(self.base_perplexity.mean())


def _rows(session, prompts):
    tok = session.tokenizer
    encs = [tok(p)["input_ids"] for p in prompts]
    return encs


def classifier_sweep(session, prompts, vector, layers, strengths, report: Report = no_progress) -> ClassSweep:
    """Class probabilities with the vector added at each layer with each strength (every position)."""
    names = session.class_labels
    if names is None:
        raise LLMWidgetsError("classifier_sweep needs a sequence classifier")
    encs = [session.tokenizer(p) for p in prompts]
    keys, _ = batch_plan(encs, len(encs))
    batch, _ = padded_batch(session, encs, list(range(len(encs))), keys)
    S, P = len(strengths), len(prompts)
    big = {k: v.repeat(S, 1) for k, v in batch.items()}
    scales = torch.tensor([float(s) for s in strengths for _ in range(P)])
    out = np.zeros((len(layers), S, P, len(names)))
    for i, layer in enumerate(layers):
        v = direction_at(session, vector, layer)
        lg = run(session, Program(big, writes=[Write("resid", layer, RowAdd(v, scales))], logits="all",
                                  label="steering sweep")).logits
        out[i] = torch.softmax(lg.reshape(S * P, -1).float(), -1).reshape(S, P, -1).cpu().numpy()
        report((i + 1) / len(layers), f"layer {layer}")
    return ClassSweep(layers=list(layers), strengths=list(strengths), classes=names, probs=out.mean(2), per_prompt=out)


def generate_rows(session, ids: list[list[int]], max_new_tokens: int, writes=()) -> torch.Tensor:
    """Greedy continuations [B, max_new_tokens] of left-padded prompts, with `writes` standing."""
    executor_of(session).require("generate", "Steered generation (SteeringView's generations)")
    tok, model = session.tokenizer, session.model
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    width = max(len(x) for x in ids)
    input_ids = torch.tensor([[pad] * (width - len(x)) + list(x) for x in ids], device=session.device)
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=session.device)
    torch.manual_seed(0)
    with model_lock(model), intervene(session, list(writes)) if writes else nullcontext(), torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             min_new_tokens=max_new_tokens, pad_token_id=pad)
    return out[:, width:]


def generation_grid(session, prompts, vector, layers, strengths, *, max_new_tokens: int = 32,
                    score_layer=None, report: Report = no_progress) -> GenerationGrid:
    """The grid of steered greedy continuations: one batched generate per layer (rows: strengths x
    prompts, each row with its own strength), then one unsteered forward for scores and perplexities.
    `report` is called after each layer (a view's report raises there when the view is cancelled)."""
    if session.adapter.output != "lm" or not session.adapter.causal:
        raise LLMWidgetsError(f"generations need a causal language model ({session.name} is not one); a classifier "
                              "gets classifier_sweep")
    tok = session.tokenizer
    ids = _rows(session, prompts)
    S, P = len(strengths), len(prompts)
    scales = torch.tensor([float(s) for s in strengths for _ in range(P)])
    conts = []
    for i, layer in enumerate(layers):
        v = direction_at(session, vector, layer)
        conts.append(generate_rows(session, ids * S, max_new_tokens, [Write("resid", layer, RowAdd(v, scales))]))
        report(0.9 * (i + 1) / len(layers), f"generated at layer {layer}")
    base = generate_rows(session, ids, max_new_tokens)  # the unsteered continuations
    s_layer = steer_layer(session, score_layer if score_layer is not None else layers[0])
    u = direction_at(session, vector, s_layer)
    norm = float(u.norm())
    u = u / norm if norm > 0 else u
    every = [(p, base[p]) for p in range(P)] + [(r % P, c[r]) for c in conts for r in range(S * P)]
    means, ppl = _continuation_stats(session, ids, every, s_layer, u)
    base_mean = means[:P]
    score = ((means[P:] - np.tile(base_mean, len(layers) * S)) / max(norm, 1e-12)).reshape(len(layers), S, P)
    perplexity = ppl[P:].reshape(len(layers), S, P)
    texts, tokens, changed = [], [], []
    for c in conts:
        rows_t, rows_k, rows_c = [], [], []
        for s in range(S):
            tt, kk, cc = [], [], []
            for p in range(P):
                seq = c[s * P + p].tolist()
                tt.append(tok.decode(seq, skip_special_tokens=True))
                kk.append(session.readable_tokens(tok.convert_ids_to_tokens(seq)))
                cc.append([a != b for a, b in zip(seq, base[p].tolist())])
            rows_t.append(tt), rows_k.append(kk), rows_c.append(cc)
        texts.append(rows_t), tokens.append(rows_k), changed.append(rows_c)
    report(1.0, "scored")
    return GenerationGrid(layers=list(layers), strengths=list(strengths), prompts=list(prompts), texts=texts,
                          tokens=tokens, changed=changed, score=score, perplexity=perplexity,
                          base_texts=[tok.decode(base[p].tolist(), skip_special_tokens=True) for p in range(P)],
                          base_perplexity=ppl[:P])


def _continuation_stats(session, ids, rows, layer, u) -> tuple[np.ndarray, np.ndarray]:
    """Per (prompt index, continuation): the unsteered model's mean state of the continuation at
    `layer` projected on u, and the continuation's perplexity. One padded forward (right padding)."""
    seqs = [list(ids[p]) + cont.tolist() for p, cont in rows]
    width = max(len(x) for x in seqs)
    pad = session.tokenizer.pad_token_id or 0
    input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in seqs], device=session.device)
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in seqs], device=session.device)
    res = run(session, Program({"input_ids": input_ids, "attention_mask": mask}, reads=[Read("resid", layer, name="h")],
                               logits="all", label="steering scores"))
    h, lg = res.reads["h"].float(), res.logits.float()
    means, ppl = np.zeros(len(rows)), np.zeros(len(rows))
    for r, (p, _) in enumerate(rows):
        a, b = len(ids[p]), len(seqs[r])
        means[r] = float(h[r, a:b].mean(0) @ u.to(h.device))
        ce = torch.nn.functional.cross_entropy(lg[r, a - 1:b - 1], input_ids[r, a:b])
        ppl[r] = float(torch.exp(ce))
    return means, ppl
