"""The readout rule is written once (llm_widgets.adapter.readout): Adapter.readout and the executors'
ops.Readout both call it, it equals the model's own logits and a hand computation of norm, head, scale
and soft-cap, and it ships by value (it runs where llm_widgets cannot be imported)."""
from __future__ import annotations

import subprocess
import sys

import cloudpickle
import torch

import llm_widgets as lw
from llm_widgets.adapter import readout
from llm_widgets.adapter.facts import get_module
from llm_widgets.execution import ops


def _Model() -> torch.nn.ModuleDict:
    """A final norm and a head (torch modules only: they unpickle without this test module)."""
    torch.manual_seed(0)
    return torch.nn.ModuleDict({"norm": torch.nn.LayerNorm(4), "head": torch.nn.Linear(4, 6, bias=False)})


def test_the_rule_is_norm_head_scale_then_softcap():
    m, h = _Model(), torch.randn(2, 3, 4)
    call = lambda path, x: getattr(m, path)(x)  # noqa: E731
    hand = torch.tanh(m.head(m.norm(h)) * 0.5 / 3.0) * 3.0
    torch.testing.assert_close(readout.logits(h, call, ["norm"], "head", 0.5, 3.0), hand)
    torch.testing.assert_close(readout.logits(h, call, [], "head"), m.head(h))
    assert readout.logits(h.double(), lambda p, x: getattr(m.double(), p)(x), ["norm"], "head",
                          dtype=torch.float32).dtype == torch.float32


def test_adapter_and_op_read_out_the_models_own_logits(tiny_gpt2):
    """Both callers of the rule give the model's logits from the last block's output (the trace's
    residual stream, before the final norm), and the same numbers as each other."""
    ad = tiny_gpt2.adapter
    seen = []
    hook = ad.blocks[-1].module.register_forward_hook(lambda m, i, o: seen.append(o[0] if isinstance(o, tuple) else o))
    try:
        with torch.no_grad():
            want = tiny_gpt2.model(**tiny_gpt2.encode("the cat sat on the mat")[0]).logits
    finally:
        hook.remove()
    h = seen[-1]
    op = ops.Readout(tuple(ad.final_norm), ad.head, float(ad.logit_scale), ad.softcap)
    ctx = type("Ctx", (), {"call": staticmethod(lambda path, x: get_module(ad.model, path)(x))})()
    with torch.no_grad():
        mine, theirs = ad.readout(h), op.logits(h, ctx)
    assert ad.final_norm  # the rule's norm step is exercised
    torch.testing.assert_close(mine.float(), want.float(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(theirs, mine.float(), atol=0, rtol=0)


def test_the_readout_op_runs_where_llm_widgets_is_not_installed(tmp_path):
    """As on an NDIF server: the op and the rule pickled by value (the nnsight backend registers both
    modules), unpickled and run in a process that cannot import llm_widgets."""
    m, h = _Model(), torch.randn(1, 2, 4)
    op = ops.Readout(("norm",), "head", 2.0, 5.0)
    cloudpickle.register_pickle_by_value(ops)
    cloudpickle.register_pickle_by_value(readout)
    try:
        payload = cloudpickle.dumps((op, m, h))
    finally:
        cloudpickle.unregister_pickle_by_value(ops)
        cloudpickle.unregister_pickle_by_value(readout)
    (tmp_path / "payload.pkl").write_bytes(payload)
    script = (
        "import sys; sys.modules['llm_widgets'] = None\n"  # any import of llm_widgets fails
        "import pickle, torch\n"
        f"op, m, h = pickle.loads(open({str(tmp_path / 'payload.pkl')!r}, 'rb').read())\n"
        "ctx = type('C', (), {'call': staticmethod(lambda p, x: getattr(m, p)(x))})()\n"
        "with torch.no_grad(): print(op.logits(h, ctx).flatten().tolist())\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    with torch.no_grad():
        want = torch.tanh(m.head(m.norm(h)) * 2.0 / 5.0) * 5.0
    assert [round(x, 5) for x in eval(run.stdout)] == [round(x, 5) for x in want.flatten().tolist()]


def test_the_nnsight_backend_ships_the_rule_with_the_ops():
    src = (lw.__file__.rsplit("/", 1)[0] + "/backends/nnsight_backend.py")
    assert "self.ship([ops, readout, remote_body])" in open(src).read()
