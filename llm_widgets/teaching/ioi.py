"""A small GPT-2 that solves indirect object identification (IOI), trained here in minutes (cached).

IOI (Wang et al. 2022, "Interpretability in the Wild"): in "When Mary and John went to the store,
John gave a drink to" the next word is " Mary", the indirect object (IO): the name that is NOT
repeated. The subject (S, " John") appears twice. A model solves IOI when it prefers IO over S, i.e.
logit(IO) - logit(S) > 0 at the last position: the *logit difference*, the task's metric.

`ioi_model()` trains a GPT-2 (4 layers, 4 heads, d_model 64, layer norm, MLPs, learned positions, tied
embeddings; 2500 steps of 64 sentences) with a word-level vocabulary on generated IOI sentences: 22
training templates, 100 single-token names, both name orders ("ABBA": When A and B ..., B gave ... to
A; "BABA": When B and A ..., B gave ... to A), sometimes after a preamble or with an adjective, mixed
with plain sentences that use every name (some name one person twice, so copying a name is learned
for every name, as a pretrained model has). 6 templates and 20 names are held out of the IOI
sentences: `ioi_prompts(n, split="test")` builds prompts from held-out templates with held-out names
only, the check that the model learned the task rather than the sentences. Each name's embedding is a
fixed random code plus one offset that all names share (trained), so a held-out name is a code the
model has not seen in an IOI sentence, not an untrained vector.

On 2000 held-out prompts IO is preferred over S in 96.6% (mean logit difference 5.0; 10.0 on training
prompts). Unlike GPT-2 small's circuit (duplicate-token and induction heads, S-inhibition heads, name
movers in the late layers), most of it is in layer 0 at the last position: head L0H3 attends from the
last token to the most recent name (the repeated subject) and its output, with layer 0's MLP, pushes
that name down; the other layer-0 heads attend to both earlier names.

    s = lw.teaching.ioi_model()                     # Session; ~3 minutes the first time, then cached
    ps = lw.teaching.ioi_prompts(100, split="test")
    lw.teaching.logit_diff(s, ps).mean()            # > 0: IO preferred over S
    p = ps[0]
    lw.direct_logit_attribution(s, p.text, target=" " + p.io, contrast=" " + p.s)
    lw.PatchingView(s, p.text, p.corrupted, answers=(" " + p.io, " " + p.s))

`ioi_prompts` and `logit_diff` only use the session's tokenizer and model, so the same cells run on
GPT-2 small (`lw.load("gpt2")`) where the hub is reachable.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .train import cache_dir, cached_training, fit_steps, one_thread, small_gpt2
from .vocab import word_level_tokenizer

PAD, BOS, UNK = "<pad>", "<bos>", "<unk>"

#: single-token names (100); every fifth one is held out of the IOI training sentences (`TEST_NAMES`)
NAMES = ("Mary", "John", "Tom", "James", "Anna", "Kate", "Paul", "Lisa", "Mark", "Sarah",
         "David", "Emma", "Peter", "Laura", "Mike", "Jane", "Chris", "Amy", "Steve", "Alice",
         "Bob", "Carol", "Dan", "Eve", "Frank", "Grace", "Henry", "Irene", "Jack", "Julia",
         "Kevin", "Linda", "Max", "Nora", "Oscar", "Rose", "Sam", "Tina", "Victor", "Wendy",
         "Adam", "Beth", "Carl", "Diana", "Eric", "Fiona", "George", "Helen", "Ian", "Joan",
         "Alex", "Ben", "Claire", "Daniel", "Ellen", "Fred", "Gary", "Hannah", "Jason", "Karen",
         "Leo", "Martha", "Nick", "Olivia", "Patrick", "Rachel", "Robert", "Susan", "Tim", "Victoria",
         "William", "Andrew", "Brian", "Emily", "Jessica", "Joseph", "Lucy", "Michael", "Nancy", "Richard",
         "Ruth", "Simon", "Thomas", "Anne", "Bill", "Charles", "Edward", "Jim", "Kelly", "Lily",
         "Matt", "Megan", "Ryan", "Scott", "Sophie", "Amanda", "Jeff", "Joe", "Maria", "Tony")
TEST_NAMES = NAMES[4::5]
TRAIN_NAMES = tuple(n for n in NAMES if n not in TEST_NAMES)

PLACES = ("store", "park", "school", "garden", "office", "station", "restaurant", "hospital", "house",
          "beach", "market", "library")
OBJECTS = ("drink", "ring", "book", "kiss", "bone", "basketball", "computer", "necklace", "flower", "snack",
           "letter", "bag")

# {X} and {Y}: the first two names (IO and S in ABBA order, S and IO in BABA order); {S}: the subject
# again; the prompt ends where the IO comes next. Every word of the held-out templates also occurs in
# the training templates: they are new sentences, not new words.
TRAIN_TEMPLATES = (
    "When {X} and {Y} went to the {place}, {S} gave a {object} to",
    "Then, {X} and {Y} went to the {place}. {S} gave a {object} to",
    "After {X} and {Y} went to the {place}, {S} gave a {object} to",
    "While {X} and {Y} were working at the {place}, {S} gave a {object} to",
    "While {X} and {Y} were commuting to the {place}, {S} gave a {object} to",
    "After the lunch, {X} and {Y} went to the {place}. {S} gave a {object} to",
    "Afterwards, {X} and {Y} went to the {place}. {S} gave a {object} to",
    "Then, {X} and {Y} had a lot of fun at the {place}. {S} gave a {object} to",
    "Then, {X} and {Y} had a long argument, and afterwards {S} said to",
    "Friends {X} and {Y} found a {object} at the {place}. {S} gave it to",
    "The {place} {X} and {Y} went to had a {object}. {S} gave it to",
    "When {X} and {Y} got a {object} at the {place}, {S} decided to give it to",
    "When {X} and {Y} got a {object} at the {place}, {S} decided to give the {object} to",
    "After taking a long break, {X} and {Y} went to the {place}. {S} handed a {object} to",
    "Then {X} and {Y} were thinking about going to the {place}. {S} wanted to give a {object} to",
    "The big {place} that {X} and {Y} went to had a {object}. {S} gave it to",
    "Then, {X} and {Y} were working at the {place}. {S} decided to give a {object} to",
    "Later, {X} and {Y} met at the {place}, and {S} sent a {object} to",
    "Yesterday {X} and {Y} walked to the {place}. {S} passed a {object} to",
    "On Monday, {X} and {Y} cleaned the {place}. {S} threw a {object} to",
    "When {X} and {Y} arrived, {S} showed the {object} to",
    "{X} and {Y} visited the {place}, and then {S} brought a {object} to",
)
TEST_TEMPLATES = (
    "Then, {X} and {Y} had a long argument. Afterwards {S} said to",
    "When {X} and {Y} arrived at the {place}, {S} showed a {object} to",
    "After {X} and {Y} cleaned the {place}, {S} brought a {object} to",
    "Yesterday {X} and {Y} were at the {place}, and {S} handed the {object} to",
    "The {place} that {X} and {Y} visited had a {object}. {S} passed it to",
    "While {X} and {Y} walked to the {place}, {S} threw a {object} to",
)
# plain sentences that use every name (the held-out ones too), as a pretrained model has read them: a
# name mentioned once, or named again later (so copying a name from context is learned for every
# name), never an IOI sentence (no two names with one of them repeated)
BACKGROUND = (
    "{X} went to the {place}.",
    "Then, {X} had a {object} at the {place}.",
    "{X} and {Y} were at the {place}.",
    "Yesterday {X} found a {object}.",
    "When {X} arrived, the {place} was big.",
    "{X} went to the {place}, and then {X} had a {object}.",
    "After {X} found a {object}, {X} went to the {place}.",
    "Then {X} was thinking about the {object}, and {X} wanted to give it to the {place}.",
    "Friends of {X} met at the {place}. {X} had a {object}.",
    "{X} and {Y} went to the {place}. Later, {X} and {Y} had a {object}.",
    "When {X} and {Y} arrived, the {place} was big. Then {X} and {Y} found a {object}.",
)
# variations of the training sentences (so that no position is special): a sentence without names
# before them, an adjective before the place
PREAMBLES = ("It was a long day.", "The weather was nice.", "It was Monday.", "The day was long and the sun was out.")
ADJECTIVES = ("big", "small", "old", "new", "local")

_WORD = re.compile(r"\w+|[^\w\s]+")  # what the `tokenizers` Whitespace pre-tokenizer splits on


def words(text: str) -> list[str]:
    """`text` split as the tokenizer splits it: words and punctuation."""
    return _WORD.findall(text)


def _vocabulary() -> list[str]:
    seen = []
    for t in TRAIN_TEMPLATES + TEST_TEMPLATES + BACKGROUND + PREAMBLES:
        seen += words(re.sub(r"\{\w+\}", " ", t))
    seen += list(NAMES + PLACES + OBJECTS + ADJECTIVES)
    return [PAD, BOS, UNK] + sorted(set(seen))


def ioi_tokenizer():
    """Word-level tokenizer over the IOI vocabulary: 'When Mary and John' -> <bos> When Mary and John
    (words and punctuation are tokens; ' Mary' is the one token 'Mary')."""
    return word_level_tokenizer(_vocabulary(), bos=BOS, unk=UNK, pad=PAD, max_length=64, punctuation=True)


@dataclass(frozen=True)
class IOIPrompt:
    """One IOI prompt: `text` ends where the indirect object comes next (" " + io is the answer, " " + s
    the subject it is contrasted with). `corrupted` is the same text with the second mention of the
    subject replaced by a third name `c` (the "ABC" version: no name is repeated, so nothing tells
    IO from S; same number of tokens, for patching)."""

    text: str
    io: str
    s: str
    corrupted: str
    c: str
    template: int  # index into TRAIN_TEMPLATES or TEST_TEMPLATES (by split)
    order: str  # "ABBA" (IO named first) or "BABA" (S named first)


def _fill(template: str, x: str, y: str, s: str, place: str, obj: str) -> str:
    return template.format(X=x, Y=y, S=s, place=place, object=obj)


def _split(split: str):
    if split == "train":
        return TRAIN_TEMPLATES, TRAIN_NAMES
    if split == "test":
        return TEST_TEMPLATES, TEST_NAMES
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def ioi_prompts(n: int = 100, split: str = "test", seed: int = 0, *, order: str | None = None) -> list[IOIPrompt]:
    """`n` IOI prompts (seeded). split="test": held-out templates with held-out names only (never in an
    IOI training sentence); split="train": the training templates and names. Names IO, S, C are three
    different names; the orders alternate ABBA, BABA (or all `order`); place and object at random."""
    if order not in (None, "ABBA", "BABA"):
        raise ValueError(f"order must be 'ABBA', 'BABA' or None, got {order!r}")
    templates, names = _split(split)
    g = np.random.default_rng([seed, 7919])
    out = []
    for i in range(n):
        t = int(g.integers(len(templates)))
        io, s, c = (names[j] for j in g.choice(len(names), size=3, replace=False))
        place, obj = PLACES[int(g.integers(len(PLACES)))], OBJECTS[int(g.integers(len(OBJECTS)))]
        o = order or ("ABBA", "BABA")[i % 2]
        x, y = (io, s) if o == "ABBA" else (s, io)
        out.append(IOIPrompt(text=_fill(templates[t], x, y, s, place, obj), io=io, s=s,
                             corrupted=_fill(templates[t], x, y, c, place, obj), c=c, template=t, order=o))
    return out


def _batch(st: "Settings", step: int, vocab: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One training batch, seeded by (seed, step): `st.batch` sentences, IOI ones (training templates
    and names, both orders, the answer appended) and background ones (any names) with probability
    st.background. Returns (ids [B, T] right-padded, labels [B, T] (-100 at padding), answer [B] the
    position whose next token is the IO, -1 for background sentences)."""
    g = np.random.default_rng([st.seed, step, 104729])
    seqs, answer = [], []
    for _ in range(st.batch):
        place, obj = PLACES[int(g.integers(len(PLACES)))], OBJECTS[int(g.integers(len(OBJECTS)))]
        if g.random() < st.background:
            t = BACKGROUND[int(g.integers(len(BACKGROUND)))]
            x, y = (NAMES[j] for j in g.choice(len(NAMES), size=2, replace=False))
            w = words(_fill(t, x, y, x, place, obj))
            answer.append(-1)
        else:
            t = TRAIN_TEMPLATES[int(g.integers(len(TRAIN_TEMPLATES)))]
            io, s = (TRAIN_NAMES[j] for j in g.choice(len(TRAIN_NAMES), size=2, replace=False))
            x, y = (io, s) if g.random() < 0.5 else (s, io)
            if g.random() < st.vary:
                place = f"{ADJECTIVES[int(g.integers(len(ADJECTIVES)))]} {place}"
            pre = PREAMBLES[int(g.integers(len(PREAMBLES)))] + " " if g.random() < st.vary else ""
            w = words(pre + _fill(t, x, y, s, place, obj)) + [io]
            answer.append(len(w) - 1)  # <bos> first: position len(w) - 1 holds the last prompt word
        seqs.append([vocab[BOS]] + [vocab[x] for x in w])
    T = max(len(q) for q in seqs)
    ids = torch.full((len(seqs), T), vocab[PAD])
    for i, q in enumerate(seqs):
        ids[i, :len(q)] = torch.tensor(q)
    labels = ids.masked_fill(ids == vocab[PAD], -100)
    return ids, labels, torch.tensor(answer)


@dataclass(frozen=True)
class Settings:
    layers: int = 4
    heads: int = 4
    d_model: int = 64
    steps: int = 2500
    batch: int = 64
    lr: float = 2e-3
    background: float = 0.3  # share of plain sentences in a batch
    vary: float = 0.3  # chance of a preamble, and of an adjective, in an IOI training sentence
    answer_weight: float = 1.0  # weight of the IO answer's loss, added to the language-model loss
    name_std: float = 0.1  # the names' embeddings: random codes of this scale, plus one offset they share
    seed: int = 0

    def key(self) -> str:
        data = [NAMES, TEST_NAMES, TRAIN_TEMPLATES, TEST_TEMPLATES, BACKGROUND, PREAMBLES, ADJECTIVES, PLACES,
                OBJECTS]
        blob = json.dumps({"v": 1, "settings": asdict(self), "data": data}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _build(st: Settings, vocab_size: int):
    return small_gpt2(vocab_size, 64, st.d_model, st.layers, st.heads, st.seed, _name_ids(), st.name_std)


def _name_ids() -> list[int]:
    vocab = _vocabulary()
    return [vocab.index(n) for n in NAMES]


def train(st: Settings, model=None, log=None):
    """Train a fresh model (or `model`) with settings `st` (seeded, one CPU thread). Returns it.

    Each step draws its batch from `_batch(st, step)`; the loss is the next-token loss over every
    token plus `answer_weight` times the loss of the IO answer."""
    vocab = {w: i for i, w in enumerate(_vocabulary())}
    model = model if model is not None else _build(st, len(vocab))
    names = torch.tensor(_name_ids())

    def loss(step):
        ids, labels, answer = _batch(st, step, vocab)
        out = model(input_ids=ids, attention_mask=(labels != -100).long(), labels=labels)
        rows = torch.nonzero(answer >= 0).flatten()
        if not len(rows):
            return out.loss
        at = answer[rows]
        ans = torch.nn.functional.cross_entropy(out.logits[rows, at], ids[rows, at + 1])
        return out.loss + st.answer_weight * ans

    def shared(grad):  # every name (held-out ones too) moves by the same step: they differ by their codes
        grad = grad.clone()
        grad[names] = grad[names].mean(0)
        return grad

    with one_thread():  # the hook on the tied input and output embedding
        return fit_steps(model, loss, st.steps, lr=st.lr, log=log, log_every=100, what="loss",
                         grad_hooks=[(model.transformer.wte.weight, shared)])


def ioi_model(*, layers: int = 4, heads: int = 4, d_model: int = 64, steps: int = 2500, seed: int = 0,
              device=None, retrain: bool = False, verbose: bool = False):
    """A Session over a small GPT-2 trained to complete IOI sentences (see the module docstring).

    Weights are cached under cache_dir() keyed by a hash of the settings and the generated data's
    word lists, so later calls load in milliseconds."""
    from ..session import Session

    if layers < 1 or heads < 1 or steps < 0:
        raise ValueError("layers and heads must be at least 1, steps at least 0")
    if d_model % heads:
        raise ValueError(f"d_model ({d_model}) must be a multiple of heads ({heads})")
    st = Settings(layers=layers, heads=heads, d_model=d_model, steps=steps, seed=seed)
    tok = ioi_tokenizer()
    path = cache_dir() / f"ioi-{st.key()}.pt"
    model = _build(st, len(tok))
    model, _ = cached_training(model, path, lambda m: train(st, m, log=print if verbose else None),
                               load=not retrain, verbose=verbose)
    model.eval()
    return Session(model, tok, name=f"ioi-{layers}L{heads}H-d{d_model} (GPT-2, teaching)", device=device or "cpu")


def _answer_id(tok, name: str) -> int:
    ids = tok.encode(" " + name, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{name!r} is {len(ids)} tokens for this tokenizer: IOI needs single-token names")
    return ids[0]


def logit_diff(session, prompts, *, corrupted: bool = False) -> np.ndarray:
    """logit(" " + IO) - logit(" " + S) at the last position of each prompt (of `ioi_prompts`), or of
    its corrupted text when `corrupted`; float64 [len(prompts)]. Positive: the model prefers the
    indirect object. Prompts of the same token count run as one batch."""
    if isinstance(prompts, IOIPrompt):
        prompts = [prompts]
    tok, model = session.tokenizer, session.model
    texts = [p.corrupted if corrupted else p.text for p in prompts]
    enc = [tok.encode(t) for t in texts]
    io = [_answer_id(tok, p.io) for p in prompts]
    s = [_answer_id(tok, p.s) for p in prompts]
    out = np.empty(len(prompts))
    groups: dict[int, list[int]] = {}
    for i, e in enumerate(enc):
        groups.setdefault(len(e), []).append(i)
    dev = next(model.parameters()).device
    with torch.no_grad():
        for idx in groups.values():
            ids = torch.tensor([enc[i] for i in idx], device=dev)
            last = model(input_ids=ids).logits[:, -1].double()
            r = torch.arange(len(idx))
            a, b = torch.tensor([io[i] for i in idx]), torch.tensor([s[i] for i in idx])
            out[idx] = (last[r, a] - last[r, b]).cpu().numpy()
    return out


__all__ = ["IOIPrompt", "NAMES", "TEST_NAMES", "TRAIN_NAMES", "TEST_TEMPLATES", "TRAIN_TEMPLATES", "Settings",
           "ioi_model", "ioi_prompts", "ioi_tokenizer", "logit_diff", "words"]
