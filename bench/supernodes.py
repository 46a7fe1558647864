"""Suggested supernodes: which `min_similarity` (decoder cosine) groups real duplicates and nothing else.

1. The two-hop teaching model (lw.teaching.two_hop()): the unpruned attribution graph of each of the
   32 people's prompts to its answer. Ground truth per feature node: the world token (of the 8 cities
   and 4 countries) its decoder row promotes most through the unembedding. A merged pair (two members
   of one suggested group, different features) is right when both promote the same token, false when
   not; the same feature at several positions (cosine 1) is left out of both counts.
2. Random transcoders (no duplicates at all): 2 layers of F Gaussian decoder rows in d dimensions, a
   graph holding every feature once; every merge is false. 20 seeds per width.

    python bench/supernodes.py          # prints one table per part (about 20 s here)
"""
from __future__ import annotations

import numpy as np
import torch

import llm_widgets as lw
from llm_widgets.circuits.graph import Graph
from llm_widgets.circuits.supernodes import decoder_rows
from llm_widgets.dictionaries import Dictionary
from llm_widgets.dictionaries.coding import Weights
from llm_widgets.dictionaries.sites import Site
from llm_widgets.teaching.two_hop_model import CITIES, COUNTRIES, PEOPLE

THRESHOLDS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)


def pairs(groups, graph, label) -> tuple[int, int]:
    """(right, false) merged pairs of distinct features over the suggested groups."""
    right = false = 0
    for grp in groups:
        rows = list(grp.rows)
        for i, a in enumerate(rows):
            for b in rows[i + 1:]:
                if (graph.layer[a], graph.feature[a]) == (graph.layer[b], graph.feature[b]):
                    continue
                same = label[(int(graph.layer[a]), int(graph.feature[a]))] == label[(int(graph.layer[b]),
                                                                                   int(graph.feature[b]))]
                right, false = right + same, false + (not same)
    return right, false


def two_hop_part() -> None:
    th = lw.teaching.two_hop()
    s = th.session
    world = [s.tokenizer.convert_tokens_to_ids(w) for w in CITIES + COUNTRIES]
    W_U = s.model.get_output_embeddings().weight.detach()[world].float()  # [12, d]
    graphs = [lw.attribution_graph(s, th.prompt(a), th.transcoders, target=th.answer(a), node_threshold=1.0,
                                   edge_threshold=1.0) for a in PEOPLE]
    label = {}
    for g in graphs:
        rows = g.rows("feature")
        dec = torch.as_tensor(decoder_rows(th.transcoders, g.layer[rows], g.feature[rows]))
        for r, top in zip(rows, (dec @ W_U.T).argmax(1).tolist()):
            label[(int(g.layer[r]), int(g.feature[r]))] = top
    print(f"two-hop: {len(graphs)} unpruned graphs, {sum(len(g.rows('feature')) for g in graphs)} feature nodes")
    print("| min_similarity | groups | merged pairs right | merged pairs false |\n| --- | --- | --- | --- |")
    for t in THRESHOLDS:
        n = right = false = 0
        for g in graphs:
            groups = lw.suggest_supernodes(g, th.transcoders, min_similarity=t, k=100)
            r, f = pairs(groups, g, label)
            n, right, false = n + len(groups), right + r, false + f
        print(f"| {t} | {n} | {right} | {false} |")


def random_part(widths=(64, 256), F: int = 64, seeds: int = 20) -> None:
    print(f"\nrandom transcoders: 2 layers x {F} features, each feature once, {seeds} seeds; false merges per graph")
    print("| min_similarity | " + " | ".join(f"d={d}" for d in widths) + " |\n| --- |" + " --- |" * len(widths))
    out = {t: [] for t in THRESHOLDS}
    for d in widths:
        counts = {t: 0 for t in THRESHOLDS}
        for seed in range(seeds):
            gen = torch.Generator().manual_seed(seed)
            dicts = [Dictionary(Weights(W_enc=torch.zeros(d, F), b_enc=torch.zeros(F),
                                        W_dec=torch.randn(F, d, generator=gen), b_dec=torch.zeros(d)),
                                site=Site("mlp_in", lay), out_site=Site("mlp", lay)) for lay in range(2)]
            n = 2 * F
            kind = np.array(["feature"] * n + ["logit"])
            g = Graph(tokens=["a"], token_ids=np.zeros(1, np.int64), kind=kind,
                      layer=np.r_[np.repeat([0, 1], F), 2], position=np.zeros(n + 1, np.int64),
                      feature=np.r_[np.tile(np.arange(F), 2), 0], activation=np.ones(n + 1, np.float32),
                      influence=np.zeros(n + 1, np.float32), source=np.zeros(0, np.int64),
                      target=np.zeros(0, np.int64), weight=np.zeros(0, np.float32), n_layers=2,
                      target_probs=np.ones(1, np.float32))
            for t in THRESHOLDS:
                counts[t] += sum(len(grp.rows) - 1 for grp in lw.suggest_supernodes(g, dicts, min_similarity=t,
                                                                                   k=1000))
        for t in THRESHOLDS:
            out[t].append(counts[t] / seeds)
    for t in THRESHOLDS:
        print(f"| {t} | " + " | ".join(f"{v:.2f}" for v in out[t]) + " |")


if __name__ == "__main__":
    two_hop_part()
    random_part()
