"""Concepts: 2-D projections (PCA; UMAP if installed) and k-means clusters of activations, per layer.

Clusters are computed on the full activation vectors of a layer (not on the 2-D projection), with
sklearn's KMeans(n_clusters=k, n_init=10, random_state=seed); projections with sklearn's
PCA(n_components=2) (deterministic signs), so results equal sklearn's on the same matrix.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LLMWidgetsError, NonFiniteError
from ..layers import hidden_row

METHODS = ("pca", "umap")


@dataclass
class Projection:
    coords: np.ndarray  # [N, 2]
    clusters: np.ndarray  # [N] int
    explained: np.ndarray  # [2] explained variance ratio (PCA); NaN for UMAP


@dataclass
class ConceptResult:
    """Per-layer projections and clusters of the rows of an Activations set. Arrays have L+1
    layer rows, embeddings first: block `layer` is row `layer + 1` (lw.EMBEDDINGS is row 0)."""

    coords: np.ndarray  # [L+1, N, 2]
    clusters: np.ndarray  # [L+1, N] int
    explained: np.ndarray  # [L+1, 2]
    method: str
    k: int
    acts: object  # the Activations (rows: text_index, token_index, tokens, labels)

    @property
    def n_layers(self) -> int:
        """Blocks (the arrays have one more row: the embeddings)."""
        return self.coords.shape[0] - 1

    def to_frame(self, layer):
        """One row per point at block `layer` (negative: from the end; lw.EMBEDDINGS: the embedding
        output): x, y, cluster, text, token, label."""
        import pandas as pd

        layer = hidden_row(layer, self.n_layers)
        a = self.acts
        tok = [a.tokens[i][j] if j >= 0 else "" for i, j in zip(a.text_index, a.token_index)]
        return pd.DataFrame({"x": self.coords[layer, :, 0], "y": self.coords[layer, :, 1],
                             "cluster": self.clusters[layer], "text_index": a.text_index,
                             "text": [a.texts[i] for i in a.text_index], "token": tok,
                             "label": a.labels if a.labels is not None else None})


def check_matrix(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise LLMWidgetsError(f"activations must be a [rows, dim] matrix, got shape {X.shape}")
    if X.shape[0] < 3:
        raise LLMWidgetsError(f"Need at least 3 rows to project and cluster, got {X.shape[0]}.")
    if not np.isfinite(X).all():
        raise NonFiniteError("Activations contain NaN/inf; they cannot be projected. With float16 "
                             "models load with dtype='float32'.")
    return X


def project(X, *, k: int = 5, method: str = "pca", seed: int = 0) -> Projection:
    """2-D projection and k-means clusters of one [N, D] activation matrix."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    X = check_matrix(X)
    if method not in METHODS:
        raise LLMWidgetsError(f"method must be one of {METHODS}, got {method!r}")
    if not 1 <= k <= X.shape[0]:
        raise LLMWidgetsError(f"k must be between 1 and the number of rows ({X.shape[0]}), got {k}")
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise LLMWidgetsError("method='umap' needs the umap-learn package: pip install umap-learn "
                                  "(or use method='pca').") from None
        coords = umap.UMAP(n_components=2, random_state=seed).fit_transform(X)
        explained = np.full(2, np.nan)
    else:
        pca = PCA(n_components=2, random_state=seed).fit(X)
        coords, explained = pca.transform(X), pca.explained_variance_ratio_
    clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(X)
    return Projection(np.asarray(coords, np.float32), clusters.astype(np.int64), np.asarray(explained))


def concepts(acts, *, k: int = 5, method: str = "pca", seed: int = 0, report=None) -> ConceptResult:
    """Project and cluster every layer of an Activations set (layer by layer)."""
    from .probing import few_threads

    L = acts.states.shape[0]
    coords, clusters, explained = [], [], []
    for layer in range(L):
        with few_threads():
            p = project(acts.states[layer], k=k, method=method, seed=seed)
        coords.append(p.coords)
        clusters.append(p.clusters)
        explained.append(p.explained)
        if report:
            report((layer + 1) / L, f"projecting layer {layer}")
    return ConceptResult(np.stack(coords), np.stack(clusters), np.stack(explained), method, k, acts)
