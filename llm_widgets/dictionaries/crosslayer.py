"""Cross-layer transcoders (circuit-tracer's CLT format): features read the residual stream at one
layer and write to the MLP outputs of that layer and every later one.

A CLT folder holds, per layer i, W_enc_i.safetensors (W_enc_i [F, d], b_enc_i [F], b_dec_i [d],
threshold_i [F] for JumpReLU) and W_dec_i.safetensors (W_dec_i [F, n_layers - i, d]: the decoder of
layer i's features into the MLP outputs of layers i, i+1, ...). As circuit-tracer computes it:
    a_i = act(x_i @ W_enc_i.T + b_enc_i)        (JumpReLU: pre * (pre > threshold_i), no relu)
    mlp_out_j ~ b_dec_j + sum over i <= j of a_i @ W_dec_i[:, j - i]
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import LLMWidgetsError
from .coding import Weights
from .dictionary import Dictionary
from .sites import from_hook_name


@dataclass
class CrossLayerTranscoder:
    """`layers[i]`: layer i's encoder as a Dictionary (reading `input_hook` of block i, its decoder
    the same-layer one, writing `output_hook` of block i); `decoders[i]` [F, n_layers - i, d] every
    decoder of layer i's features; `b_dec` [n_layers, d]."""

    layers: list
    decoders: list
    b_dec: torch.Tensor
    name: str = ""

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def encode(self, xs) -> list:
        """Feature activations per layer from the input activations per layer (xs[i]: [..., d])."""
        if len(xs) != self.n_layers:
            raise LLMWidgetsError(f"a CLT of {self.n_layers} layers encodes {self.n_layers} inputs, got {len(xs)}")
        return [d.encode(x) for d, x in zip(self.layers, xs)]

    def reconstruct(self, acts, layer: int) -> torch.Tensor:
        """The MLP output of block `layer` as the CLT writes it: b_dec + every earlier (and this)
        layer's features through their decoders into `layer`."""
        if not 0 <= layer < self.n_layers:
            raise LLMWidgetsError(f"layer must be in 0..{self.n_layers - 1}, got {layer}")
        out = self.b_dec[layer].clone()
        for i in range(layer + 1):
            out = out + acts[i].to(self.decoders[i].dtype) @ self.decoders[i][:, layer - i]
        return out


def is_clt(folder: Path) -> bool:
    return (folder / "W_enc_0.safetensors").exists() and (folder / "W_dec_0.safetensors").exists()


def read_clt(folder: Path, input_hook: str = "hook_resid_mid", output_hook: str = "hook_mlp_out",
             activation: str | None = None) -> CrossLayerTranscoder:
    """A CLT folder (see the module docstring); hooks as circuit-tracer's load_clt defaults.
    `activation` 'relu' / 'jumprelu' (default: jumprelu where thresholds are stored, else relu)."""
    from safetensors.torch import load_file

    n = 0
    while (folder / f"W_enc_{n}.safetensors").exists():
        n += 1
    layers, decoders, b_dec = [], [], []
    for i in range(n):
        enc = load_file(str(folder / f"W_enc_{i}.safetensors"))
        dec_file = folder / f"W_dec_{i}.safetensors"
        if not dec_file.exists():
            raise LLMWidgetsError(f"{folder}: W_enc_{i}.safetensors has no W_dec_{i}.safetensors beside it")
        W_dec = load_file(str(dec_file))[f"W_dec_{i}"].float()
        if W_dec.dim() != 3 or W_dec.shape[1] != n - i:
            raise LLMWidgetsError(f"{folder}: W_dec_{i} must be [F, {n - i}, d] (one decoder per later layer), got "
                                  f"{list(W_dec.shape)}")
        th = enc.get(f"threshold_{i}")
        act = activation or ("jumprelu" if th is not None else "relu")
        if act == "jumprelu" and th is None:
            raise LLMWidgetsError(f"{folder}: a JumpReLU CLT needs threshold_{i} in W_enc_{i}.safetensors")
        if act == "jumprelu" and bool((th.float() < 0).any()):
            raise LLMWidgetsError(f"{folder}: negative thresholds (circuit-tracer's JumpReLU has no relu; ours "
                                  f"does): not supported")
        w = Weights(W_enc=enc[f"W_enc_{i}"].float().T.contiguous(), b_enc=enc[f"b_enc_{i}"].float(),
                    W_dec=W_dec[:, 0].contiguous(), b_dec=enc[f"b_dec_{i}"].float(), activation=act,
                    threshold=None if th is None else th.float().reshape(-1))
        d = Dictionary(w, site=from_hook_name(f"blocks.{i}.{input_hook}"),
                       out_site=from_hook_name(f"blocks.{i}.{output_hook}"), name=f"CLT {folder.name} layer {i}")
        layers.append(d)
        decoders.append(W_dec)
        b_dec.append(enc[f"b_dec_{i}"].float())
    if not n:
        raise LLMWidgetsError(f"{folder}: no W_enc_0.safetensors")
    return CrossLayerTranscoder(layers=layers, decoders=decoders, b_dec=torch.stack(b_dec), name=folder.name)
