"""Other ways to run the model than native torch hooks. `nnsight_backend`: every view's forward
passes as nnsight traces, so one flag runs them here or remotely on NDIF (vLLM is refused: see
nnsight_backend.refuse_vllm)."""
