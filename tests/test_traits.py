"""The typed traits (llm_widgets.widgets.traits): an `Array` holds a validated numpy array and packs
itself into the binary record the front end decodes; what it is of (`of=`) is checked; `Record` and
`Map` hold typed fields and pack the arrays inside them."""
from __future__ import annotations

import ipywidgets
import numpy as np
import pytest
import traitlets as t
from ipywidgets.widgets.widget import _remove_buffers

from llm_widgets.errors import NonFiniteError
from llm_widgets.widgets.traits import Array, ArrayOf, Fixed, Map, Record, Rows, _unpack


class V(ipywidgets.DOMWidget):
    heat = Array("uint8", ndim=2, lo=0.0, hi=2.0).tag(sync=True)
    half = Array("float16").tag(sync=True)
    ids = Array("int32", ndim=1).tag(sync=True)
    acts = Array("float32", ndim=2, of={"layer": int, "mode": ("head", "mean")}).tag(sync=True)
    row = Record({"id": t.Int(), "name": t.Unicode(), "weights": Array("float32", ndim=1)},
                 optional=("name",), allow_none=True).tag(sync=True)
    sides = Map(Record({"tokens": t.List(t.Unicode()), "weights": Array("float32")})).tag(sync=True)


def test_the_value_is_the_array_held_read_only_and_none_until_computed():
    v = V()
    assert v.heat is None and v.acts is None and v.row is None
    assert v.get_state("heat")["heat"] == {}  # what the front end receives before: no shape, draws nothing
    x = np.array([[0.0, 1.0], [2.0, 0.5]])
    v.heat = x
    assert isinstance(v.heat, np.ndarray) and v.heat.dtype == np.float32
    np.testing.assert_array_equal(v.heat, x)
    assert not v.heat.flags.writeable and x.flags.writeable  # the caller's array is left alone
    v.ids = np.array([3, -1, 70000])
    assert v.ids.dtype == np.int32 and v.ids.tolist() == [3, -1, 70000]
    v.heat = None
    assert v.heat is None


def test_the_wire_record_is_the_packed_binary_the_front_end_decodes():
    v = V()
    v.heat = np.array([[0.0, 1.0], [2.0, 0.5]])
    rec = v.get_state("heat")["heat"]
    # uint8 over [lo, hi] = [0, 2]: q = round(x / 2 * 255), decoded as 0 + q * 2 / 255
    assert rec["dtype"] == "uint8" and rec["shape"] == [2, 2] and rec["offset"] == 0.0
    assert rec["scale"] == pytest.approx(2 / 255)
    assert list(rec["data"]) == [0, 128, 255, 64]
    np.testing.assert_allclose(_unpack(rec), [[0, 128 * 2 / 255], [2, 64 * 2 / 255]], rtol=1e-6)
    v.half = [0.1, 65504.0]
    rec = v.get_state("half")["half"]
    assert rec["data"] == np.array([0.1, 65504.0], "<f2").tobytes()
    v.ids = [1, 2]
    assert v.get_state("ids")["ids"]["data"] == np.array([1, 2], "<i4").tobytes()
    # ipywidgets sends the bytes as binary buffers, not JSON
    _, paths, buffers = _remove_buffers(v.get_state())
    assert ["heat", "data"] in paths and ["half", "data"] in paths and all(isinstance(b, bytes) for b in buffers)


def test_bad_arrays_are_errors_when_assigned():
    v = V()
    with pytest.raises(t.TraitError, match="2-D"):
        v.heat = np.zeros(3)
    with pytest.raises(NonFiniteError):
        v.half = [1.0, np.nan]
    with pytest.raises(t.TraitError, match="integers"):
        v.ids = [0.5]
    with pytest.raises(t.TraitError, match="integers"):
        v.ids = [2 ** 31]
    with pytest.raises(t.TraitError):
        v.half = ["a", "b"]
    with pytest.raises(t.TraitError):
        v.half = {"shape": [1], "dtype": "float16", "data": b"00"}  # a packed record is not an array
    with pytest.raises(ValueError, match="transport"):
        Array("float64")


def test_what_an_array_is_of_is_declared_checked_and_sent():
    v = V()
    v.acts = (np.ones((2, 3)), {"layer": 4, "mode": "head"})
    assert isinstance(v.acts, ArrayOf) and v.acts.of == {"layer": 4, "mode": "head"}
    rec = v.get_state("acts")["acts"]
    assert rec["layer"] == 4 and rec["mode"] == "head" and rec["shape"] == [2, 3]
    v.acts = (np.ones((2, 3)), {"layer": np.int64(5), "mode": "mean"})
    assert type(v.acts.of["layer"]) is int
    for meta, match in (({"layer": 1}, "missing \\['mode'\\]"), ({"layer": 1, "mode": "head", "head": 2}, "unknown"),
                        ({"layer": "1", "mode": "head"}, "'layer' must be int"),
                        ({"layer": 1, "mode": "rollout"}, "'mode' must be 'head' or 'mean'")):
        with pytest.raises(t.TraitError, match=match):
            v.acts = (np.ones((2, 3)), meta)
    with pytest.raises(t.TraitError, match="is sent with what it is of"):
        v.acts = np.ones((2, 3))
    with pytest.raises(t.TraitError, match="declares nothing"):
        v.half = (np.ones(2), {"layer": 1})
    with pytest.raises(ValueError, match="of\\['x'\\]"):
        Array(of={"x": list})


def test_observers_fire_when_the_array_or_what_it_is_of_changes():
    v = V()
    seen = []
    v.observe(lambda c: seen.append(c["new"]), names=["acts", "half"])
    one = np.ones((1, 1))
    v.acts = (one, {"layer": 0, "mode": "head"})
    v.acts = (one.copy(), {"layer": 0, "mode": "head"})  # equal: nothing to send
    v.acts = (one, {"layer": 1, "mode": "head"})  # same numbers, another layer: sent
    assert [s.of["layer"] for s in seen] == [0, 1]
    v.half = [2.0]
    v.half = [[2.0]]  # equal values, another shape: sent (numpy's == would broadcast and call it equal)
    v.half = np.array([[2.0]])
    assert [s.shape for s in seen[2:]] == [(1,), (1, 1)]


def test_records_and_maps_are_typed_and_pack_their_arrays():
    v = V()
    v.row = {"id": 3, "weights": [0.5, 1.5]}
    assert isinstance(v.row["weights"], np.ndarray)
    sent = v.get_state("row")["row"]
    assert sent["id"] == 3 and sent["weights"]["data"] == np.array([0.5, 1.5], "<f4").tobytes()
    with pytest.raises(t.TraitError, match="missing \\['weights'\\]"):
        v.row = {"id": 3}
    with pytest.raises(t.TraitError, match="unknown \\['extra'\\]"):
        v.row = {"id": 3, "weights": [1.0], "extra": 1}
    with pytest.raises(t.TraitError):
        v.row = {"id": "three", "weights": [1.0]}
    v.sides = {"7": {"tokens": ["a", "b"], "weights": [1.0, -1.0]}}
    sent = v.get_state("sides")["sides"]
    assert sent["7"]["tokens"] == ["a", "b"] and _unpack(sent["7"]["weights"]).tolist() == [1.0, -1.0]
    with pytest.raises(t.TraitError):
        v.sides = {"7": {"tokens": ["a"]}}


class W(ipywidgets.DOMWidget):
    probs = Record({"outputs": t.List(t.Unicode()), "top": t.List(Fixed(t.Unicode(), t.Float()))},
                   empty=True).tag(sync=True)
    rows = Rows(t.List(Record({"n": t.Int(), "w": Array("float32")}, optional=("w",)))).tag(sync=True)


def test_empty_records_pairs_and_rows_of_arrays():
    """`empty=True` takes {} (nothing yet) and nothing else partial; Fixed checks each item's trait
    and keeps a list; Rows packs the arrays inside its items (a plain List would send numpy)."""
    w = W()
    assert w.probs == {}
    w.probs = {"outputs": ["a"], "top": [("a", 0.5)]}
    assert w.probs["top"] == [["a", 0.5]]  # a list, as the front end's [string, number]
    w.probs = {}
    with pytest.raises(t.TraitError, match="missing \\['top'\\]"):
        w.probs = {"outputs": ["a"]}
    with pytest.raises(t.TraitError):
        w.probs = {"outputs": [], "top": [["a", "high"]]}  # the probability must be a number
    with pytest.raises(t.TraitError):
        w.probs = {"outputs": [], "top": [["a", 0.5, 1]]}  # a pair, not a triple
    w.rows = [[{"n": 1, "w": [0.25, -2.0]}, {"n": 2}], []]
    assert isinstance(w.rows[0][0]["w"], np.ndarray)
    sent = w.get_state("rows")["rows"]
    assert _unpack(sent[0][0]["w"]).tolist() == [0.25, -2.0] and sent[0][1] == {"n": 2} and sent[1] == []


def test_a_state_from_the_front_end_round_trips():
    v, w = V(), V()
    v.acts = (np.arange(6.0).reshape(2, 3), {"layer": 2, "mode": "mean"})
    v.ids = [4, 5]
    w.set_state(v.get_state(["acts", "ids"]))  # as ipywidgets applies an update (buffers put back)
    np.testing.assert_array_equal(w.acts, v.acts)
    assert w.acts.of == {"layer": 2, "mode": "mean"} and w.ids.tolist() == [4, 5]
