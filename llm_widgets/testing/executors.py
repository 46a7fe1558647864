"""An executor for checking the generic paths: native torch hooks without the native-only
specialised paths (the hook-based attribution objective, the key/value-prefix patching sweep), so
compute runs the Programs every other executor runs. Swap it in for the native one:
`monkeypatch.setattr(llm_widgets.execution, "NATIVE", ProgramsOnly())`."""
from __future__ import annotations

from ..execution.native import Native


class ProgramsOnly(Native):
    """Native hooks running only the generic Programs."""

    name = "native (Programs only)"
    capabilities = Native.capabilities - {"module_hooks", "prefix_reuse", "graphs"}
