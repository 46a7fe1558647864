"""Attribution graphs (circuit tracing): the model with its MLPs replaced by transcoders, attention
patterns and norm scales frozen at one input, read as a graph of direct effects between active
features, error terms, token embeddings and output logits.

Modules: graph (the Graph record), attribution (attribution_graph: computing it), prune (influence,
pruning, replacement and completeness scores), ctjson (circuit-tracer's graph JSON, read and
written), intervene (a feature's or supernode's activation set in the real model, next to what the
graph predicts), supernodes (suggested groups).
"""
from .graph import Graph  # noqa: F401
