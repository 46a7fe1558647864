"""Answers of several tokens, teacher-forced: " New York" is scored as the sum of its tokens'
log-probabilities, each read at the position before it with the answer's earlier tokens appended
to the prompt (log p(" New" | prompt) + log p(" York" | prompt + " New")).

A batch of such reads is a `Teacher`: the copies of the prompt that must run (one per distinct
sequence of appended tokens: an answer whose appended tokens start another's reads from that one's
copy, so a one-token answer needs none of its own), each copy's appended tokens padded to one length
(in a causal model the padding after a read cannot change it), and the reads: (copy, offset after
the prompt's last position, token id, weight, output). Attribution (`ops.Targets`) and patching
(`compute.patching_rows`) both read their answers from one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..checks import no_unknowns
from ..errors import EmptyInputError, LLMWidgetsError


def answer_tokens(session, answer, what: str) -> list[int]:
    """The token ids of an answer: a text (any number of tokens, none of them the unknown token) or
    one token id (in the vocabulary)."""
    if isinstance(answer, (int, np.integer)) and not isinstance(answer, bool):
        n = session.model.get_output_embeddings().weight.shape[0]
        if not 0 <= int(answer) < n:
            raise LLMWidgetsError(f"{what} token id {answer} is outside the vocabulary (0..{n - 1}).")
        return [int(answer)]
    if not isinstance(answer, str):
        raise LLMWidgetsError(f"{what} must be a text (str) or a token id, got {answer!r}")
    ids = session.tokenizer.encode(answer, add_special_tokens=False)
    if not ids:
        raise EmptyInputError(f"{what} {answer!r} produced no tokens.")
    no_unknowns(session, ids, answer, what)
    return [int(i) for i in ids]


def answer_name(session, ids: list[int]) -> str:
    """How an answer reads (its tokens decoded; newlines and tabs visible)."""
    try:
        text = session.tokenizer.decode(ids)
    except Exception:  # a tokenizer that cannot decode some ids
        text = "".join(session.readable_tokens(session.tokenizer.convert_ids_to_tokens(ids)))
    return text.replace("\n", "\u21b5").replace("\t", "\u21e5")


@dataclass(frozen=True)
class Teacher:
    """The teacher-forced copies of a prompt and the reads on them (see the module docstring).
    `suffixes` [R][S]: the tokens appended to the prompt in each copy, padded to one length S;
    reads, one entry each in `rows`, `offsets` (position - the prompt's last position, 0..S),
    `ids`, `weights`, `outputs` (the output column each read is added to)."""

    suffixes: list
    rows: list
    offsets: list
    ids: list
    weights: list
    outputs: list

    @property
    def copies(self) -> int:
        return len(self.suffixes)

    @property
    def length(self) -> int:
        """S: the tokens appended to the prompt in every copy."""
        return len(self.suffixes[0])

    @property
    def n_outputs(self) -> int:
        return max(self.outputs) + 1

    def positions(self, prompt_len: int) -> list[int]:
        """The absolute position of every read in a copy of `prompt_len` + S tokens."""
        return [prompt_len - 1 + o for o in self.offsets]

    def one_position_each(self) -> bool:
        """Every output is one read of weight 1 at its own offset (the k-th output at offset k):
        a plain row per token, as a causal LM's generated tokens are explained."""
        return self.copies == 1 and self.outputs == list(range(len(self.outputs))) \
            and self.offsets == self.outputs and all(w == 1.0 for w in self.weights)


def teacher(answers: list[tuple[list[int], list[float], list[int]]]) -> Teacher:
    """The Teacher of `answers`: (token ids, a weight per token, an output column per token) each;
    token j of an answer is read after its tokens 0..j-1 are appended to the prompt."""
    order = sorted(range(len(answers)), key=lambda a: -len(answers[a][0]))
    suffixes: list[list[int]] = []
    row_of = {}
    for a in order:  # longest first: a shorter answer reads from a copy its appended tokens start
        suf = list(answers[a][0][:-1])
        r = next((i for i, s in enumerate(suffixes) if s[:len(suf)] == suf), None)
        if r is None:
            suffixes.append(suf)
            r = len(suffixes) - 1
        row_of[a] = r
    S = max(len(s) for s in suffixes)
    fill = answers[order[0]][0][-1]  # any token: nothing read comes after it
    suffixes = [s + [fill] * (S - len(s)) for s in suffixes]
    rows, offsets, ids, weights, outputs = [], [], [], [], []
    for a, (toks, ws, outs) in enumerate(answers):
        for j, (t, w, o) in enumerate(zip(toks, ws, outs)):
            rows.append(row_of[a])
            offsets.append(j)
            ids.append(int(t))
            weights.append(float(w))
            outputs.append(int(o))
    return Teacher(suffixes, rows, offsets, ids, weights, outputs)
