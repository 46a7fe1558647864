"""Tuned lens (Belrose et al. 2023, "Eliciting Latent Predictions from Transformers with the Tuned
Lens"): the logit lens with one learned affine translator per layer in front of the model's own
readout.

The logit lens reads the residual stream h_l after each layer through the final norm and the
unembedding, as if the network stopped there (llm_widgets/compute/logit_lens.py). Early layers
keep their information in a basis the readout does not expect, so the logit lens is biased there.
The tuned lens first maps h_l to h_l + A_l h_l + b_l (A_l, b_l trained so that the readout matches
the model's final distribution in KL; llm_widgets/compute/tuned_lens_train.py), then reads it out
the same way. Translators start at A = 0, b = 0: an untrained tuned lens *is* the logit lens.

Rows follow the logit lens: row 0 reads the embeddings, row l + 1 the residual after block l.
Translator l acts on row l (as in the tuned-lens package, which translates hidden_states[0..L-1]);
the last row is the model's own output and needs none.

The saved format is the tuned-lens package's: a folder with `config.json` (its TunedLensConfig:
base_model_name_or_path, d_model, num_hidden_layers, bias, base_model_revision, unembed_hash,
lens_type "linear_tuned_lens") and `params.pt` (the state dict of a ModuleList of
Linear(d_model, d_model) translators: "0.weight", "0.bias", ...).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..adapter.facts import get_module
from ..checks import integer
from ..errors import LLMWidgetsError
from ..execution import Program, Read, executor_of, ops, run
from ..layers import EMBEDDINGS
from .logit_lens import LogitLensResult
from .logit_lens import lens_result as logit_lens_result

LENS_TYPE = "linear_tuned_lens"  # the tuned-lens package's name for an affine translator per layer
CONFIG, PARAMS = "config.json", "params.pt"


class TunedLens(torch.nn.Module):
    """One affine translator per layer (embeddings and every block but the last): h -> h + A h + b.

    Built at identity (A = 0, b = 0). `config` is the tuned-lens package's TunedLensConfig as a
    dict; `save(path)` writes the package's folder format, `load_tuned_lens` reads it back.
    """

    def __init__(self, d_model: int, n_layers: int, *, bias: bool = True, config: dict | None = None):
        super().__init__()
        d_model, n_layers = integer(d_model, "d_model", low=1), integer(n_layers, "n_layers", low=1)
        self.translators = torch.nn.ModuleList(torch.nn.Linear(d_model, d_model, bias=bias) for _ in range(n_layers))
        with torch.no_grad():
            for t in self.translators:
                t.weight.zero_()
                if t.bias is not None:
                    t.bias.zero_()
        self.requires_grad_(False)  # training turns gradients on for its own loop
        self.config = {"base_model_name_or_path": "", "base_model_revision": None, "unembed_hash": None,
                       **(config or {}), "d_model": d_model, "num_hidden_layers": n_layers, "bias": bool(bias),
                       "lens_type": LENS_TYPE}

    @property
    def n_layers(self) -> int:
        """Blocks of the model this lens is for (= translators: the embeddings and blocks 0..L-2)."""
        return len(self.translators)

    @property
    def d_model(self) -> int:
        return self.translators[0].in_features

    def transform(self, h: torch.Tensor, row: int) -> torch.Tensor:
        """The translated residual of row `row` (0: the embeddings, l + 1: after block l), in h's
        dtype and on h's device: h + A h + b, computed in float32. The last row (row n_layers, the
        model's own output) is returned unchanged."""
        if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row <= self.n_layers:
            raise LLMWidgetsError(f"row must be 0 (the embeddings) .. {self.n_layers} (after the last block), "
                                  f"got {row!r}")
        if row == self.n_layers:
            return h
        t = self.translators[row]
        x = h.to(device=t.weight.device, dtype=t.weight.dtype)
        return (x + t(x)).to(device=h.device, dtype=h.dtype)

    def save(self, path: str | Path) -> Path:
        """Write the lens as the tuned-lens package does: folder `path` with config.json and
        params.pt (the translators' state dict). Returns the folder."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in self.translators.state_dict().items()}, path / PARAMS)
        (path / CONFIG).write_text(json.dumps(self.config), encoding="utf-8")
        return path

    def __repr__(self) -> str:
        return (f"TunedLens({self.n_layers} translators, d_model={self.d_model}, "
                f"for {self.config.get('base_model_name_or_path') or 'an unnamed model'!r})")


def unembedding_hash(session) -> str | None:
    """The tuned-lens package's fingerprint of a model's unembedding matrix (sha256 of numpy's
    one-decimal summary of it), or None when the head has no weight matrix."""
    head = get_module(session.model, session.adapter.head)
    w = getattr(head, "weight", None)
    if not isinstance(w, torch.Tensor) or w.device.type == "meta":
        return None
    with np.printoptions(precision=1, threshold=1000, edgeitems=3, linewidth=75, suppress=False, floatmode="maxprec",
                         sign="-", legacy=False):  # numpy's defaults, whatever the user set
        summary = np.array_str(w.detach().cpu().float().numpy(), precision=1)
    return hashlib.sha256(summary.encode()).hexdigest()


def for_session(session, *, bias: bool = True) -> TunedLens:
    """An identity tuned lens (= the logit lens) sized for `session`'s model, on its device."""
    ad = session.adapter
    ad.require("logit_lens")
    name = getattr(session.config, "name_or_path", "") or session.name
    lens = TunedLens(ad.d_model, ad.n_layers, bias=bias,
                     config={"base_model_name_or_path": str(name), "unembed_hash": unembedding_hash(session)})
    return lens.to(session.device)


def check_fits(lens: TunedLens, session, *, check_unembedding: bool = True) -> None:
    """Raise LLMWidgetsError unless `lens` was made for `session`'s model: same width and number of
    layers, and (when both are known and `check_unembedding`) the same unembedding fingerprint."""
    if not isinstance(lens, TunedLens):
        raise LLMWidgetsError(f"tuned_lens must be a TunedLens (lw.train_tuned_lens or lw.load_tuned_lens), "
                              f"got {type(lens).__name__}")
    ad = session.adapter
    ad.require("logit_lens")
    if (lens.d_model, lens.n_layers) != (ad.d_model, ad.n_layers):
        raise LLMWidgetsError(
            f"This tuned lens is for a model with d_model={lens.d_model} and {lens.n_layers} layers "
            f"({lens.config.get('base_model_name_or_path') or 'unnamed'}); {session.name} has d_model={ad.d_model} "
            f"and {ad.n_layers} layers. Train one for this model: lw.train_tuned_lens(session, texts).")
    want = lens.config.get("unembed_hash")
    if check_unembedding and want:
        got = unembedding_hash(session)
        if got is not None and got != want:
            raise LLMWidgetsError(
                f"This tuned lens was trained on a model with another unembedding matrix "
                f"({lens.config.get('base_model_name_or_path') or 'unnamed'}), not {session.name}'s: its "
                f"translators would map into the wrong output space. Train one for this model "
                f"(lw.train_tuned_lens), or load it with lw.load_tuned_lens(path, session, "
                f"check_unembedding=False) if you know the unembedding only changed in a way that does not matter.")


def load_tuned_lens(path: str | Path, session, *, check_unembedding: bool = True) -> TunedLens:
    """Read a tuned lens saved by the tuned-lens package (`TunedLens.save`) or by `TunedLens.save`
    here: a folder with config.json and params.pt. Refused (LLMWidgetsError) when it is not a linear
    tuned lens, its parameters do not match its config, or it does not fit `session`'s model
    (width, layers, unembedding fingerprint: `check_fits`; check_unembedding=False accepts another
    fingerprint and stamps the lens with this model's). Returns the lens on the session's device."""
    path = Path(path)
    if not (path / CONFIG).is_file() or not (path / PARAMS).is_file():
        raise LLMWidgetsError(f"{path} is not a saved tuned lens: it needs {CONFIG} and {PARAMS} "
                              f"(the tuned-lens package's format; write one with TunedLens.save).")
    config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    kind = config.get("lens_type", LENS_TYPE)
    if kind != LENS_TYPE:
        raise LLMWidgetsError(f"{path} holds a {kind!r} lens; only {LENS_TYPE!r} (an affine translator per "
                              f"layer) is supported.")
    try:
        d, n, bias = int(config["d_model"]), int(config["num_hidden_layers"]), bool(config.get("bias", True))
    except (KeyError, TypeError, ValueError) as e:
        raise LLMWidgetsError(f"{path / CONFIG} lacks d_model / num_hidden_layers: {e}") from None
    known = ("base_model_name_or_path", "d_model", "num_hidden_layers", "bias", "base_model_revision",
             "unembed_hash", "lens_type")
    lens = TunedLens(d, n, bias=bias, config={k: config[k] for k in known if k in config})
    check_fits(lens, session, check_unembedding=check_unembedding)
    if not check_unembedding:  # accepted for this model: from now on it carries this model's fingerprint
        lens.config["unembed_hash"] = unembedding_hash(session)
    state = torch.load(path / PARAMS, map_location="cpu", weights_only=True)
    want = lens.translators.state_dict()
    if not isinstance(state, dict) or set(state) != set(want) or \
            any(tuple(state[k].shape) != tuple(want[k].shape) for k in want):
        raise LLMWidgetsError(f"{path / PARAMS} does not hold {n} translators of width {d} "
                              f"({'with' if bias else 'without'} bias) as its config says.")
    lens.translators.load_state_dict({k: v.float() for k, v in state.items()})
    return lens.to(session.device)


def lens_states(session, inputs: dict) -> torch.Tensor:
    """[layers + 1, B, T, D] residual stream of a batch (tokenizer tensors on the session's device):
    the embeddings, then the output of each block, read where the logit lens reads them."""
    layers = [EMBEDDINGS] + list(range(session.adapter.n_layers))
    res = run(session, Program(inputs, reads=[Read("resid", l) for l in layers], stop=True, label="tuned lens"))
    return torch.stack([res.reads[("resid", l)].to(inputs["input_ids"].device) for l in layers])


def require_local(session, what: str) -> None:
    """Raise unless the session's executor can call the model's modules here (the readout runs on
    the local final norm and head)."""
    executor_of(session).require("module_calls", f"{what} (reading the residual stream out through the "
                                                  f"model's final norm and head here)")


def _readout_rows(session, states: torch.Tensor, lens: TunedLens | None) -> torch.Tensor:
    """[rows, T, V] float32 logits of the residuals `states` [rows, T, D] through the model's own
    readout, each row translated first by `lens` (None: as they are, the logit lens)."""
    ad = session.adapter
    with torch.no_grad():
        return torch.stack([ad.readout((h if lens is None else lens.transform(h, r))[None])[0]
                            for r, h in enumerate(states)]).float()


def _text_states(session, text: str, truncate: bool) -> torch.Tensor:
    enc, _, _ = session.encode(text, truncate=truncate)
    return lens_states(session, enc)[:, 0]


def tuned_lens_logits(session, text: str, lens: TunedLens, *, truncate: bool = False) -> torch.Tensor:
    """[layers + 1, T, V] logits of the tuned lens: each row's residual translated (the last row as
    is), read through the model's own readout (final norm, unembedding, soft-capping)."""
    require_local(session, "The tuned lens")
    check_fits(lens, session)
    return _readout_rows(session, _text_states(session, text, truncate), lens)


def lens_kl(logits: torch.Tensor) -> np.ndarray:
    """[rows, T] KL(final || row) in nats: how far each row's distribution is from the last row's
    (the model's own output), per position. The last row is 0."""
    logp = torch.log_softmax(logits.float(), -1)
    final = logp[-1]
    return (final.exp() * (final - logp)).sum(-1).clamp_min(0).cpu().numpy()


def lens_result(session, text: str, logits: torch.Tensor, *, k: int = 5, truncate: bool = False) -> LogitLensResult:
    """The LogitLensResult of a lens's logits [layers + 1, T, V] for `text`: the top k tokens and
    their probabilities per row and position, and the probability of the actual next token."""
    k = integer(k, "k", low=1)
    trace = session.trace(text, truncate=truncate)
    tops = ops.top_and_next(logits, k, torch.as_tensor(trace.input_ids))
    return logit_lens_result(session, list(trace.tokens), tops)


@dataclass
class LensComparison:
    """The logit lens and a tuned lens on one text (rows: the embeddings, then after each block)."""

    logit: LogitLensResult
    tuned: LogitLensResult
    kl: np.ndarray  # [2, rows, T] KL(final || row) in nats: the logit lens (0) and the tuned lens (1)

    @property
    def mean_kl(self) -> np.ndarray:
        """[2, rows] KL to the final distribution averaged over positions: logit lens, tuned lens."""
        return self.kl.mean(-1)


def compare_lenses(session, text: str, lens: TunedLens, *, k: int = 5, truncate: bool = False) -> LensComparison:
    """The logit lens and the tuned lens `lens` on `text` from one forward pass: their top-k
    tokens per row and position, and each row's KL to the model's final distribution."""
    require_local(session, "The tuned lens")
    check_fits(lens, session)
    states = _text_states(session, text, truncate)
    logit, tuned = _readout_rows(session, states, None), _readout_rows(session, states, lens)
    return LensComparison(logit=lens_result(session, text, logit, k=k, truncate=truncate),
                          tuned=lens_result(session, text, tuned, k=k, truncate=truncate),
                          kl=np.stack([lens_kl(logit), lens_kl(tuned)]).astype(np.float32))


__all__ = ["TunedLens", "LensComparison", "compare_lenses", "require_local", "check_fits", "for_session", "lens_kl",
           "lens_result", "lens_states", "load_tuned_lens", "tuned_lens_logits", "unembedding_hash"]
