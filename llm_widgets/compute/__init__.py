"""Pure compute: torch/numpy in, result dataclasses of numpy arrays out. No widgets, no JS."""
