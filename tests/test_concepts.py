"""Concepts: projections and clusters equal sklearn's on the same matrix; the view carries them;
brushing (bqplot or trait) reaches `selected_indices`; bad input gives clear errors."""
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

import llm_widgets as lw
from llm_widgets.compute.concepts import project
from llm_widgets.errors import LLMWidgetsError, NonFiniteError

XSS = '<img src=x onerror="window.__xss=1">'


def test_project_equals_sklearn_on_the_same_matrix():
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=6, size=(3, 16))
    X = np.concatenate([c + rng.normal(size=(30, 16)) for c in centers]).astype(np.float32)
    p = project(X, k=3, seed=0)
    np.testing.assert_allclose(p.coords, PCA(n_components=2, random_state=0).fit_transform(X), atol=1e-4)
    np.testing.assert_array_equal(p.clusters, KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(X))
    np.testing.assert_allclose(p.explained, PCA(n_components=2).fit(X).explained_variance_ratio_, rtol=1e-5)
    # well separated blobs: each cluster is exactly one blob
    truth = np.repeat([0, 1, 2], 30)
    assert len({(a, b) for a, b in zip(truth, p.clusters)}) == 3


def test_project_bad_input():
    with pytest.raises(NonFiniteError, match="NaN/inf"):
        project(np.array([[0.0, 1.0], [np.nan, 1.0], [2.0, 2.0]]))
    with pytest.raises(LLMWidgetsError, match="at least 3 rows"):
        project(np.zeros((2, 4)))
    with pytest.raises(LLMWidgetsError, match="k must be between 1 and the number of rows"):
        project(np.eye(4), k=9)
    with pytest.raises(LLMWidgetsError, match=r"\[rows, dim\]"):
        project(np.zeros(5))
    with pytest.raises(LLMWidgetsError, match="method must be"):
        project(np.eye(4), method="tsne")
    try:
        import umap  # noqa: F401
    except ImportError:
        with pytest.raises(LLMWidgetsError, match="pip install umap-learn"):
            project(np.eye(4), k=2, method="umap")


@pytest.fixture(scope="module")
def view(tiny_gpt2):
    pos = lw.datasets.part_of_speech(12)
    labels = [[XSS if lab == "verb" else lab for lab in labs] for labs in pos.labels]
    return lw.ConceptView(tiny_gpt2, pos.texts, labels, selected_layer=1, k=4, background=False)


def test_view_equals_sklearn_per_layer_and_carries_it(view):
    r, acts = view.result, view.activations
    # rows: embeddings, then blocks 0..2; selected_layer 1 (block 1) is row 2
    assert view.done and view.n_layers == 3 and view.selected_layer == 1 and r.coords.shape == (4, len(acts), 2)
    for layer in range(4):
        X = acts.states[layer]
        np.testing.assert_allclose(r.coords[layer], PCA(n_components=2, random_state=0).fit_transform(X), atol=1e-4)
        np.testing.assert_array_equal(r.clusters[layer], KMeans(n_clusters=4, n_init=10, random_state=0).fit_predict(X))
    np.testing.assert_array_equal(view.coords, r.coords)
    np.testing.assert_array_equal(view.clusters, r.clusters)
    np.testing.assert_array_equal(view.rows, np.stack([acts.text_index, acts.token_index]))
    names = view.label_names
    assert names == sorted(["noun", "other", XSS]) and view.color_by == "label"
    assert [names[int(i)] for i in view.label_index] == acts.labels
    df = r.to_frame(1)
    assert len(df) == len(acts) and set(df.label) == set(names)
    np.testing.assert_array_equal(df.x, r.coords[2, :, 0])
    np.testing.assert_array_equal(r.to_frame(lw.EMBEDDINGS).x, r.coords[0, :, 0])


def test_selection_and_bqplot_brush_link_both_ways(view):
    view.selected_indices = [0, 3]
    sel = view.selection()
    assert list(sel.index) == [0, 3]
    assert sel.token.tolist() == [view.activations.tokens[i][j] for i, j in
                                  zip(view.activations.text_index[[0, 3]], view.activations.token_index[[0, 3]])]
    with pytest.raises(Exception, match="selected_indices must be row numbers"):
        view.selected_indices = [10 ** 6]
    with pytest.raises(Exception, match="selected_layer must be in 0..2"):
        view.selected_layer = 3
    fig = view.figure()
    sc = fig.marks[0]
    np.testing.assert_allclose(sc.x, view.result.coords[2, :, 0])
    assert view.color_by == "label"  # like the view: coloured by label, then by cluster
    np.testing.assert_array_equal(sc.color, view.label_index)
    view.color_by = "cluster"
    np.testing.assert_array_equal(sc.color, view.result.clusters[2])
    sc.selected = [5, 6, 7]  # what a bqplot brush does
    assert view.selected_indices == [5, 6, 7]
    view.selected_indices = [1]
    assert list(sc.selected) == [1]
    view.selected_layer = 0  # the slider re-projects the bqplot scatter too (block 0: row 1)
    np.testing.assert_allclose(sc.y, view.result.coords[1, :, 1])
    np.testing.assert_array_equal(sc.color, view.result.clusters[1])
    view.selected_layer, view.color_by = 1, "label"


def test_sentence_level_export_and_errors(tiny_gpt2, tmp_path):
    ds = lw.datasets.subject_number(12)
    v = lw.ConceptView(tiny_gpt2, ds, level="sentence", k=2, background=False)
    assert v.result.coords.shape == (4, 12, 2) and v.label_names == ["plural", "singular"]
    assert (v.rows[1] == -1).all()
    html = v.to_html(tmp_path / "c.html").read_text()
    assert '"bundle":"concepts"' in html and '"coords"' in html
    with pytest.raises(Exception, match="selected_layer must be in 0..2"):
        lw.ConceptView(tiny_gpt2, ds.texts, selected_layer=7, background=False)
    with pytest.raises(LLMWidgetsError, match="Got 3 labels for 12 texts"):
        lw.ConceptView(tiny_gpt2, ds.texts, ["a", "b", "c"], level="sentence", background=False)
    with pytest.raises(LLMWidgetsError, match="method must be"):
        lw.ConceptView(tiny_gpt2, ds.texts, method="tsne", background=False)
