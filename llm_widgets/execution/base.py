"""What every executor offers: `run` a Program, hold `standing` writes around user code, and the
capabilities it has, so every refusal reads one declaration (`Executor.require`)."""
from __future__ import annotations

from contextlib import contextmanager

from ..errors import BackendUnsupportedError

# What a capability lets a compute function do; the refusal's reason when an executor lacks it.
CAPABILITIES = {
    "gradients": "gradients through the model (attribution by gradients)",
    "graphs": "results that keep their autograd graph (gradients taken outside the run: Grad-CAM, LRP)",
    "module_hooks": "torch hooks and patched forwards on the model's modules in this process (Grad-CAM, AttnLRP)",
    "prefix_reuse": "reusing a clean run's key/value cache for a shared prefix (faster patching sweeps)",
    "module_calls": "calling the model's modules directly, outside a forward (readouts, frozen norms)",
    "eager_attention": "the attention weights the model returns from its eager path",
    "weights_here": "the model's weights in this process",
    "generate": "the model's own generate() in this process, under the standing interventions (steered generations)",
    "standing_writes": "interventions that stay on around your code (ablate(), steer(), edit_features())",
}


class Executor:
    """Runs Programs (llm_widgets.execution.program) on a session's model."""

    name = "executor"
    capabilities: frozenset = frozenset()

    def run(self, session, program, report=None):
        raise NotImplementedError

    @contextmanager
    def standing(self, session, writes):
        raise self.lacks("standing_writes", "This intervention")
        yield

    def check_cost(self, what: str, cost) -> None:
        """Refuse, before anything runs, work estimated above what this executor accepts
        (llm_widgets.execution.cost.Cost); here: everything is accepted."""

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def lacks(self, capability: str, what: str) -> BackendUnsupportedError:
        return BackendUnsupportedError(
            f"{what} needs {CAPABILITIES[capability]}, which the {self.name} executor does not have here. "
            f"Load the model with backend='native' (the default) for it.")

    def require(self, capability: str, what: str) -> None:
        if not self.has(capability):
            raise self.lacks(capability, what)
