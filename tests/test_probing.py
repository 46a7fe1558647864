"""Probing: batched extraction equals single-text traces, probes find known answers (MiniLM on
generated tense/number data; a planted signal at one layer), the view carries the same numbers."""
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

import llm_widgets as lw
from llm_widgets.compute.activations import extract, token_states
from llm_widgets.compute.probing import control_task, probe_layers
from llm_widgets.errors import EmptyInputError, LLMWidgetsError, NonFiniteError
from llm_widgets.widgets.traits import _unpack

XSS = '<img src=x onerror="window.__xss=1">'


@pytest.fixture(scope="session")
def tiny_bert(minilm_tokenizer):
    """A 4-layer BERT (hidden 32) with seeded random weights and MiniLM's tokenizer."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=minilm_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=4,
                     num_attention_heads=4, intermediate_size=64, max_position_embeddings=64)
    return lw.load((BertModel(cfg).eval(), minilm_tokenizer), device="cpu")


class Planted:
    """Hooks that add `scale * sign(label) * e_5` to the hidden state after block k-1 (hidden_states
    index k) and remove it before block k runs, so only layer k carries the label. The label of a
    text is secret (random per text), so no other layer can know it."""

    def __init__(self, session, texts, labels, k, scale=3.0):
        model, tok = session.model, session.tokenizer
        self.sign = {tuple(tok(t)["input_ids"]): 1.0 if lab == "1" else -1.0 for t, lab in zip(texts, labels)}
        self.d = torch.zeros(model.config.hidden_size)
        self.d[5] = scale
        self.cur = None
        pad = tok.pad_token_id
        layers = model.encoder.layer

        def remember(mod, args, kwargs):
            ids = kwargs["input_ids"].tolist()
            self.cur = torch.tensor([self.sign[tuple(i for i in row if i != pad)] for row in ids])

        def plant(mod, args, out):  # in place: transformers may have recorded this tensor already
            out.add_(self.cur[:, None, None] * self.d)

        def unplant(mod, args):
            return (args[0] - self.cur[:, None, None] * self.d,) + tuple(args[1:])

        self.handles = [model.register_forward_pre_hook(remember, with_kwargs=True),
                        layers[k - 1].register_forward_hook(plant)]
        if k < len(layers):
            self.handles.append(layers[k].register_forward_pre_hook(unplant))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


# -- known answers on MiniLM ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm_probes(minilm):
    out = {}
    for name in ("tense", "subject_number"):
        ds = lw.datasets.ALL[name](120)
        out[name] = probe_layers(extract(minilm, ds.texts, ds.labels), seeds=3)
    return out


@pytest.mark.parametrize("name", ["tense", "subject_number"])
def test_minilm_middle_layers_know_tense_and_number(minilm_probes, name):
    r = minilm_probes[name]
    assert r.n_layers == 6 and r.accuracy.shape == (7, 3)  # 6 blocks + the embeddings
    assert abs(r.majority - 0.5) < 0.05  # balanced classes
    mid = [2, 3, 4]
    assert (r.mean[mid] >= 0.9).all() and (r.mean[mid] > r.majority + 0.35).all()
    assert (r.mean[mid] > r.control_mean[mid] + 0.2).all()
    assert (r.selectivity[mid] > 0.2).all() and (r.selectivity > 0).all()
    df = r.to_frame()
    assert list(df.columns) == ["layer", "accuracy", "ci95", "control", "control_ci95", "selectivity", "majority"]
    np.testing.assert_allclose(df.accuracy, r.accuracy.mean(1))


def test_minilm_embedding_layer_below_best_for_tense(minilm_probes):
    r = minilm_probes["tense"]
    assert r.mean[0] < r.mean.max() - 0.05 and r.best_layer != lw.EMBEDDINGS


@pytest.mark.parametrize("k", [1, 3])
def test_planted_signal_peaks_at_its_layer(tiny_bert, k):
    ds = lw.datasets.subject_number(80, seed=3)
    rng = np.random.default_rng(k)
    secret = [str(int(v)) for v in rng.integers(0, 2, len(ds))]
    with Planted(tiny_bert, ds.texts, secret, k):
        acts = extract(tiny_bert, ds.texts, secret, batch_size=16)
    r = probe_layers(acts, seeds=3)
    assert r.best_layer == k - 1 and r.mean[k] >= 0.95  # hidden state k is block k - 1's output
    others = np.delete(r.mean, k)
    assert (others < 0.8).all(), r.mean  # no other layer knows a random label
    assert r.selectivity[k] > 0.3
    # without the hooks the same layer knows nothing
    plain = probe_layers(extract(tiny_bert, ds.texts, secret), seeds=3)
    assert plain.mean[k] < 0.8


# -- extraction -----------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["tiny_bert", "tiny_gpt2"])
def test_batched_extraction_equals_single_traces(request, which):
    s = request.getfixturevalue(which)
    texts = ["The cat sat.", "A much longer sentence about dogs and their owners in the park today.",
             "Hi", "Two short words"]
    sent = extract(s, texts, batch_size=3)  # padding inside batches
    tok = extract(s, texts, level="token", batch_size=2)
    per_text = token_states(s, texts, batch_size=3)
    r = 0
    for i, text in enumerate(texts):
        tr = s.trace(text)
        np.testing.assert_allclose(per_text[i][0], tr.hidden_states, atol=2e-4)
        np.testing.assert_array_equal(per_text[i][1], tr.special_mask)
        keep = ~tr.special_mask
        np.testing.assert_allclose(sent.states[:, i], tr.hidden_states[:, keep].mean(1), atol=2e-4)
        for j in np.flatnonzero(keep):
            assert tok.text_index[r] == i and tok.token_index[r] == j
            np.testing.assert_allclose(tok.states[:, r], tr.hidden_states[:, j], atol=2e-4)
            r += 1
    assert r == len(tok)
    first = extract(s, texts[:2], pooling="first")
    np.testing.assert_allclose(first.states[:, 1], s.trace(texts[1]).hidden_states[:, 0], atol=2e-4)


def test_word_labels_reach_every_subword_token(tiny_bert):
    texts = ["The small boy watches the light", "The zyxwvq qwpl runs"]
    labels = [["other", "other", "noun", "verb", "other", "noun"], ["other", "noun", None, "verb"]]
    a = extract(tiny_bert, texts, labels, level="token")
    rows = [(a.tokens[i][j], lab, t) for i, j, lab, t in zip(a.text_index, a.token_index, a.labels, a.types)]
    assert rows[:6] == [("the", "other", "the"), ("small", "other", "small"), ("boy", "noun", "boy"),
                        ("watches", "verb", "watches"), ("the", "other", "the"), ("light", "noun", "light")]
    rest = rows[6:]
    pieces = [r for r in rest if r[2] == "zyxwvq"]
    assert len(pieces) >= 2 and all(r[1] == "noun" for r in pieces)  # one word, several sub-word tokens
    assert not any(r[2] == "qwpl" for r in rest)  # label None: skipped
    assert rest[-1][:2] == ("runs", "verb")


# -- probe mechanics on synthetic activations ---------------------------------------------------------
def test_ci_majority_and_confusion_on_synthetic_data():
    rng = np.random.default_rng(0)
    n = 120
    y = np.array(["a"] * 90 + ["b"] * 30)
    X = rng.normal(size=(3, n, 8)).astype(np.float32)
    X[1, :, 0] += np.where(y == "b", 4.0, -4.0)  # only layer 1 separates the classes
    r = probe_layers(X, y, seeds=4, control=False)
    assert r.control is None and np.isnan(r.control_mean).all()
    assert r.best_layer == 0 and r.mean[1] == 1.0  # row 1 is block 0
    assert abs(r.majority - 0.75) < 0.02
    half = stats.t.ppf(0.975, 3) * r.accuracy.std(axis=1, ddof=1) / 2
    np.testing.assert_allclose(r.ci, half)
    assert r.confusion.shape == (3, 2, 2) and (r.confusion.sum(axis=(1, 2)) == 4 * 30).all()
    assert np.trace(r.confusion[1]) == 120
    assert r.wrong[1] == [] and all(w["true"] != w["pred"] for w in r.wrong[0])
    conf = [w["confidence"] for w in r.wrong[0]]
    assert conf == sorted(conf, reverse=True)
    mlp = probe_layers(X[:2], y, seeds=2, control=False, probe="mlp")
    assert mlp.mean[1] > 0.9


def test_margins_of_wrong_rows_multiclass_and_binary():
    """margin_direction rebuilds each mistaken probe's logit(pred) - logit(true) from its stored
    weights: positive for every wrong row; for two classes sigmoid(margin) is the confidence."""
    rng = np.random.default_rng(1)
    for n_cls in (3, 2):
        y = np.array([f"c{k % n_cls}" for k in range(90)])
        X = rng.normal(size=(2, 90, 6)).astype(np.float32)
        X[1, :, 0] += np.array([int(v[1]) for v in y]) * 1.2  # noisy signal: some mistakes
        r = probe_layers(X, y, seeds=3, control=False)
        checked = 0
        for w in r.wrong[1]:
            u, b = r.margin_direction(0, w["seed"], w["pred"], w["true"])  # block 0 = row 1
            margin = float((X[1, w["row"]] - r.weights[1][w["seed"]]["mean"]) @ u + b)
            assert margin > 0
            if n_cls == 2:
                assert 1 / (1 + np.exp(-margin)) == pytest.approx(w["confidence"], abs=1e-4)
            checked += 1
        assert checked >= 3
        # token contributions of a one-'token' row are that row's margin minus the intercept term
        w = r.wrong[1][0]
        c = r.token_contributions(0, w, X[1, [w["row"]]])
        u, b = r.margin_direction(0, w["seed"], w["pred"], w["true"])
        assert float(c.sum()) + b == pytest.approx(float((X[1, w["row"]] - r.weights[1][w["seed"]]["mean"]) @ u + b), rel=1e-4)
    with pytest.raises(LLMWidgetsError, match="probe='linear'"):
        probe_layers(X, y, seeds=2, control=False, probe="mlp").margin_direction(1, 0, "c0", "c1")


def test_control_task_is_fixed_per_type():
    types = ["the", "cat", "the", "dog", "cat", "the"] * 20
    labels = ["x", "y", "x", "y", "z", "x"] * 20
    c = control_task(types, labels, seed=0)
    assert c == control_task(types, labels, seed=0)
    by_type = {}
    for t, lab in zip(types, c):
        by_type.setdefault(t, set()).add(lab)
    assert all(len(v) == 1 for v in by_type.values()) and set(c) <= {"x", "y", "z"}


# -- bad input ------------------------------------------------------------------------------------
def test_bad_input_gives_clear_errors(tiny_bert):
    s = tiny_bert
    with pytest.raises(LLMWidgetsError, match="Got 2 labels for 3 texts"):
        lw.ProbeView(s, ["a b", "c d", "e f"], ["x", "y"], background=False)
    with pytest.raises(LLMWidgetsError, match="at least two classes"):
        lw.ProbeView(s, ["a b", "c d", "e f"], ["x", "x", "x"], background=False)
    with pytest.raises(LLMWidgetsError, match="at least two classes"):
        probe_layers(np.zeros((2, 4, 3)), ["x"] * 4)
    with pytest.raises(LLMWidgetsError, match="single example"):
        probe_layers(np.zeros((2, 4, 3)), ["x", "x", "x", "y"])
    with pytest.raises(LLMWidgetsError, match="3 whitespace-separated words but 2 labels"):
        extract(s, ["the red cat"], [["a", "b"]], level="token")
    with pytest.raises(EmptyInputError, match=r"texts\[1\] is empty"):
        extract(s, ["fine", "  "])
    with pytest.raises(TypeError, match="not one string"):
        extract(s, "one text")
    with pytest.raises(LLMWidgetsError, match="level must be"):
        extract(s, ["a"], level="word")
    with pytest.raises(LLMWidgetsError, match="probe must be"):
        lw.ProbeView(s, ["a b", "c d"], ["x", "y"], probe="svm", background=False)
    with pytest.raises(LLMWidgetsError, match="probe must be"):
        probe_layers(np.zeros((2, 4, 3)), ["x", "y"] * 2, probe="svm")
    with pytest.raises(LLMWidgetsError, match="test_size must be between 0 and 1"):
        lw.ProbeView(s, ["a b", "c d"], ["x", "y"], test_size=1.5, background=False)
    with pytest.raises(LLMWidgetsError, match="seeds must be >= 1"):
        lw.ProbeView(s, ["a b", "c d"], ["x", "y"], seeds=0, background=False)
    bad = np.zeros((3, 8, 4))
    bad[2, 3, 1] = np.nan
    with pytest.raises(NonFiniteError, match=r"NaN/inf \(layers \[2\]\)"):
        probe_layers(bad, ["x", "y"] * 4)


def test_nan_activations_from_the_model_are_an_error(tiny_bert):
    layer = tiny_bert.model.encoder.layer[1]
    h = layer.register_forward_hook(lambda mod, args, out: out * float("nan"))
    try:
        with pytest.raises(NonFiniteError, match="NaN/inf hidden states"):
            extract(tiny_bert, ["the cat", "the dog"])
    finally:
        h.remove()


# -- the view -------------------------------------------------------------------------------------
def test_view_traits_figure_and_export_carry_the_result(tiny_bert, tmp_path):
    ds = lw.datasets.negation(40)
    labels = [XSS if lab == "negated" else lab for lab in ds.labels]  # a class name that is markup
    v = lw.ProbeView(tiny_bert, ds.texts, labels, seeds=3, background=False)
    r = v.result
    assert v.done and v.progress == -1 and v.error == ""
    curves = v.curves
    np.testing.assert_allclose(curves, np.stack([r.mean, r.ci, r.control_mean, r.control_ci, r.selectivity]), rtol=1e-6)
    np.testing.assert_array_equal(v.confusion, r.confusion)
    assert v.selected_layer == r.best_layer and v.n_layers == 4 and v.classes == sorted(["affirmative", XSS])
    assert v.majority == pytest.approx(r.majority)
    for layer, ex in enumerate(v.examples):
        assert [e["row"] for e in ex] == [w["row"] for w in r.wrong[layer]]
        for e in ex:
            assert e["tokens"] == v.activations.tokens[e["row"]] and e["highlight"] == -1
    with pytest.raises(Exception, match="selected_layer must be in 0..3"):
        v.selected_layer = 4
    v.selected_layer = lw.EMBEDDINGS  # the embedding output has its own column
    v.selected_layer = None
    # sentence-level mistakes carry per-token contributions that add up to the probe's wrong margin:
    # sigmoid(sum + intercept difference) is the confidence predict_proba reported
    n_checked = 0
    sent = v.get_state()["examples"]  # as the front end receives them: the weights packed
    for layer, ex in enumerate(v.examples):
        for e, w, s in zip(ex, r.wrong[layer], sent[layer]):
            c = e["weights"]
            np.testing.assert_array_equal(_unpack(s["weights"]), c)
            tr = tiny_bert.trace(v.activations.texts[e["row"]])
            assert len(c) == len(e["tokens"]) and (c[tr.special_mask] == 0).all()
            _, b = r.margin_direction(r.layers[layer], w["seed"], w["pred"], w["true"])  # examples: one per row
            margin = float(c.sum()) + b
            assert margin > 0  # the probe preferred the wrong class
            assert 1 / (1 + np.exp(-margin)) == pytest.approx(w["confidence"], abs=2e-3)
            n_checked += 1
    assert n_checked >= 3
    fig = v.figure()
    by_label = {m.labels[0]: m for m in fig.marks}
    np.testing.assert_allclose(by_label["accuracy"].y, r.mean)
    np.testing.assert_allclose(by_label["control"].y, r.control_mean)
    np.testing.assert_allclose(by_label["selectivity"].y, r.selectivity)
    np.testing.assert_allclose(by_label["majority"].y, np.full(5, r.majority))
    np.testing.assert_allclose(by_label["95% CI"].y, [r.mean - r.ci, r.mean + r.ci])
    html = v.to_html(tmp_path / "probe.html").read_text()
    assert "<img src=x" not in html and "\\u003cimg src=x onerror" in html  # escaped inside JSON


def test_view_accepts_frames_datasets_and_token_level(tiny_bert):
    ds = lw.datasets.tense(24)
    a = lw.ProbeView(tiny_bert, ds.to_frame(), seeds=2, background=False)
    b = lw.ProbeView(tiny_bert, ds, seeds=2, background=False)
    np.testing.assert_allclose(a.result.accuracy, b.result.accuracy)
    df = pd.DataFrame({"sentence": ds.texts, "y": ds.labels})
    c = lw.ProbeView(tiny_bert, df, text_column="sentence", label_column="y", seeds=2, background=False)
    np.testing.assert_allclose(c.result.accuracy, a.result.accuracy)
    with pytest.raises(LLMWidgetsError, match="no 'text' column"):
        lw.ProbeView(tiny_bert, df, background=False)
    pos = lw.datasets.part_of_speech(16)
    t = lw.ProbeView(tiny_bert, pos, seeds=2, background=True)  # a thread, as in a notebook
    t.wait(120)
    assert t.done and t.level == "token" and t.result.level == "token"
    assert t.classes == ["noun", "other", "verb"]
    assert all(e["highlight"] > 0 for ex in t.examples for e in ex)  # the wrong token is marked


def test_background_errors_land_in_the_view_and_no_control_mode(tiny_bert):
    long = " ".join(["word"] * 100)  # longer than tiny_bert's 64 positions
    v = lw.ProbeView(tiny_bert, ["a short one", long, "another", "and more"], ["x", "y", "x", "y"],
                     background=True)
    v.wait(60)
    assert not v.done and v.result is None and v.progress == -1
    assert v.error.startswith("InputTooLongError: texts[1] is 102 tokens long") and "truncate=True" in v.error
    with pytest.raises(LLMWidgetsError, match="single example"):
        lw.ProbeView(tiny_bert, ["a", "b", "c"], ["x", "x", "y"], background=False)
    ds = lw.datasets.tense(20)
    nc = lw.ProbeView(tiny_bert, ds, seeds=2, control=False, background=False)
    assert nc.curves[2].tolist() == [-1.0] * 5  # the view hides the control curve
    assert [m.labels[0] for m in nc.figure().marks] == ["95% CI", "accuracy", "majority"]
