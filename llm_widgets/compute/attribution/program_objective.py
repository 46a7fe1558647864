"""f(E) as Programs, for any executor (llm_widgets.execution): the first block's input replaced by
E where the model runs (`ops.Replace`), the targets computed from the model output there
(`ops.Targets`), and the gradients taken there too (`Program.gradients`), so a remote executor
sends back numbers, never a graph. Runs: 1 for the input embeddings, 1 for f(x) and f(baseline),
then 1 per batch of IG steps / perturbations. The targets, checks and names are those of the
hook-based objective (objective.py), which executors with module hooks run instead (it also serves
the methods that read activations or patch modules: Grad-CAM, AttnLRP)."""
from __future__ import annotations

import torch

from ...errors import LLMWidgetsError
from ...execution import Program, Read, Write, executor_of, ops, run
from ...layers import EMBEDDINGS
from ..outputs import keeps_logits
from .objective import (Objective, class_names, class_targets, custom_names, custom_target_name, decoder_op,
                        decoder_targets, greedy_generate, reads_of)
from .runner import Runner, check_finite


class ProgramRunner(Runner):
    """Runner whose gradients are taken where the model runs: one run per batch."""

    def grads(self, E: torch.Tensor) -> torch.Tensor:
        res = run(self.f.session, self.f.program(E, gradients=True))
        check_finite(res.logits, "target outputs")
        g = res.grads
        if self.f.copies > 1:  # taken with respect to every copy's whole input: the prompt's rows, summed
            g = g.reshape(g.shape[0], self.f.copies, E.shape[0], *g.shape[2:]).sum(1)[:, :, :self.f.T]
        return g


class ProgramObjective(Objective):
    """f(E) through the session's executor (see the module docstring)."""

    runner = ProgramRunner

    def __init__(self, session, enc, targets: ops.Targets, names_, ids, output, suffix_ids=None, contrast=None,
                 forward=None):
        self.targets = targets
        self.forward_kwargs = dict(forward or {})
        super().__init__(session, enc, None, names_, ids, output, suffix_ids=suffix_ids, contrast=contrast)

    def capture(self, **inputs) -> torch.Tensor:
        res = run(self.session, Program(self._kwargs(1, **inputs), reads=[Read("resid", EMBEDDINGS)], stop=True,
                                        label="attribution: embeddings"))
        return res.reads[("resid", EMBEDDINGS)]

    def word_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        executor_of(self.session).require("module_calls", "baseline='zero' (the input embeddings' token vectors)")
        with torch.no_grad():
            return self.session.model.get_input_embeddings()(ids)

    def program(self, E: torch.Tensor, *, gradients: bool = False) -> Program:
        if self.copies == 1:
            write = Write("resid", EMBEDDINGS, ops.Replace(E.to(self.dtype), self.suffix, leaf=gradients))
        else:  # each copy with its own appended tokens: the whole input replaced (ProgramRunner.grads
            # sums the copies and keeps the prompt)
            write = Write("resid", EMBEDDINGS, ops.Replace(self.embedded(E), None, leaf=gradients))
        return Program(self._kwargs(E.shape[0]), writes=[write], logits="model_output", output=self.targets,
                       extra=self.forward_kwargs, gradients=gradients,
                       label="attribution gradients" if gradients else "attribution: f(E)")

    def __call__(self, E, cut=None, *, extra=None, watch=()):
        if cut is not None or extra or watch:
            raise executor_of(self.session).lacks("module_hooks", "This attribution method")
        return run(self.session, self.program(E)).logits.float()


def build_program_objective(session, enc, target=None, *, contrast=None, generate=None, output=None):
    """objective.build_objective as Programs: the same targets, checks and names."""
    name = custom_target_name(session, target)
    if name is not None:
        f = ProgramObjective(session, enc, ops.Targets("custom", fn=target), [name], [-1], "custom")
        try:
            probe = f(f.x)
        except LLMWidgetsError:
            raise
        except Exception as e:
            raise LLMWidgetsError("A callable target must return a tensor [batch] or [batch, K] computed "
                                  f"from the model output (with gradients); it raised {type(e).__name__}: {e}") from e
        k = probe.shape[-1]
        f.names, f.ids = custom_names(name, k), [-1] * k
        return f

    if session.kind == "decoder":
        spec = decoder_targets(session, enc, target, contrast, generate, output, greedy_generate)
        T = enc["input_ids"].shape[1]
        kept = keeps_logits(session.model)
        targets, n_keep = decoder_op(spec, T, kept)
        f = ProgramObjective(session, enc, targets, spec.names, spec.ids, spec.output,
                             suffix_ids=torch.tensor(spec.teacher.suffixes, device=session.device),
                             contrast=spec.contrast, forward={"logits_to_keep": n_keep} if kept else {})
        return reads_of(f, spec, T, kept, None)

    def predicted() -> int:
        lg = run(session, Program(dict(enc), logits=[-1], label="attribution: prediction")).logits
        return int((lg[:, -1] if lg.dim() == 3 else lg)[0].argmax())

    labels, classes, other, output = class_targets(session, target, contrast, generate, output, predicted)
    return ProgramObjective(session, enc, ops.Targets("classes", ids=classes, output=output, other=other),
                            class_names(labels, classes, other), classes, output,
                            contrast=labels[other] if other is not None else None)
