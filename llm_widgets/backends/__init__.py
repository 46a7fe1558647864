"""Other ways to run the model than native torch hooks. `nnsight_backend`: every view's forward
passes as nnsight traces, so one flag runs them here, on vLLM or remotely on NDIF."""
