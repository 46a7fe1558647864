"""Steering vectors: one direction per block from contrastive texts (ActAdd, Turner et al. 2023;
contrastive activation addition, Rimsky et al. 2024; repeng's control vectors) or from a trained
probe, and `steer`, a context that adds strength x direction to a block's output.

    v = steering_vector(s, positive=["I love it", ...], negative=["I hate it", ...])
    v.separation                 # held-out accuracy of the direction per block
    with steer(s, v, layer=3, strength=4.0):
        ...                      # every forward of this thread sees the residual stream steered

Every method's vector is scaled the same way: its unit direction u times u . (mean(positive) -
mean(negative)), so strength 1 moves a state by the mean contrast along u (for "mean_diff" the
vector is that mean difference itself).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..checks import integer, number
from ..errors import LLMWidgetsError
from ..execution import Write, intervene, ops
from ..layers import EMBEDDINGS, block_index
from .activations import check_texts, token_states
from .progress import Report, no_progress

METHODS = ("mean_diff", "pca", "probe")


@dataclass
class SteeringVector:
    """One steering direction per block in `layers` (`vectors` [n, D], row i for block layers[i]),
    how it was found, and `separation` [n]: the held-out accuracy of the direction (a threshold at
    the midpoint of the training classes' projections) on the pairs kept out of fitting."""

    vectors: np.ndarray
    layers: list
    method: str
    position: Any
    separation: np.ndarray
    n_train: int = 0
    n_test: int = 0
    model: str = ""
    notes: dict = field(default_factory=dict)

    def at(self, layer) -> np.ndarray:
        """The vector of block `layer` ([D])."""
        if layer not in self.layers:
            raise LLMWidgetsError(f"this steering vector has no direction for layer {layer!r}; it has layers "
                                  f"{self.layers}. Compute it with layers=[...] including that block.")
        return self.vectors[self.layers.index(layer)]

    @property
    def best_layer(self):
        """The block whose direction separates the held-out pairs best (the first of ties)."""
        return self.layers[int(np.argmax(self.separation))]

    def save(self, path) -> None:
        """Write the vectors as safetensors ("layer.{i}" tensors, the method in the metadata)."""
        from .steering_export import save_safetensors

        save_safetensors(self, path)

    def to_gguf(self, path, model_hint: str | None = None) -> None:
        """Write the GGUF control-vector file llama.cpp (`--control-vector`) and repeng read."""
        from .steering_export import save_gguf

        save_gguf(self, path, model_hint=model_hint)


def _position_states(hs: np.ndarray, special: np.ndarray, position) -> np.ndarray:
    """[L+1, D] of one text: the mean of its non-special tokens ('mean'), its last non-special token
    ('last'), or token `position` (negative: from the end)."""
    keep = ~special.astype(bool) if (~special.astype(bool)).any() else np.ones(len(special), bool)
    if position == "mean":
        return hs[:, keep].mean(1)
    if position == "last":
        return hs[:, np.flatnonzero(keep)[-1]]
    T = hs.shape[1]
    if not -T <= position < T:
        raise LLMWidgetsError(f"position {position} is outside a text of {T} tokens; use 'mean', 'last' or a "
                              f"position every text has.")
    return hs[:, position]


def check_position(position):
    if isinstance(position, str):
        if position not in ("mean", "last"):
            raise LLMWidgetsError(f"position must be 'mean', 'last' or a token index, got {position!r}")
        return position
    return integer(position, "position")


def text_states(session, texts, position, batch_size: int = 32) -> np.ndarray:
    """[L+1, N, D] float64: every hidden state (embeddings first) of each text at `position`."""
    return np.stack([_position_states(hs, sp, position)
                     for hs, sp in token_states(session, texts, batch_size=batch_size)], 1).astype(np.float64)


def _direction(method: str, P: np.ndarray, N: np.ndarray, seed: int) -> np.ndarray:
    """Unit direction [D] separating P [n, D] from N [m, D], pointing from N to P."""
    diff = P.mean(0) - N.mean(0)
    if method == "mean_diff":
        u = diff
    elif method == "pca":  # first right-singular vector of the paired differences (uncentred)
        u = np.linalg.svd(P - N, full_matrices=False)[2][0]
    else:
        from .probing import _make_probe, few_threads

        X = np.concatenate([P, N])
        y = np.r_[np.ones(len(P)), np.zeros(len(N))]
        with few_threads():
            clf = _make_probe("linear", seed).fit(X, y)
        u = clf[-1].coef_[0] / clf[0].scale_  # in raw feature units (the scaler folded in)
    norm = np.linalg.norm(u)
    if not norm > 0:
        raise LLMWidgetsError("the positive and negative texts give identical states here: no direction.")
    u = u / norm
    return u if u @ diff >= 0 else -u


def _fit(method, P, N, seed):
    u = _direction(method, P, N, seed)
    return u * float(u @ (P.mean(0) - N.mean(0)))


def _split(order: np.ndarray, test_size: float):
    """(train, test) of a permutation: a fraction test_size held out, at least one on each side."""
    k = min(len(order) - 1, max(1, int(round(test_size * len(order)))))
    return order[k:], order[:k]


def _separation(u: np.ndarray, Ptr, Ntr, Pte, Nte) -> float:
    thr = 0.5 * (Ptr.mean(0) @ u + Ntr.mean(0) @ u)
    right = np.r_[Pte @ u > thr, Nte @ u < thr]
    return float(right.mean())


def steering_vector(session, positive=None, negative=None, *, layers=None, method: str = "mean_diff",
                    position="mean", probe=None, target=None, test_size: float = 0.25, seed: int = 0,
                    batch_size: int = 32, report: Report = no_progress) -> SteeringVector:
    """One steering direction per block from contrastive texts: `positive` texts have the property,
    `negative` ones do not (method 'pca' pairs them: positive[i] with negative[i]).

    method: 'mean_diff' (difference of the class means), 'pca' (first singular vector of the paired
    differences, as repeng), 'probe' (a logistic-regression probe's weight direction). position:
    which state of a text: 'mean' (its non-special tokens), 'last' (its last non-special token) or
    a token index. A fraction `test_size` of the pairs is held out: `separation` is the accuracy of
    the direction fitted without them; the returned vectors are then fitted on every text.

    From a ProbeView instead: `steering_vector(s, probe=view, target="POSITIVE")` takes the view's
    probe directions (mean over its seeds) towards class `target`, scaled by the view's states.
    """
    if probe is not None:
        if positive is not None or negative is not None:
            raise LLMWidgetsError("give either positive=/negative= texts or probe=, not both")
        if method not in ("mean_diff", "probe") or position != "mean":
            raise LLMWidgetsError("with probe= the direction and the states are the ProbeView's: leave method= and "
                                  "position= out")
        return _from_probe(session, probe, target, layers)
    if target is not None:
        raise LLMWidgetsError("target= is only used with probe=")
    if method not in METHODS:
        raise LLMWidgetsError(f"method must be one of {METHODS}, got {method!r}")
    if positive is None or negative is None:
        raise LLMWidgetsError("steering_vector needs positive=[...] and negative=[...] texts (or probe=a ProbeView)")
    position = check_position(position)
    P_texts, N_texts = check_texts(positive), check_texts(negative)
    if min(len(P_texts), len(N_texts)) < 2:
        raise LLMWidgetsError("give at least 2 positive and 2 negative texts (one pair is held out to measure "
                              "how well the direction separates them)")
    if method == "pca" and len(P_texts) != len(N_texts):
        raise LLMWidgetsError(f"method='pca' pairs positive[i] with negative[i]: got {len(P_texts)} positive and "
                              f"{len(N_texts)} negative texts")
    if not 0.0 < number(test_size, "test_size") < 1.0:
        raise LLMWidgetsError(f"test_size must be between 0 and 1, got {test_size}")
    L = session.adapter.n_layers
    blocks = list(range(L)) if layers is None else [block_index(x, L) for x in layers]
    report(0.0, "hidden states")
    states = text_states(session, P_texts + N_texts, position, batch_size)
    P_all, N_all = states[:, :len(P_texts)], states[:, len(P_texts):]
    rng = np.random.default_rng(seed)
    p_order = rng.permutation(len(P_texts))
    n_order = p_order if method == "pca" else rng.permutation(len(N_texts))  # pca keeps the pairs together
    (p_tr, p_te), (n_tr, n_te) = _split(p_order, test_size), _split(n_order, test_size)
    vectors, sep = [], []
    for i, b in enumerate(blocks):
        P, N = P_all[b + 1], N_all[b + 1]
        u = _direction(method, P[p_tr], N[n_tr], seed)
        sep.append(_separation(u, P[p_tr], N[n_tr], P[p_te], N[n_te]))
        vectors.append(_fit(method, P, N, seed))
        report((i + 1) / len(blocks), f"direction of block {b}")
    return SteeringVector(vectors=np.asarray(vectors, np.float32), layers=blocks, method=method, position=position,
                          separation=np.asarray(sep), n_train=len(p_tr) + len(n_tr), n_test=len(p_te) + len(n_te),
                          model=session.name)


def _from_probe(session, view, target, layers) -> SteeringVector:
    res, acts = getattr(view, "result", None), getattr(view, "activations", None)
    if res is None or acts is None or getattr(res, "weights", None) is None:
        raise LLMWidgetsError("probe= takes a finished ProbeView with linear probes (call .wait() first; "
                              "probe='linear').")
    if target not in res.classes or len(res.classes) != 2:
        raise LLMWidgetsError(f"target must be one of the probe's two classes {res.classes}, got {target!r} "
                              "(a steering direction needs a binary probe)")
    other = [c for c in res.classes if c != target][0]
    L = res.n_layers
    blocks = list(range(L)) if layers is None else [block_index(x, L) for x in layers]
    y = np.asarray([str(v) for v in acts.labels])
    vectors, sep = [], []
    for b in blocks:
        row = res.row(b)
        u = np.mean([res.margin_direction(b, sd, target, other)[0] for sd in range(res.accuracy.shape[1])], 0)
        u = u / np.linalg.norm(u)
        X = acts.states[row].astype(np.float64)
        diff = X[y == target].mean(0) - X[y == other].mean(0)
        vectors.append(u * float(u @ diff))
        sep.append(float(res.accuracy[row].mean()))
    return SteeringVector(vectors=np.asarray(vectors, np.float32), layers=blocks, method="probe",
                          position=f"probe ({acts.level})", separation=np.asarray(sep), model=session.name,
                          notes={"separation": "the probe's own held-out accuracy (mean over its seeds)"})


def direction_at(session, vector, layer) -> torch.Tensor:
    """The [D] float32 vector to add at block `layer` from a SteeringVector, an array [D], or an
    object with `steering_direction(session, layer)` (the hook a dictionary feature implements)."""
    if hasattr(vector, "steering_direction"):
        v = vector.steering_direction(session, layer)
    elif isinstance(vector, SteeringVector):
        v = vector.at(layer)
    else:
        v = vector
    try:
        v = torch.as_tensor(np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=np.float32))
    except (TypeError, ValueError):
        raise LLMWidgetsError(f"vector must be a SteeringVector or a [d_model] array, got "
                              f"{type(vector).__name__}") from None
    D = session.adapter.d_model
    if v.shape != (D,):
        raise LLMWidgetsError(f"the steering vector has shape {tuple(v.shape)}; this model's residual stream is "
                              f"[{D}]")
    if not torch.isfinite(v).all():
        raise LLMWidgetsError("the steering vector has NaN/inf entries")
    return v


def steer_layer(session, layer):
    """`layer` checked: a block index (negative: from the end, returned non-negative) or EMBEDDINGS."""
    if isinstance(layer, str) and layer == EMBEDDINGS:
        return EMBEDDINGS
    return block_index(layer, session.adapter.n_layers)


def steer_writes(session, vector, *, layer, strength=1.0, positions=None) -> list[Write]:
    """The write of `steer`: strength x vector added to block `layer`'s output at `positions`."""
    layer = steer_layer(session, layer)
    strength = number(strength, "strength")
    if positions is not None:
        if isinstance(positions, (int, np.integer)) and not isinstance(positions, bool):
            positions = [positions]
        positions = [integer(p, "positions[i]") for p in positions]
    vec = direction_at(session, vector, layer)
    return [Write("resid", layer, ops.Add(vec, scale=strength, positions=positions))]


@contextmanager
def steer(session, vector, *, layer, strength: float = 1.0, positions=None):
    """Add `strength` x `vector` to the residual stream after block `layer` (lw.EMBEDDINGS: to the
    embedding output) at `positions` (token indices, negative from the end; None: every position,
    also the tokens `generate` adds) while inside; composes with ablate() and the other contexts.

    `vector`: a SteeringVector (its direction for that block), a [d_model] array, or an object with
    `steering_direction(session, layer)` (the hook a dictionary feature provides)."""
    with intervene(session, steer_writes(session, vector, layer=layer, strength=strength, positions=positions)):
        yield
