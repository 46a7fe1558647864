"""What an attribution method needs of the executor that runs it, and what it costs where the
model runs elsewhere: refused before anything runs, with the reason and the estimate."""
from __future__ import annotations

from ...execution import executor_of
from ...execution.cost import Cost

# Methods that read activations or replace modules' backward rules with torch hooks in this process.
NEEDS_HOOKS = {"lrp": "AttnLRP replaces the backward rules of every norm and attention module (torch hooks and "
                      "patched forwards)",
               "gradcam": "Grad-CAM reads a block's activations and their gradients with torch hooks",
               "attention_gradcam": "attention Grad-CAM needs eager attention weights of every layer and their "
                                    "gradients ([L, H, T, T] twice)"}


def attribution_cost(session, n_tokens: int, method, *, n_targets: int = 1, steps: int = 50, n_samples=None,
                     n_features: int | None = None, batch: int = 64, faithfulness: bool = True) -> Cost:
    """Runs, rows forward / backward and bytes returned of one attribution (first IG pass)."""
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
                parameters=sum(p.numel() for p in session.model.parameters()))


def check_method(session, method, *, n_tokens: int, n_targets: int, steps: int, n_samples, n_words: int) -> None:
    """Refuse a method the session's executor cannot run (read from its capabilities), and a run
    elsewhere whose estimated cost is above the executor's limits, with the estimate."""
    ex = executor_of(session)
    if method.key in NEEDS_HOOKS and not ex.has("module_hooks"):
        cost = attribution_cost(session, n_tokens, method, n_targets=n_targets, steps=steps)
        raise ex.lacks("module_hooks", f"method={method.key!r} ({NEEDS_HOOKS[method.key]}; at least {n_targets} "
                                       f"backward pass(es) with {session.n_layers} x [{session.n_heads}, {n_tokens}, "
                                       f"{n_tokens}] attention weights kept: {cost})")
    if method.key == "shap" and n_words > 12 and not ex.has("module_hooks"):
        raise ex.lacks("module_hooks", "method='shap' on more than 12 words (the shap library's Partition explainer "
                                       "calls the model itself; use method='shapley' (sampling) or at most 12 words)")
    ex.check_cost(f"method={method.key!r}", attribution_cost(session, n_tokens, method, n_targets=n_targets,
                                                            steps=steps, n_samples=n_samples))
