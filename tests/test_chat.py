"""Chat input (llm_widgets.chat): messages= on every view that takes text, tokenized by the chat
template exactly as `apply_chat_template(..., add_generation_prompt=True, tokenize=True)` does, never
with a second BOS, with the role of every token checked against boundaries found independently
(token counts of the template rendered per message prefix, and the message contents' own tokens)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import llm_widgets as lw
from llm_widgets.chat import Chat, added_prefix, chat, message_totals
from llm_widgets.errors import LLMWidgetsError
from llm_widgets.teaching.vocab import word_level_tokenizer

WORDS = ["<s>", "<unk>", "</s>", "<|im_start|>", "<|im_end|>", "system", "user", "assistant", "You", "are",
         "a", "terse", "helper", "What", "is", "the", "capital", "of", "France", "Paris", "And", "Spain",
         "Madrid", "Thanks", "[INST]", "[/INST]", ".", "?", ",", "!"]
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
BOS_CHATML = "{{ bos_token }}" + CHATML  # the template writes BOS itself (and the tokenizer adds one too)
# refuses any conversation that does not end with a user message: its prefixes cannot be rendered
LAST_USER = ("{{ bos_token }}{% if messages[-1]['role'] != 'user' %}{{ raise_exception('end with a user message') }}"
             "{% endif %}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
             "{% else %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|>{% endif %}{% endfor %}")
# in the style of Llama-2-chat's template: the system message folded into the first user turn
LLAMA2 = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
          "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}"
          "{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
          "{{ raise_exception('Conversation roles must alternate') }}{% endif %}{% if loop.index0 == 0 and "
          "system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + "
          "message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == "
          "'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
          "{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
# in the style of Qwen2's template: a default system message where the conversation has none
QWEN2 = ("{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + "
         "'<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are a helper.<|im_end|>\\n' }}{%- endif %}"
         "{%- for message in messages %}{%- if message.role != 'system' or not loop.first %}{{- '<|im_start|>' + "
         "message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
         "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")
MESSAGES = [
    {"role": "system", "content": "You are a terse helper."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Spain?"},
    {"role": "user", "content": "Thanks!"},  # two user messages in a row: two segments
]


def word_tokenizer(template: str | None = None):
    """A word-level tokenizer that adds <s> before every text, with chat control tokens."""
    tok = word_level_tokenizer(WORDS, bos="<s>", unk="<unk>", eos="</s>", max_length=64, punctuation=True)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>", "[INST]", "[/INST]"]})
    tok.chat_template = template
    return tok


@pytest.fixture(scope="module")
def llama():
    """A tiny random Llama (llm_widgets.testing) reading the word tokenizer's ids."""
    from llm_widgets.testing import build

    tok = word_tokenizer(BOS_CHATML)
    return lw.load((build("llama", vocab_size=len(tok), positions=64), tok), device="cpu")


def reference(tok, messages, template=None) -> list[int]:
    return tok.apply_chat_template(messages, chat_template=template, add_generation_prompt=True, tokenize=True,
                                   return_dict=False)


def check_roles(tok, c: Chat, messages, template=None, exact=True):
    """Roles against boundaries found independently: with `exact`, message k is tokens
    [len(ids of prefix k), len(ids of prefix k+1)) of the conversation (the template rendered and
    tokenized per message prefix), the generation prompt the rest; in every case the non-markup
    tokens of message k are exactly the tokens of its content."""
    n = len(messages)
    if exact:
        cuts = [0]
        for k in range(1, n + 1):
            prefix = tok.apply_chat_template(messages[:k], chat_template=template, tokenize=True, return_dict=False)
            assert list(c.ids[:len(prefix)]) == prefix  # the first k messages' tokens start the conversation
            cuts.append(len(prefix))
        cuts.append(len(c.ids))
        for k in range(n + 1):
            role = messages[k]["role"] if k < n else "assistant"
            assert list(c.message[cuts[k]:cuts[k + 1]]) == [k] * (cuts[k + 1] - cuts[k])
            assert list(c.roles[cuts[k]:cuts[k + 1]]) == [role] * (cuts[k + 1] - cuts[k])
        assert cuts[n + 1] > cuts[n]  # the generation prompt has tokens
        assert all(c.markup[cuts[n]:])  # ... all of them markup
    for k, m in enumerate(messages):
        content = [i for i, mk, msg in zip(c.ids, c.markup, c.message) if msg == k and not mk]
        assert content == tok(m["content"], add_special_tokens=False)["input_ids"], k
        assert {c.roles[i] for i in range(len(c.ids)) if c.message[i] == k} == {m["role"]}


@pytest.mark.parametrize("template", [CHATML, BOS_CHATML], ids=["template without BOS", "template with BOS"])
def test_ids_equal_apply_chat_template_and_roles_match_the_message_boundaries(template):
    tok = word_tokenizer(template)
    assert added_prefix(tok) == [tok.bos_token_id]  # this tokenizer adds BOS to a text of its own accord
    c = chat(tok, MESSAGES)
    ref = reference(tok, MESSAGES)
    assert list(c.ids) == ref
    assert c.ids.count(tok.bos_token_id) == (1 if template == BOS_CHATML else 0)  # never a second BOS
    specials = set(tok.all_special_ids)
    assert not [a for a, b in zip(c.ids, c.ids[1:]) if a == b and a in specials]  # no special token doubled
    assert c.exact
    check_roles(tok, c, MESSAGES)
    # by hand, for the first message: <s>? <|im_start|> system | You are a terse helper . | <|im_end|>
    first = tok.convert_ids_to_tokens(list(c.ids))[:9 + (template == BOS_CHATML)]
    lead = ["<s>"] if template == BOS_CHATML else []
    assert first == lead + ["<|im_start|>", "system", "You", "are", "a", "terse", "helper", ".", "<|im_end|>"]
    assert list(c.markup[:len(first)]) == [True] * (len(lead) + 2) + [False] * 6 + [True]
    assert c.message_roles == ["system", "user", "assistant", "user", "user", "assistant"]


def test_a_view_reads_exactly_the_template_ids_and_publishes_the_roles(llama):
    tok = llama.tokenizer
    ref = reference(tok, MESSAGES)
    seen = []
    emb = llama.model.get_input_embeddings()
    hook = emb.register_forward_hook(lambda m, args, out: seen.append(args[0][0].tolist()))
    try:
        v = lw.AttentionView(llama, messages=MESSAGES)
    finally:
        hook.remove()
    assert seen and all(ids == ref for ids in seen)  # every forward the view ran read the template's ids
    assert ref.count(tok.bos_token_id) == 1
    c = llama.chat(MESSAGES)
    assert v.tokens == llama.readable_tokens(tok.convert_ids_to_tokens(ref))
    assert v.token_roles == list(c.roles) and v.token_markup == list(c.markup)
    assert v.token_messages == list(c.message)
    # the trace of the chat: its ids, and the tokenizer's words of the rendered text (no BOS shift)
    tr = llama.trace(c)
    assert tr.input_ids.tolist() == ref
    assert len(tr.word_ids) == len(ref) and tr.word_ids[0] is None  # <s>: special, no word


def test_other_views_take_messages_too(llama):
    ref_tokens = llama.readable_tokens(llama.tokenizer.convert_ids_to_tokens(reference(llama.tokenizer, MESSAGES)))
    c = llama.chat(MESSAGES)
    for v in (lw.LogitLensView(llama, messages=MESSAGES, k=2), lw.NeuronView(llama, messages=MESSAGES, k=2)):
        assert v.tokens == ref_tokens, type(v).__name__
        assert v.token_roles == list(c.roles), type(v).__name__
    plain = lw.LogitLensView(llama, "What is the capital of France ?", k=2)
    assert plain.token_roles == [] and plain.token_markup == []


def test_the_roles_reach_the_front_end_state(llama, monkeypatch):
    """Browser-free protocol: the state message ipywidgets sends to the front end holds the roles."""
    v = lw.LogitLensView(llama, messages=MESSAGES[:2], k=2)
    sent = []
    monkeypatch.setattr(v, "_send", lambda msg, buffers=None: sent.append(msg))
    v.send_state()
    assert sent[-1]["method"] == "update"
    state = json.loads(json.dumps(sent[-1]["state"]))  # as JSON on the wire (arrays went as buffers)
    c = llama.chat(MESSAGES[:2])
    assert state["token_roles"] == list(c.roles)
    assert state["token_markup"] == list(c.markup)
    assert state["token_messages"] == list(c.message)
    assert len(state["token_roles"]) == len(state["tokens"])
    assert {"system", "user", "assistant"} == set(state["token_roles"])


def test_a_tokenizer_that_adds_cls_and_a_template_that_writes_it(minilm, minilm_tokenizer):
    """MiniLM's WordPiece tokenizer adds [CLS]; a template writing [CLS] itself gets one, not two."""
    template = "{{ cls_token }}" + CHATML.replace("<|im_start|>", "[unused1]").replace("<|im_end|>", "[SEP]")
    assert minilm_tokenizer.chat_template is None  # the template is passed, the shared tokenizer untouched
    c = chat(minilm_tokenizer, MESSAGES, chat_template=template)
    assert list(c.ids) == reference(minilm_tokenizer, MESSAGES, template)
    assert c.ids.count(minilm_tokenizer.cls_token_id) == 1 and c.ids[0] == minilm_tokenizer.cls_token_id
    check_roles(minilm_tokenizer, c, MESSAGES, template)
    # rendering the template by hand and tokenizing the text again would double [CLS]: refused
    with pytest.raises(LLMWidgetsError, match=r"double BOS.*messages="):
        minilm.encode(str(c))


def test_rendered_text_tokenized_again_is_refused_and_never_collides_with_the_chat(llama):
    c = llama.chat(MESSAGES)
    with pytest.raises(LLMWidgetsError, match="already starts with.*double BOS"):
        llama.trace(str(c))  # the classic bug: the template's text with the tokenizer's BOS on top
    assert c != str(c) and hash(c) != hash(str(c))
    # a chat template without BOS: the plain text gets the tokenizer's BOS, the chat does not
    d = llama.chat(MESSAGES, chat_template=CHATML)
    assert llama.trace(str(d)).input_ids.tolist() == [llama.tokenizer.bos_token_id] + list(d.ids)
    assert llama.trace(d).input_ids.tolist() == list(d.ids)  # not the cached plain text


def test_a_template_that_writes_bos_twice_is_refused():
    tok = word_tokenizer("{{ bos_token }}" + BOS_CHATML)
    with pytest.raises(LLMWidgetsError, match=r"writes \['<s>'\] twice"):
        chat(tok, MESSAGES)


def test_a_template_that_refuses_prefixes_locates_messages_by_their_content():
    tok = word_tokenizer(LAST_USER)
    msgs = MESSAGES[:2]
    c = chat(tok, msgs)
    assert list(c.ids) == reference(tok, msgs)
    assert not c.exact
    check_roles(tok, c, msgs, exact=False)
    toks = tok.convert_ids_to_tokens(list(c.ids))
    # the markup before a message's content counts to that message: [INST] opens the user's
    assert c.roles[toks.index("[INST]")] == "user" and c.markup[toks.index("[INST]")]


def test_a_model_without_a_template_says_so(llama):
    s = lw.load((llama.model, word_tokenizer(None)), device="cpu")
    with pytest.raises(LLMWidgetsError, match="no chat template.*chat_template="):
        s.chat(MESSAGES)
    with pytest.raises(LLMWidgetsError, match="no chat template.*chat_template="):
        lw.AttentionView(s, messages=MESSAGES)
    v = lw.AttentionView(s, messages=MESSAGES, chat_template=CHATML)  # the override works
    assert v.tokens == s.readable_tokens(s.tokenizer.convert_ids_to_tokens(reference(s.tokenizer, MESSAGES, CHATML)))


def test_text_and_messages_are_exclusive_and_bad_messages_are_clear_errors(llama):
    with pytest.raises(LLMWidgetsError, match="either text or messages="):
        lw.AttentionView(llama, "What is the capital ?", messages=MESSAGES)
    with pytest.raises(LLMWidgetsError, match="Pass a text, or messages="):
        lw.AttentionView(llama)
    with pytest.raises(LLMWidgetsError, match="chat_template= applies to messages="):
        lw.AttentionView(llama, "What is the capital ?", chat_template=CHATML)
    with pytest.raises(TypeError, match="did you mean 'messages'"):
        lw.AttentionView(llama, messages=MESSAGES, mesages=MESSAGES)
    for bad, match in [("hello", "list of"), ([], "empty"), ([{"role": "user"}], "'role' and 'content'"),
                       ([{"role": "user", "content": 3}], "must be a str"), ([{"role": "", "content": "a"}], "role")]:
        with pytest.raises(LLMWidgetsError, match=match):
            llama.chat(bad)
    with pytest.raises(LLMWidgetsError, match="could not render"):
        llama.chat(MESSAGES[:1], chat_template="{{ raise_exception('no system messages') }}")


def test_truncation_keeps_the_first_tokens_and_their_roles(llama):
    long = [{"role": "user", "content": " ".join(["What is the capital of France ?"] * 12)}]
    c = llama.chat(long)
    assert len(c.ids) > llama.max_length == 64
    with pytest.raises(lw.InputTooLongError):
        lw.LogitLensView(llama, messages=long)
    v = lw.LogitLensView(llama, messages=long, truncate=True, k=2)
    assert v.tokens == llama.readable_tokens(llama.tokenizer.convert_ids_to_tokens(list(c.ids[:64])))
    assert v.token_roles == list(c.roles[:64]) and v.token_markup == list(c.markup[:64])


def test_message_totals_sum_scores_per_message_content_and_markup_apart():
    tok = word_tokenizer(BOS_CHATML)
    c = chat(tok, MESSAGES[:2])
    scores = np.arange(len(c.ids), dtype=float)
    got = message_totals(c, scores)
    assert got.roles == ["system", "user", "assistant"]
    for k in range(3):
        assert got.content[k] == sum(s for s, m, mk in zip(scores, c.message, c.markup) if m == k and not mk)
        assert got.markup[k] == sum(s for s, m, mk in zip(scores, c.message, c.markup) if m == k and mk)
    assert got.total.sum() == pytest.approx(scores.sum())
    assert got.content[2] == 0  # the generation prompt is all markup
    with pytest.raises(LLMWidgetsError, match="one value per token"):
        message_totals(c, np.ones(len(c.ids) + 1))


def test_attribution_over_a_chat_reads_the_chat_ids(llama):
    """AttributionView takes messages= like the others; its scores can be grouped by message."""
    c = llama.chat(MESSAGES[:2])
    v = lw.AttributionView(llama, messages=MESSAGES[:2], target=" Paris", method="saliency")
    assert v.tokens == llama.readable_tokens(llama.tokenizer.convert_ids_to_tokens(list(c.ids)))
    assert v.token_roles == list(c.roles)
    scores = v.result.scores[0]  # [K, T]: the one target's row
    totals = message_totals(c, scores)
    assert totals.total.sum() == pytest.approx(scores.sum())
    assert torch.is_tensor(llama.encode(c)[0]["input_ids"])


def test_explorer_roles_follow_its_text(llama):
    """Explorer re-runs on a new `text`: the roles follow it (a chat's, none for a plain text, the
    previous ones where the new text fails)."""
    e = lw.Explorer(llama, messages=MESSAGES[:2], panels=("attention",))
    c = llama.chat(MESSAGES[:2])
    assert e.token_roles == list(c.roles)
    e.text = "What is the capital of France ?"
    assert e.tokens[0] == "<s>" and e.token_roles == [] and e.token_markup == []
    e.text = c
    assert e.tokens == llama.trace(c).tokens and e.token_roles == list(c.roles)
    e.text = "   "  # an error: the previous tokens stay, and so do their roles
    assert e.error and e.token_roles == list(c.roles)


def test_content_that_also_appears_in_the_template_is_told_apart():
    """A message whose content is its role's name: the header's 'user' is markup, the content's is not."""
    tok = word_tokenizer(CHATML)
    msgs = [{"role": "user", "content": "user"}, {"role": "assistant", "content": "assistant"}]
    c = chat(tok, msgs)
    assert tok.convert_ids_to_tokens(list(c.ids)) == [
        "<|im_start|>", "user", "user", "<|im_end|>", "<|im_start|>", "assistant", "assistant", "<|im_end|>",
        "<|im_start|>", "assistant"]
    assert list(c.markup) == [True, True, False, True, True, True, False, True, True, True]
    assert list(c.message) == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]


def test_templates_in_the_style_of_llama2_and_qwen2():
    """Llama-2 folds the system message into the first user turn (no prefix renders alone: located
    from the contents); Qwen2 writes a default system message when there is none (markup of the
    first message)."""
    tok = word_tokenizer(None)
    msgs = MESSAGES[:4]
    c = chat(tok, msgs, chat_template=LLAMA2)
    assert list(c.ids) == reference(tok, msgs, LLAMA2) and c.ids.count(tok.bos_token_id) == 2  # one per [INST]
    assert not c.exact
    check_roles(tok, c, msgs, LLAMA2, exact=False)
    toks = tok.convert_ids_to_tokens(list(c.ids))
    assert toks[:2] == ["<s>", "[INST]"] and c.roles[:2] == ("system", "system") and all(c.markup[:2])
    for msgs in (MESSAGES[1:4], MESSAGES[:4]):  # without a system message, and with one
        c = chat(tok, msgs, chat_template=QWEN2)
        assert list(c.ids) == reference(tok, msgs, QWEN2) and c.exact
        check_roles(tok, c, msgs, QWEN2)
    # the default system message the template wrote is markup of the first (user) message
    assert tok.convert_ids_to_tokens(list(c.ids[:3])) == ["<|im_start|>", "system", "You"]
    c = chat(tok, MESSAGES[1:4], chat_template=QWEN2)
    assert c.roles[:10] == ("user",) * 10 and all(c.markup[:10])  # <|im_start|> system You are a helper . ...


def test_attribution_of_the_assistants_reply(llama):
    """generate=k after a chat: the reply greedily continued from the generation prompt, each of its
    tokens attributed to the conversation's tokens."""
    c = llama.chat(MESSAGES[:2])
    r = lw.AttributionView(llama, messages=MESSAGES[:2], generate=3, method="saliency").result
    assert r.generated and r.scores.shape == (3, len(c.ids))
    assert r.input_ids.tolist() == list(c.ids)
    ids = torch.tensor([list(c.ids)])
    with torch.no_grad():  # greedy by hand
        for _ in range(3):
            ids = torch.cat([ids, llama.model(ids).logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert r.target_ids == ids[0, len(c.ids):].tolist()


def test_a_chat_made_by_another_tokenizer_is_refused(llama, minilm):
    c = chat(minilm.tokenizer, MESSAGES[:2], chat_template=CHATML)
    with pytest.raises(LLMWidgetsError, match="another tokenizer"):
        llama.trace(c)
    with pytest.raises(LLMWidgetsError, match="another tokenizer"):
        lw.AttentionView(llama, c)
