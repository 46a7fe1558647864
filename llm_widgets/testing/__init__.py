"""Tiny random models of many Hugging Face families, built offline from their config classes, for
tests, benches and your own tests: `from llm_widgets.testing import FAMILIES, build`.

`build("llama")` gives a 2-layer, hidden-64 model with seeded weights (no download); `FAMILIES` is
the matrix the test suite runs every view on, `MORE` further families (mixtures of experts, hybrids,
state-space models), `HYBRID` the hybrids among them (`HYBRID_MOE`: those with experts).
`python -m llm_widgets.testing.families` prints the tested-families table of docs/adapter.md.
`ProgramsOnly`: the native executor restricted to the generic Programs (tests of the execution layer).
"""
from .executors import ProgramsOnly
from .families import FAMILIES, HYBRID, HYBRID_MOE, MORE, build, observed_parallel, table

__all__ = ["FAMILIES", "HYBRID", "HYBRID_MOE", "MORE", "ProgramsOnly", "build", "observed_parallel", "table"]
