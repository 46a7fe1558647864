"""A small GPT-2 with a known two-step circuit, and per-layer transcoders trained on it (cached).

The world: 32 people, 8 cities, 4 countries. Each person lives in a city (`f`: 4 people per city)
and each city is in a country (`g`: 2 cities per country). The model is trained on three prompt
formats, the answer being the next token after the prompt:

    "Mary city"           -> Paris      one hop, f(A) = B
    "Paris country"       -> France     one hop, g(B) = C
    "Mary city country"   -> France     two hops, g(f(A)) = C: "the country of Mary's city"

Half of the people (two per city, `HELD_OUT`) never appear in a two-hop training prompt, and a
person's embedding is a fixed random code (not trained: trained, the codes cluster by city and a
direct person -> country readout carries over to the held-out people). The model answers the held-out
two-hop prompts only by composing the two lookups: two-hop accuracy on them is the check that it
computes the intermediate city B rather than memorising A -> C (measured: 1.00 on all three tasks,
held-out people included). Since four people share a city and two cities share a country, a feature
that stands for one city is a real intermediate: neither a memory of one person nor the answer.

The circuit, in a 2-layer GPT-2 (d_model 64, 4 heads): at the "city" position (the same tokens as
the one-hop prompt, so the model must predict the city there) layer 0's attention brings in the
person and layer 0's MLP writes the city: one transcoder feature per city fires there (and weakly
at the person's position); at the last position layer 1's attention reads the city position (heads 0
and 3 put 0.89 and 0.99 on it for "Chris city country") and its value-output map raises the country.
The attribution graph shows this as person embedding -> layer-0 city feature -> country logit (the
top route for 26 of the 32 people). B -> C is done by layer 1's attention, not its MLP: zeroing layer
1's MLP leaves every answer right. The model is also redundant: zeroing layer 0's whole MLP still
leaves 0.94 of the two-hop answers right (attention alone maps some people to their city), and
zeroing a city's feature lowers its people's answer by 0.03 to 2.9 (mean per city), which the graph's
linear estimate overstates (it freezes the attention patterns, which move; notebook 08).

`two_hop()` trains the model (1500 full-batch steps) and one ReLU transcoder per layer (64
features) on its own activations (MLP input "mlp_in" -> MLP output "mlp", an L1 penalty;
`llm_widgets.dictionaries.train.train_transcoder`; fraction of variance unexplained 0.007 and 0.016,
about 2 features per token): about 20 s together on one idle CPU thread, 1-2 minutes on a busy shared
one; seeded, bit-identical on retraining; then cached. It finds each city's feature from data: the
transcoder feature most selective for the city over all two-hop prompts (`find_b_features`).

    th = lw.teaching.two_hop()
    th.prompt("Mary")                  # 'Mary city country'
    th.f["Mary"], th.g[th.f["Mary"]]   # the intermediate B and the answer C
    layer, feature = th.b_feature(th.f["Mary"])
    with lw.edit_features(th.session, th.transcoders[layer], ablate=[feature]): ...
"""
from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ..dictionaries.activations import collect_activations, site_activations
from ..dictionaries.coding import Weights
from ..dictionaries.dictionary import Dictionary
from ..dictionaries.train import train_transcoder
from ..dictionaries.edit import site_writes, splice_op
from ..errors import LLMWidgetsError
from ..execution import Program, intervene, run
from .ioi import NAMES
from .train import cache_dir, cached_training, fit_steps, load_weights, one_thread, save_weights, small_gpt2
from .vocab import word_level_tokenizer

PAD, BOS, UNK = "<pad>", "<bos>", "<unk>"
CITY, COUNTRY = "city", "country"  # the two relations, one token each
PEOPLE = NAMES[:32]
CITIES = ("Paris", "Lyon", "Rome", "Milan", "Tokyo", "Osaka", "Berlin", "Munich")
COUNTRIES = ("France", "Italy", "Japan", "Germany")
F_TABLE = {a: CITIES[i % len(CITIES)] for i, a in enumerate(PEOPLE)}  # 4 people per city
G_TABLE = {b: COUNTRIES[i // 2] for i, b in enumerate(CITIES)}  # 2 cities per country
HELD_OUT = PEOPLE[len(PEOPLE) // 2:]  # two per city: in no two-hop training prompt
TASKS = ("f", "g", "two_hop")


def vocabulary() -> list[str]:
    """The model's tokens in id order: specials, the two relations, people, cities, countries."""
    return [PAD, BOS, UNK, CITY, COUNTRY, *PEOPLE, *CITIES, *COUNTRIES]


def two_hop_tokenizer():
    """Word-level tokenizer over the world's words: 'Mary city country' -> <bos> Mary city country."""
    return word_level_tokenizer(vocabulary(), bos=BOS, unk=UNK, pad=PAD, max_length=8)


def prompt(a: str) -> str:
    """The two-hop prompt of person `a` (its answer: G_TABLE[F_TABLE[a]])."""
    return f"{_person(a)} {CITY} {COUNTRY}"


def f_prompt(a: str) -> str:
    """The one-hop prompt 'person city' (answer: F_TABLE[a])."""
    return f"{_person(a)} {CITY}"


def g_prompt(b: str) -> str:
    """The one-hop prompt 'city country' (answer: G_TABLE[b])."""
    if b not in G_TABLE:
        raise LLMWidgetsError(f"{b!r} is not a city of the two-hop world; cities: {CITIES}")
    return f"{b} {COUNTRY}"


def _person(a: str) -> str:
    if a not in F_TABLE:
        raise LLMWidgetsError(f"{a!r} is not a person of the two-hop world; people: {PEOPLE}")
    return a


def task_prompts(task: str, people=None) -> tuple[list[str], list[str]]:
    """(prompts, answers) of one task: 'f' and 'two_hop' for `people` (default: all), 'g' for
    every city."""
    if task not in TASKS:
        raise LLMWidgetsError(f"task must be one of {TASKS}, got {task!r}")
    if task == "g":
        return [g_prompt(b) for b in CITIES], [G_TABLE[b] for b in CITIES]
    people = list(PEOPLE if people is None else people)
    if task == "f":
        return [f_prompt(a) for a in people], [F_TABLE[a] for a in people]
    return [prompt(a) for a in people], [G_TABLE[F_TABLE[a]] for a in people]


def corpus() -> list[str]:
    """Every prompt of the world (all three tasks, all people): the transcoders' training text."""
    return task_prompts("f")[0] + task_prompts("g")[0] + task_prompts("two_hop")[0]


@dataclass(frozen=True)
class Settings:
    """The model's shape and training, and its transcoders' (tc_*); the cache key hashes them with
    the world's tables."""

    layers: int = 2
    heads: int = 4
    d_model: int = 64
    steps: int = 1500
    lr: float = 3e-3
    seed: int = 0
    people_std: float = 0.1  # the people's embeddings: fixed random codes of this scale (not trained)
    tc_features: int = 64  # per layer
    tc_l1: float = 0.1
    tc_steps: int = 3000
    tc_batch: int = 64
    tc_lr: float = 3e-3

    def key(self) -> str:
        data = [PEOPLE, CITIES, COUNTRIES, F_TABLE, G_TABLE, HELD_OUT, CITY, COUNTRY]
        blob = json.dumps({"v": 1, "settings": asdict(self), "data": data}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _build(st: Settings):
    return small_gpt2(len(vocabulary()), 8, st.d_model, st.layers, st.heads, st.seed, _people_ids(), st.people_std)


def _people_ids() -> list[int]:
    vocab = vocabulary()
    return [vocab.index(a) for a in PEOPLE]


def _encoded(texts: list[str], answers: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids [n, T] of texts of one length, answer ids [n])."""
    vocab = {w: i for i, w in enumerate(vocabulary())}
    ids = torch.tensor([[vocab[BOS]] + [vocab[w] for w in t.split()] for t in texts])
    return ids, torch.tensor([vocab[a] for a in answers])


def train(st: Settings, model=None, log=None):
    """Train a fresh model (or `model`) with settings `st`: full-batch steps (seeded, one CPU thread)
    on the mean answer loss over every prompt of the three tasks (f for every person, g for every
    city, two hops for the people not HELD_OUT). The people's embeddings stay at their random codes:
    trained, they would cluster by city and a direct person -> country readout would generalise to
    the held-out people without the intermediate. Returns the model (eval mode)."""
    model = model if model is not None else _build(st)
    trained = [a for a in PEOPLE if a not in HELD_OUT]
    batches = [_encoded(*task_prompts("f")), _encoded(*task_prompts("g")),
               _encoded(*task_prompts("two_hop", trained))]

    people = torch.tensor(_people_ids())
    n = sum(len(y) for _, y in batches)

    def loss(step):
        total = sum(torch.nn.functional.cross_entropy(model(input_ids=ids).logits[:, -1], y, reduction="sum")
                    for ids, y in batches)
        return total / n

    def fixed(grad):  # the people's codes stay random: no linear map reads their city off the embedding
        grad = grad.clone()
        grad[people] = 0
        return grad

    with one_thread():  # the hook on the tied input and output embedding
        return fit_steps(model, loss, st.steps, lr=st.lr, log=log, log_every=100, what="loss",
                         grad_hooks=[(model.transformer.wte.weight, fixed)])


def last_logits(session, texts: list[str]) -> np.ndarray:
    """[n, vocab] float64 logits at the last position of each text, through the execution layer
    (texts of one token count run as one batch): inside `lw.edit_features(...)` or `lw.ablate(...)`
    they are the edited model's."""
    enc = [session.tokenizer.encode(t) for t in texts]
    out = np.empty((len(texts), len(session.tokenizer)))
    groups: dict[int, list[int]] = {}
    for i, e in enumerate(enc):
        groups.setdefault(len(e), []).append(i)
    dev = session.device
    for idx in groups.values():
        ids = torch.tensor([enc[i] for i in idx], device=dev)
        res = run(session, Program({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, logits=[-1],
                                   label="two-hop answers"))
        out[idx] = res.logits[:, -1].double().cpu().numpy()
    return out


def accuracy(session, task: str = "two_hop", people=None) -> float:
    """Fraction of a task's prompts (`task_prompts`) whose answer is the argmax of the last logits."""
    texts, answers = task_prompts(task, people)
    want = [session.tokenizer.convert_tokens_to_ids(a) for a in answers]
    return float((last_logits(session, texts).argmax(-1) == np.array(want)).mean())


def prompt_features(session, transcoder, texts: list[str]) -> np.ndarray:
    """[n, F] each text's largest activation (over its positions) of every feature of `transcoder`,
    encoded from the activations at its input site (texts of one token count)."""
    enc = [session.tokenizer.encode(t) for t in texts]
    if len({len(e) for e in enc}) != 1:
        raise LLMWidgetsError("prompt_features takes texts of one token count")
    ids = torch.tensor(enc, device=session.device)
    x = site_activations(session, transcoder, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    return transcoder.encode(x).amax(1).double().cpu().numpy()


def selectivity(acts: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For features with activations acts [n prompts, F] and the prompts `members` ([n] bool) of one
    group: (share [F]: the fraction of each feature's total activation that falls on the group's
    prompts, coverage [F]: the fraction of the group's prompts where it is active)."""
    total = acts.sum(0)
    share = np.divide(acts[members].sum(0), total, out=np.zeros_like(total), where=total > 0)
    return share, (acts[members] > 0).mean(0)


def find_b_features(session, transcoders, layers=None) -> tuple[dict, dict]:
    """From data: for each city B, the (layer, feature) of the transcoder feature that is most
    selective for B over all two-hop prompts (largest share x coverage, see `selectivity`; ties:
    the larger mean activation on B's prompts), and its numbers {B: {"share", "coverage",
    "mean_in", "max_out"}} (mean activation on B's prompts, largest on the others'). `layers`: the
    transcoders searched (default: all but the last: the B -> C step must read B in a later layer;
    the last layer's MLP also sharpens the city's prediction at the 'city' position, but nothing
    after it can read that)."""
    texts = task_prompts("two_hop")[0]
    layers = range(len(transcoders) - 1) if layers is None else layers
    acts = {layer: prompt_features(session, transcoders[layer], texts) for layer in layers}
    city = np.array([F_TABLE[a] for a in PEOPLE])
    found, numbers = {}, {}
    for b in CITIES:
        members = city == b
        best = None
        for layer, a in acts.items():
            share, coverage = selectivity(a, members)
            score = np.round(share * coverage, 6) + 1e-9 * a[members].mean(0)
            j = int(score.argmax())
            if best is None or score[j] > best[0]:
                best = (score[j], layer, j, share[j], coverage[j], a[members, j].mean(), a[~members, j].max())
        _, layer, j, share, coverage, mean_in, max_out = best
        found[b] = (layer, j)
        numbers[b] = {"share": float(share), "coverage": float(coverage), "mean_in": float(mean_in),
                      "max_out": float(max_out)}
    return found, numbers


def top_path(graph, source: int, target: int, *, direct: bool = False) -> list[int]:
    """The node rows of the route from node `source` to node `target` of an attribution graph
    (llm_widgets.circuits.graph.Graph) that carries the most of the target's attribution: the path
    with the largest product of normalised edge weights (each edge's share of its target's absolute
    inputs, as influence weighs them; the bias node left out). `direct`: whether the edge from the
    source straight into the target (attention and norms frozen) counts as a route; by default a route
    passes through at least one other node."""
    from ..circuits.prune import normalized

    A = graph.adjacency()  # [target, source]
    A[:, graph.rows("bias")] = 0
    A = normalized(A)
    if not direct:
        A[target, source] = 0
    later = np.where(graph.kind == "logit", np.iinfo(np.int64).max, graph.layer * (graph.position.max() + 1)
                     + graph.position)
    best = np.full(graph.n_nodes, -np.inf)
    best[source] = 0.0
    prev = np.full(graph.n_nodes, -1)
    for v in np.argsort(later, kind="stable"):  # the graph is acyclic along layers, then positions
        if best[v] == -np.inf:
            continue
        for t in np.flatnonzero(A[:, v] > 0):
            if best[v] + np.log(A[t, v]) > best[t]:
                best[t], prev[t] = best[v] + np.log(A[t, v]), v
    if best[target] == -np.inf:
        raise LLMWidgetsError(f"no route from node {source} to node {target} in this graph")
    path = [int(target)]
    while path[-1] != source:
        path.append(int(prev[path[-1]]))
    return path[::-1]


def _transcoders(session, st: Settings) -> list[Dictionary]:
    """One ReLU transcoder per layer, trained on the MLP input and output of every token of `corpus()`."""
    texts = corpus()
    out = []
    with one_thread():
        for layer in range(st.layers):
            x = collect_activations(session, texts, ("mlp_in", layer))
            y = collect_activations(session, texts, ("mlp", layer))
            out.append(train_transcoder(x, y, st.tc_features, kind="l1", l1=st.tc_l1, steps=st.tc_steps,
                                        batch=st.tc_batch, lr=st.tc_lr, seed=st.seed + layer,
                                        site=("mlp_in", layer), out_site=("mlp", layer)))
    return out


_TENSORS = ("W_enc", "b_enc", "W_dec", "b_dec")


def _holder(st: Settings, tcs=None) -> torch.nn.ParameterDict:
    """The transcoders' tensors as one module (so train.save_weights / load_weights cache them):
    those of `tcs`, or zeros of their shapes to load into."""
    d, F = st.d_model, st.tc_features
    shapes = {"W_enc": (d, F), "b_enc": (F,), "W_dec": (F, d), "b_dec": (d,)}
    return torch.nn.ParameterDict({
        f"{layer}_{k}": torch.nn.Parameter(getattr(tcs[layer].weights, k).clone() if tcs else torch.zeros(shapes[k]),
                                           requires_grad=False)
        for layer in range(st.layers) for k in _TENSORS})


def _cached_transcoders(session, st: Settings, path, retrain: bool) -> list[Dictionary]:
    """The transcoders cached at `path`, or trained on `session` (and cached) when absent or `retrain`."""
    if retrain or not path.exists():
        save_weights(_holder(st, _transcoders(session, st)), path)
    held = load_weights(_holder(st), path)
    return [Dictionary(Weights(**{k: held[f"{layer}_{k}"].detach() for k in _TENSORS}, activation="relu"),
                       site=("mlp_in", layer), out_site=("mlp", layer), name=f"two-hop transcoder, layer {layer}")
            for layer in range(st.layers)]


@dataclass
class TwoHop:
    """The two-hop teaching model: `session`, `transcoders` (one per layer: "mlp_in" -> "mlp" of
    that block), the tables `f` (person -> city) and `g` (city -> country), `held_out` (the people of
    no two-hop training prompt), and the city features found from data (`b_feature`, with their
    selectivity numbers in `b_selectivity`)."""

    session: Any
    transcoders: list
    f: dict
    g: dict
    held_out: tuple
    b_features: dict = field(default_factory=dict)
    b_selectivity: dict = field(default_factory=dict)

    def prompt(self, a: str) -> str:
        """The two-hop prompt of person `a`: 'Mary city country' (answer: g[f[a]])."""
        return prompt(a)

    def answer(self, a: str) -> str:
        """The two-hop answer of person `a`: the country of their city."""
        return self.g[self.f[_person(a)]]

    def b_feature(self, b: str) -> tuple[int, int]:
        """(layer, feature index) of the transcoder feature that stands for city `b`: of all
        transcoder features, the one most selective for `b` over the two-hop prompts (its share of
        activation on the prompts whose person lives in `b`, times the fraction of them where it
        fires; `find_b_features`)."""
        if b not in self.b_features:
            raise LLMWidgetsError(f"{b!r} is not a city of the two-hop world; cities: {CITIES}")
        return self.b_features[b]

    def accuracy(self, task: str = "two_hop", people=None) -> float:
        """Fraction of a task's prompts answered right (argmax): 'f', 'g' or 'two_hop'."""
        return accuracy(self.session, task, people)

    @contextmanager
    def replaced(self):
        """While inside, every MLP's output is its transcoder's reconstruction alone (no error term):
        the replacement model the attribution graph reads (with attention and norms live)."""
        writes = [w for tc in self.transcoders for w in site_writes(self.session, tc, splice_op(tc, keep_error=False))]
        with intervene(self.session, writes):
            yield


def two_hop(*, seed: int = 0, device=None, retrain: bool = False, verbose: bool = False) -> TwoHop:
    """The two-hop teaching model and its transcoders (see the module docstring); trained here the
    first time (seconds, one CPU thread), then loaded from cache_dir() (keyed by a hash of the
    settings and the world's tables)."""
    from ..session import Session

    st = Settings(seed=seed)
    path = cache_dir() / f"two-hop-{st.key()}.pt"
    model, _ = cached_training(_build(st), path, lambda m: train(st, m, log=print if verbose else None),
                               load=not retrain, verbose=verbose)
    model.eval()
    session = Session(model, two_hop_tokenizer(), name="two-hop-2L4H-d64 (GPT-2, teaching)", device=device or "cpu")
    tcs = _cached_transcoders(session, st, cache_dir() / f"two-hop-{st.key()}-transcoders.pt", retrain)
    found, numbers = find_b_features(session, tcs)
    return TwoHop(session=session, transcoders=tcs, f=dict(F_TABLE), g=dict(G_TABLE), held_out=HELD_OUT,
                  b_features=found, b_selectivity=numbers)


__all__ = ["CITIES", "COUNTRIES", "F_TABLE", "G_TABLE", "HELD_OUT", "PEOPLE", "Settings", "TwoHop", "accuracy",
           "corpus", "f_prompt", "find_b_features", "g_prompt", "last_logits", "prompt", "prompt_features",
           "selectivity", "task_prompts", "top_path", "two_hop", "two_hop_tokenizer"]
