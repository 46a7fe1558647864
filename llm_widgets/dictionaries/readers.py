"""Readers of the formats sparse dictionaries are published in, each into one `Dictionary`
(no dependency on the packages that write them; each format as its own code reads it):

- SAELens folder: cfg.json (architecture standard / jumprelu / topk / batchtopk / gated, d_in,
  d_sae, apply_b_dec_to_input, normalize_activations, dtype, hook_name, also under "metadata" or
  "meta") + sae_weights.safetensors (W_enc [d_in, F], b_enc, W_dec [F, d_in], b_dec; threshold
  for jumprelu / batchtopk; b_gate, r_mag, b_mag for gated). An inference-time BatchTopK is a
  JumpReLU with one threshold (SAELens saves it so).
- EleutherAI sparsify folder (one per hookpoint): cfg.json (k, activation "topk", transcode, d_in) +
  sae.safetensors (encoder.weight [F, d_in], encoder.bias, W_dec [F, d_in], b_dec, W_skip).
  The folder's name is the hookpoint, a module path: mapped through the adapter when a session is
  given (a block -> "resid", its attention -> "attn", its MLP -> "mlp").
- Gemma Scope params.npz: W_enc [d, F], W_dec [F, d], b_enc, b_dec, threshold (JumpReLU; the input
  is not shifted by b_dec). The file names no site: pass site=.
- circuit-tracer: a transcoder set's YAML (feature_input_hook, feature_output_hook, transcoders:
  [{layer, filepath}]) -> a list of per-layer transcoders; one layer's .safetensors (W_enc [F, d],
  W_dec [d, F], b_enc, b_dec, optional W_skip: ReLU) or .npz (Gemma Scope transcoder: JumpReLU).
  A cross-layer transcoder folder (W_enc_i / W_dec_i .safetensors per layer) ->
  llm_widgets.dictionaries.crosslayer.CrossLayerTranscoder.
- an in-memory SAELens `SAE` (anything with W_enc, W_dec, b_enc, b_dec and cfg).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import LLMWidgetsError
from .coding import Weights
from .crosslayer import is_clt, read_clt
from .dictionary import Dictionary
from .sites import Site, as_site, from_hook_name

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def _dtype(name) -> torch.dtype:
    key = str(name or "float32").replace("torch.", "")
    if key not in _DTYPES:
        raise LLMWidgetsError(f"unsupported dictionary dtype {name!r}: use one of {sorted(_DTYPES)} (a quantized "
                              f"dictionary must be dequantized first)")
    return _DTYPES[key]


def _float(t: torch.Tensor, what: str) -> torch.Tensor:
    if not torch.is_floating_point(t):
        raise LLMWidgetsError(f"{what} has dtype {t.dtype}: a dictionary's weights must be floating point")
    return t.float() if t.dtype != torch.float64 else t


def _safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")


def _need(tensors: dict, keys, where) -> None:
    missing = [k for k in keys if k not in tensors]
    if missing:
        raise LLMWidgetsError(f"{where} lacks {missing} (has {sorted(tensors)})")


# -- SAELens --------------------------------------------------------------------------------------
def saelens(folder: Path, cfg: dict, tensors: dict, name: str) -> Dictionary:
    """A SAELens SAE from its config and state dict (a folder's files, or an in-memory SAE's)."""
    arch = cfg.get("architecture", "standard")
    meta = cfg.get("metadata") or cfg.get("meta") or {}
    hook = cfg.get("hook_name") or meta.get("hook_name")
    if (cfg.get("hook_head_index") if cfg.get("hook_head_index") is not None else meta.get("hook_head_index")) \
            is not None:
        raise LLMWidgetsError(f"{name}: an SAE on one attention head (hook_head_index) is not supported; SAEs on "
                              f"every head's attn.hook_z are")
    _need(tensors, ["W_enc", "W_dec", "b_dec"] + ([] if arch == "gated" else ["b_enc"]), name)
    t = {k: _float(v, f"{name}: {k}") for k, v in tensors.items() if isinstance(v, torch.Tensor)}
    if cfg.get("reshape_activations", "none") not in ("none", "hook_z"):
        raise LLMWidgetsError(f"{name}: reshape_activations {cfg.get('reshape_activations')!r} is not supported")
    common: dict[str, Any] = dict(W_enc=t["W_enc"], W_dec=t["W_dec"], b_dec=t["b_dec"],
                                  b_in=t["b_dec"] if cfg.get("apply_b_dec_to_input", True) else None,
                                  normalize=cfg.get("normalize_activations", "none") or "none")
    if arch in ("standard", "relu"):
        w = Weights(b_enc=t["b_enc"], activation="relu", **common)
    elif arch in ("jumprelu", "batchtopk"):
        th = t.get("threshold")
        if th is None and "log_threshold" in t:
            th = torch.exp(t["log_threshold"])
        if th is None and cfg.get("topk_threshold") is not None:
            th = torch.full_like(t["b_enc"], float(cfg["topk_threshold"]))
        if th is None:
            raise LLMWidgetsError(f"{name}: a {arch} SAE needs 'threshold' in its weights")
        w = Weights(b_enc=t["b_enc"], activation="jumprelu", threshold=th.expand_as(t["b_enc"]).contiguous(),
                    **common)
    elif arch == "topk":
        k = cfg.get("k")
        if not isinstance(k, int) and not (isinstance(k, float) and k.is_integer()):
            raise LLMWidgetsError(f"{name}: a topk SAE needs an integer k in cfg.json, got {k!r}")
        w = Weights(b_enc=t["b_enc"], activation="topk", k=int(k), **common)
    elif arch == "gated":
        _need(t, ["b_gate", "r_mag", "b_mag"], name)
        w = Weights(b_enc=t["b_mag"], activation="gated", b_gate=t["b_gate"], r_mag=t["r_mag"], **common)
    else:
        raise LLMWidgetsError(f"{name}: SAELens architecture {arch!r} is not supported (standard, jumprelu, topk, "
                              f"batchtopk, gated are)")
    dtype = _dtype(cfg.get("dtype", "float32"))
    for k in ("d_in", "d_sae"):
        n = cfg.get(k)
        have = w.W_enc.shape[0 if k == "d_in" else 1]
        if n is not None and int(n) != have:
            raise LLMWidgetsError(f"{name}: cfg.json says {k}={n} but W_enc is {list(w.W_enc.shape)}")
    site = from_hook_name(hook) if hook else None
    return Dictionary(w, site=site, name=name, dtype=dtype, info=dict(cfg))


def saelens_folder(folder: Path) -> Dictionary:
    cfg = json.loads((folder / "cfg.json").read_text())
    return saelens(folder, cfg, _safetensors(folder / "sae_weights.safetensors"), f"SAELens {folder.name}")


def in_memory(sae) -> Dictionary:
    """A SAELens SAE object (duck-typed): its tensors and its cfg (a dataclass or a dict)."""
    cfg = sae.cfg
    if not isinstance(cfg, dict):
        cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(vars(cfg))
    if callable(getattr(type(sae), "architecture", None)) and "architecture" not in cfg:
        cfg["architecture"] = sae.architecture()
    tensors = {k: getattr(sae, k).detach().cpu() for k in
               ("W_enc", "W_dec", "b_enc", "b_dec", "threshold", "log_threshold", "b_gate", "r_mag", "b_mag")
               if isinstance(getattr(sae, k, None), torch.Tensor)}
    meta = cfg.get("metadata") or cfg.get("meta")
    if meta is not None and not isinstance(meta, dict):
        cfg["metadata"] = dict(vars(meta))
    return saelens(Path("."), cfg, tensors, f"SAELens {type(sae).__name__}")


# -- sparsify -------------------------------------------------------------------------------------
def sparsify_folder(folder: Path, session=None) -> Dictionary:
    cfg = json.loads((folder / "cfg.json").read_text())
    name = f"sparsify {folder.name}"
    t = {k: _float(v, f"{name}: {k}") for k, v in _safetensors(folder / "sae.safetensors").items()}
    _need(t, ["encoder.weight", "encoder.bias", "W_dec", "b_dec"], name)
    if cfg.get("activation", "topk") != "topk":
        raise LLMWidgetsError(f"{name}: sparsify activation {cfg.get('activation')!r} is not supported (topk is)")
    transcode = bool(cfg.get("transcode", False))
    if "d_in" in cfg and int(cfg["d_in"]) != t["encoder.weight"].shape[1]:
        raise LLMWidgetsError(f"{name}: cfg.json says d_in={cfg['d_in']} but encoder.weight is "
                              f"{list(t['encoder.weight'].shape)}")
    w = Weights(W_enc=t["encoder.weight"].T.contiguous(), b_enc=t["encoder.bias"], W_dec=t["W_dec"], b_dec=t["b_dec"],
                activation="topk", k=int(cfg["k"]), b_in=None if transcode else t["b_dec"],
                W_skip=t.get("W_skip"))
    site = _hookpoint(session, folder.name) if session is not None else None
    if transcode:  # reads the module's input, writes its output: only MLP transcoders map onto our sites
        out = site
        site = Site("mlp_in", site.layer, folder.name) if site is not None else None
        return Dictionary(w, site=site, out_site=out, name=name, dtype=t["W_dec"].dtype, info=cfg)
    return Dictionary(w, site=site, name=name, info=cfg)


def _hookpoint(session, path: str) -> Site:
    """The site of a sparsify hookpoint (a module path) in the session's model, found among the
    adapter's modules: a block ("resid"), its attention output ("attn"), its MLP ("mlp")."""
    ad = session.adapter

    def same(ref_path: str) -> bool:
        return bool(ref_path) and (ref_path == path or ref_path.endswith("." + path))

    def parent(p: str) -> str:
        return p.rsplit(".", 1)[0] if "." in p else ""

    for l in range(ad.n_layers):
        if same(ad.blocks[l].path):
            return Site("resid", l, path)
        if ad.attn_out[l] is not None and (same(ad.attn_out[l].path) or same(parent(ad.attn_out[l].path))):
            return Site("attn", l, path)
        mlp = ad.mlp[l]
        if mlp is not None and (same(mlp.path) or same(parent(mlp.path))):
            return Site("mlp", l, path)
    raise LLMWidgetsError(f"hookpoint {path!r} is not a block, attention or MLP module of {session.name}; pass "
                          f"site=('resid', layer) to lw.load_dictionary")


# -- Gemma Scope ----------------------------------------------------------------------------------
def gemma_scope(path: Path) -> Dictionary:
    with np.load(path) as z:
        t = {k: _float(torch.from_numpy(np.asarray(z[k])), f"{path}: {k}") for k in z.files}
    _need(t, ["W_enc", "W_dec", "b_enc", "b_dec", "threshold"], str(path))
    w = Weights(W_enc=t["W_enc"], b_enc=t["b_enc"], W_dec=t["W_dec"], b_dec=t["b_dec"], activation="jumprelu",
                threshold=t["threshold"])
    return Dictionary(w, name=f"Gemma Scope {path.parent.name}/{path.name}", info={})


# -- circuit-tracer -------------------------------------------------------------------------------
def circuit_tracer_layer(path: Path, layer: int, input_hook: str, output_hook: str) -> Dictionary:
    """One layer's transcoder of a circuit-tracer set."""
    if path.suffix == ".npz":
        d = gemma_scope(path)
    else:
        t = {k: _float(v, f"{path}: {k}") for k, v in _safetensors(path).items()}
        _need(t, ["W_enc", "W_dec", "b_enc", "b_dec"], str(path))
        if "log_thresholds" in t or "threshold" in t:
            raise LLMWidgetsError(f"{path}: thresholds in a ReLU transcoder file are not supported")
        w = Weights(W_enc=t["W_enc"].T.contiguous(), b_enc=t["b_enc"], W_dec=t["W_dec"].T.contiguous(),
                    b_dec=t["b_dec"], activation="relu", W_skip=t.get("W_skip"))
        d = Dictionary(w, name=f"circuit-tracer {path.name}", info={})
    d.site = from_hook_name(f"blocks.{layer}.{input_hook}")
    d.out_site = from_hook_name(f"blocks.{layer}.{output_hook}")
    return d


def circuit_tracer(config: Path) -> list[Dictionary]:
    """Every layer's transcoder of a circuit-tracer set (its YAML config), sorted by layer."""
    import yaml

    cfg = yaml.safe_load(config.read_text())
    for k in ("feature_input_hook", "feature_output_hook", "transcoders"):
        if k not in cfg:
            raise LLMWidgetsError(f"{config}: a circuit-tracer config needs {k!r}")
    out = []
    for item in sorted(cfg["transcoders"], key=lambda c: c["layer"]):
        fp = str(item["filepath"])
        if fp.startswith("hf://"):
            raise LLMWidgetsError(f"{config}: {fp} is on the Hugging Face hub; download it and give its local path")
        p = Path(fp) if Path(fp).is_absolute() else config.parent / fp
        out.append(circuit_tracer_layer(p, int(item["layer"]), cfg["feature_input_hook"],
                                        cfg["feature_output_hook"]))
    return out


# -- dispatch -------------------------------------------------------------------------------------
def read(source, session=None):
    """The Dictionary (a list of them: a circuit-tracer set) that `source` holds."""
    if not isinstance(source, (str, Path)):
        if all(hasattr(source, a) for a in ("W_enc", "W_dec", "b_dec", "cfg")):
            return in_memory(source)
        raise LLMWidgetsError(f"cannot read a dictionary from {type(source).__name__}: give a folder or file path "
                              f"(SAELens, sparsify, Gemma Scope params.npz, circuit-tracer) or a SAELens SAE")
    p = Path(source).expanduser()
    if not p.exists():
        raise LLMWidgetsError(f"{p} does not exist (dictionaries are read from local files: download a release "
                              f"first, e.g. with huggingface_hub.snapshot_download)")
    if p.is_dir():
        if (p / "sae_weights.safetensors").exists() and (p / "cfg.json").exists():
            return saelens_folder(p)
        if (p / "sae.safetensors").exists() and (p / "cfg.json").exists():
            return sparsify_folder(p, session)
        if (p / "params.npz").exists():
            return gemma_scope(p / "params.npz")
        if is_clt(p):
            return read_clt(p)
        yamls = sorted(p.glob("*.yaml"))
        if len(yamls) == 1:
            return circuit_tracer(yamls[0])
        raise LLMWidgetsError(f"{p} holds no dictionary this library reads: expected cfg.json with "
                              f"sae_weights.safetensors (SAELens) or sae.safetensors (sparsify), params.npz "
                              f"(Gemma Scope) or one circuit-tracer .yaml")
    if p.suffix in (".yaml", ".yml"):
        return circuit_tracer(p)
    if p.suffix == ".npz":
        return gemma_scope(p)
    if p.suffix == ".safetensors":
        raise LLMWidgetsError(f"{p}: give the folder of a SAELens or sparsify dictionary, or a circuit-tracer .yaml")
    raise LLMWidgetsError(f"{p}: unknown dictionary file type {p.suffix!r}")


def load_dictionary(source, session=None, site=None):
    """A sparse dictionary (llm_widgets.dictionaries.Dictionary) from `source`: a SAELens folder,
    an EleutherAI sparsify folder, a Gemma Scope params.npz (or its folder), a circuit-tracer
    transcoder set's YAML (a list of per-layer transcoders), a circuit-tracer cross-layer
    transcoder folder (a CrossLayerTranscoder) or an in-memory SAELens SAE.

    `site` overrides (or supplies, where the format names none) where it reads: a TransformerLens
    hook name ('blocks.3.hook_resid_post') or a (site, layer) pair (('resid', 3)). With `session`,
    the dictionary is checked against the model: the site must exist there and the widths agree,
    else a clear error says what does not fit."""
    got = read(source, session)
    many = got.layers if hasattr(got, "decoders") else got if isinstance(got, list) else [got]
    if site is not None:
        if len(many) != 1:
            raise LLMWidgetsError("site= applies to one dictionary; a circuit-tracer set names its own sites")
        many[0].site = as_site(site)
    if session is not None:
        for d in many:
            d.check(session)
    return got
