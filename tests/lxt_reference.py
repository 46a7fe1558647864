"""Relevance from the `lxt` package (AttnLRP's authors' code) for a tiny model, run in its own process:
lxt patches transformers' classes globally. Its bert and vision modules do not import with
transformers 5, so stubs stand in for them (the llama and gpt2 patches are what runs).

    python tests/lxt_reference.py FAMILY OUT.npy
"""
import sys
import types

for name in ("lxt.efficient.models.bert", "lxt.efficient.models.vit_torch", "lxt.efficient.zennit_patches"):
    stub = types.ModuleType(name)
    stub.attnLRP, stub.cp_LRP = {}, {}
    stub.modeling_bert = stub.vision_transformer = types.ModuleType(name + ".stub")
    stub.monkey_patch_zennit = None
    sys.modules[name] = stub

import numpy as np  # noqa: E402
import torch  # noqa: E402
from lxt.efficient import monkey_patch  # noqa: E402

from llm_widgets.testing import build  # noqa: E402

TEXT_IDS = [101, 1996, 2143, 2001, 6659, 1998, 1996, 3772, 2001, 4030, 102]  # "[CLS] the film was terrible ... [SEP]"


class _Registry(dict):
    def get_interface(self, name, default):
        return default if name == "eager" else self.get(name, default)


def main(family: str, out: str):
    import importlib

    module = importlib.import_module({"llama": "transformers.models.llama.modeling_llama",
                                      "gpt2": "transformers.models.gpt2.modeling_gpt2"}[family])
    monkey_patch(module)
    # lxt 2.1 replaces the attention registry with a plain dict; transformers 5 asks it for
    # get_interface(name, default): give the dict that method back (lxt's patched eager is the default)
    module.ALL_ATTENTION_FUNCTIONS = _Registry(module.ALL_ATTENTION_FUNCTIONS)
    model = build(family)
    for p in model.parameters():
        p.requires_grad_(False)
    ids = torch.tensor([TEXT_IDS])
    emb = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    if family == "gpt2":  # the first block reads token + position embeddings
        x = (emb + model.transformer.wpe(torch.arange(len(TEXT_IDS)))[None]).detach().requires_grad_(True)
        logits = model(inputs_embeds=x - model.transformer.wpe(torch.arange(len(TEXT_IDS)))[None]).logits
    else:
        x = emb
        logits = model(inputs_embeds=x).logits
    target = int(logits[0, -1].argmax())
    logits[0, -1, target].backward()
    np.save(out, np.concatenate([[target], (x * x.grad).sum(-1)[0].detach().numpy()]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
