"""The package imports downward only: no import cycle among llm_widgets' modules (imports inside
functions count; TYPE_CHECKING blocks do not), and compute/ never imports or names nnsight (a
session's backend runs what compute asks of it, through `session.backend`)."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "llm_widgets"


def _modules() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    edges = {m: set() for m in mods}
    for m, f in mods.items():
        tree = ast.parse(f.read_text())
        skip = {id(x) for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
                for x in ast.walk(n)}
        for n in ast.walk(tree):
            if id(n) in skip or not isinstance(n, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(n, ast.ImportFrom) and n.level:
                base = m.split(".")
                base = base[: len(base) - n.level + (1 if f.name == "__init__.py" else 0)]
                target = ".".join(base + ([n.module] if n.module else []))
                names = [target] + [f"{target}.{a.name}" for a in n.names]
            elif isinstance(n, ast.ImportFrom):
                names = [n.module or ""] + [f"{n.module}.{a.name}" for a in n.names]
            else:
                names = [a.name for a in n.names]
            for t in names:
                while t and t not in mods:
                    t = t.rsplit(".", 1)[0] if "." in t else ""
                if t and t != m and not (f.name == "__init__.py" and t.startswith(m + ".")):
                    edges[m].add(t)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert _cycles(_edges(_modules())) == []


def test_the_checker_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_compute_never_imports_or_names_nnsight_or_the_backends():
    mods = _modules()
    edges = _edges(mods)
    for m, f in mods.items():
        if m.startswith("llm_widgets.compute"):
            assert "nnsight" not in f.read_text().lower(), m
            assert not any(t.startswith("llm_widgets.backends") for t in edges[m]), (m, edges[m])


# The layers, bottom up (DESIGN.md): a module imports its own layer and the ones below, never above.
LAYERS = (
    ("core", ("errors", "checks", "layers", "guards", "placement", "token_text", "fallback", "adapter", "session",
              "loading", "trace", "attention_source", "chat")),
    ("execution", ("execution", "backends")),
    ("compute", ("compute", "dictionaries", "circuits", "teaching", "audit", "datasets")),
    ("views", ("widgets", "figures", "reports", "exercises")),
    ("entry", ("entry", "testing")),
)


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:  # the package itself: the public surface, above everything
        return len(LAYERS)
    for i, (_, tops) in enumerate(LAYERS):
        if parts[1] in tops:
            return i
    raise AssertionError(f"{module} is in no layer of LAYERS: add it where it belongs")


def test_packages_import_downward_only():
    edges = _edges(_modules())
    upward = sorted(f"{m} ({LAYERS[_layer(m)][0]}) -> {t} ({LAYERS[_layer(t)][0]})"
                    for m, ts in edges.items() for t in ts if _layer(t) > _layer(m) and t != "llm_widgets")
    assert upward == [], "\n".join(upward)
