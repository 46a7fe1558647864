"""Layer indices: one convention for every `layer` argument, result and `selected_layer`.

A layer is a block index: 0 is the first block, and negative indices count from the end as in
Python (-1 is the last block). The embedding output (the residual stream before the first block),
which some views show as a row of its own, is named by the sentinel `EMBEDDINGS`: a string, so no
integer index can be mistaken for it (and it travels to the browser as it is).

Arrays built from hidden states have one row more than there are blocks, embeddings first:
`hidden_row(EMBEDDINGS, n) == 0` and `hidden_row(i, n) == i + 1`.
"""
from __future__ import annotations

import numpy as np

from .errors import LLMWidgetsError

EMBEDDINGS = "embeddings"


def is_index(layer) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(layer, (int, np.integer)) and not isinstance(layer, (bool, np.bool_))


def block_index(layer, n_layers: int, *, what: str = "layer") -> int:
    """`layer` as a block index in 0..n_layers-1 (negative: counted from the end). `what` names the
    argument in the error."""
    if is_index(layer) and -n_layers <= layer < n_layers:
        return int(layer) % n_layers
    if layer == EMBEDDINGS:
        raise LLMWidgetsError(f"{what}={EMBEDDINGS!r} (the embedding output) is not a block here: use a block "
                              f"index 0..{n_layers - 1} (or -1 for the last)")
    raise LLMWidgetsError(f"{what} {layer!r} is out of range: this model has blocks 0..{n_layers - 1} "
                          f"(negative indices count from the end: -1 is block {n_layers - 1}).")


def hidden_row(layer, n_layers: int, *, what: str = "layer") -> int:
    """The row of `layer` in arrays with the embeddings first: EMBEDDINGS -> 0, block i -> i + 1."""
    if isinstance(layer, str) and layer == EMBEDDINGS:
        return 0
    if is_index(layer) and -n_layers <= layer < n_layers:
        return int(layer) % n_layers + 1
    raise LLMWidgetsError(f"{what} {layer!r} is out of range: use a block index 0..{n_layers - 1} (negative "
                          f"indices count from the end: -1 is block {n_layers - 1}) or lw.EMBEDDINGS for "
                          f"the embedding output.")


def layer_of_row(row: int):
    """The layer of row `row` of an embeddings-first array: EMBEDDINGS for row 0, else the block index."""
    return EMBEDDINGS if int(row) == 0 else int(row) - 1
