"""The model adapter: everything llm-widgets knows about a model's layout, found from its structure.

One probe forward pass (a few random tokens, hooks on every module) tells us:
- the blocks: the modules whose successive outputs are the model's own hidden states (a list of
  blocks, or one shared block called n_layers times, as in ALBERT),
- in each block, the attention module (its attribute name says "att") and its output projection
  (the last linear map the attention calls; its input is the heads concatenated), the MLP's
  output projection (the last linear map outside attention that writes the residual width; its
  input is the neurons), or a mixture-of-experts block (expert weights in one 3-D tensor or a list
  of expert MLPs), whose output is the "mlp" site and which has no single neuron layer,
- the readout: the modules called between the last block and the unembedding (the final norm),
  the language-model head, and the logit soft-capping / scaling the model applies after it,
- whether the model is causal (changing the last token leaves earlier positions untouched) and
  whether its attention and MLP read the same input (parallel blocks, as GPT-J and Falcon).

No view branches on `model_type` or class names. The findings are checked with invariants the
first time (block i output == hidden_states[i + 1]; readout of the last residual == the model's
logits; n_heads * head_dim == the output projection's input width); when discovery cannot resolve
a model it raises UnsupportedModelError saying what it found and how to pass a `Layout`.
"""
from .callhook import CallHook
from .discovery import adapter_of, discover
from .facts import Adapter, Layout, Ref, get_module

__all__ = ["Adapter", "CallHook", "Layout", "Ref", "adapter_of", "discover", "get_module"]
