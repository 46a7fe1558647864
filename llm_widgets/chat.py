"""Chat conversations as model input: messages turned into token ids by the tokenizer's own chat
template, with the role of every token and whether it is template markup.

`chat(tokenizer, messages)` (or `Session.chat(messages)`) returns a `Chat`: a `str` (the rendered
conversation, so it goes wherever a text goes: `Session.trace`, `Session.encode` and every view) that
carries the exact token ids `tokenizer.apply_chat_template(messages, add_generation_prompt=True,
tokenize=True)` gives, and per token its role (system / user / assistant / ...), its message and
whether the template wrote it (markup) rather than the message's content. `Session.encode` uses
these ids as they are: the rendered text is never tokenized again, so a template that writes BOS
itself never gets a second one from a tokenizer that also adds one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import EmptyInputError, LLMWidgetsError

GENERATION = "assistant"  # the role of the generation prompt: the header of the reply to come


class Chat(str):
    """A conversation ready for the model: its value is the rendered template text; `ids`, `roles`,
    `markup` and `message` hold one entry per token. Built by `chat(...)`; compares equal only to a
    Chat with the same text and ids (never to the plain text, which tokenizes differently).

    Fields: messages (the conversation, as given), template (the Jinja template used), ids (token
    ids), tokens (the tokenizer's strings of them), encoding (every tensor the tokenizer returned:
    input_ids, attention_mask, ...), roles (the role of each token's message; the generation prompt
    is 'assistant'), markup (True where the template wrote the token, False for message content),
    message (each token's message index; len(messages) for the generation prompt), word_ids (the
    tokenizer's word index per token, None for special tokens), exact (True when message boundaries
    come from rendering the template per message prefix; False when the template is not
    prefix-stable and boundaries were located from the message contents, template markup then
    counted to the message it precedes)."""

    messages: tuple
    template: str
    ids: tuple
    tokens: tuple
    encoding: dict
    roles: tuple
    markup: tuple
    message: tuple
    word_ids: tuple
    exact: bool

    def __eq__(self, other):
        return isinstance(other, Chat) and str.__eq__(self, other) and self.ids == other.ids

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(("chat", str(self), self.ids))

    def __repr__(self):
        return f"Chat({len(self.messages)} messages, {len(self.ids)} tokens: {str.__repr__(self)})"

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    @property
    def message_roles(self) -> list[str]:
        """Role of each message, then 'assistant' for the generation prompt where the template wrote one."""
        roles = [m["role"] for m in self.messages]
        return roles + [GENERATION] if len(self.messages) in self.message else roles


def check_messages(messages) -> list[dict]:
    """The messages as a list of dicts, each with a str 'role' and a str 'content' (other keys are
    passed to the template as they are), or a clear error."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, (list, tuple)):
        raise LLMWidgetsError(f"messages must be a list of {{'role': ..., 'content': ...}} dicts, got "
                              f"{type(messages).__name__}")
    if not messages:
        raise EmptyInputError("messages is empty: pass at least one {'role': 'user', 'content': ...}.")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise LLMWidgetsError(f"messages[{i}] must be a dict with 'role' and 'content', got {m!r}")
        if not isinstance(m["role"], str) or not m["role"]:
            raise LLMWidgetsError(f"messages[{i}]['role'] must be a non-empty str, got {m['role']!r}")
        if not isinstance(m["content"], str):
            raise LLMWidgetsError(f"messages[{i}]['content'] must be a str (text only), got "
                                  f"{type(m['content']).__name__}")
        out.append(dict(m))
    return out


def template_of(tokenizer, chat_template: str | None) -> str:
    """The Jinja chat template to use: `chat_template` when given, else the tokenizer's own; a clear
    error when there is none."""
    if chat_template is not None:
        if not isinstance(chat_template, str) or not chat_template.strip():
            raise LLMWidgetsError(f"chat_template must be a Jinja template string, got {chat_template!r}")
        return chat_template
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):  # named templates: the default one
        own = own.get("default")
    if not own:
        raise LLMWidgetsError(
            f"This tokenizer ({type(tokenizer).__name__}) has no chat template, so messages= cannot be "
            f"turned into tokens the way the model was trained to read them. Pass chat_template='...' (the "
            f"Jinja template of the chat model this one derives from), or pass plain text instead.")
    return own


def _render(tokenizer, messages, template: str, generation: bool) -> str:
    return tokenizer.apply_chat_template(messages, chat_template=template, add_generation_prompt=generation,
                                         tokenize=False)


def added_prefix(tokenizer) -> list[int]:
    """The ids the tokenizer puts before a text of its own accord (BOS, [CLS], ...; [] for none),
    found by comparing an encoding with and without special tokens."""
    with_ = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    n = len(without)
    for start in range(len(with_) - n + 1):
        if with_[start:start + n] == without:
            return list(with_[:start])
    return []


def _prefix_spans(tokenizer, messages, template: str, full: str) -> list[int] | None:
    """Character boundaries b[0..n] of the messages in the rendered text, from rendering the template
    per message prefix (message k is full[b[k]:b[k+1]], the generation prompt full[b[n]:]); None
    where a prefix renders differently or not at all."""
    bounds = [0]
    try:
        for k in range(1, len(messages) + 1):
            p = _render(tokenizer, messages[:k], template, False)
            if not full.startswith(p) or len(p) < bounds[-1]:
                return None
            bounds.append(len(p))
    except Exception:  # the template refuses a prefix (e.g. one that does not end with a user message)
        return None
    return bounds


def _located_spans(tokenizer, messages, template: str, full: str) -> list[int]:
    """Boundaries located from the contents, in order: message k ends where its content ends (the
    markup between two contents counts to the message it precedes)."""
    bounds, at = [0], 0
    for k, m in enumerate(messages):
        found = _find(full, m["content"], at)
        if found is None:
            raise LLMWidgetsError(
                f"Cannot tell which tokens belong to messages[{k}]: the chat template changes its text "
                f"(its content is not in the rendered conversation) and does not render prefixes of the "
                f"conversation as prefixes. Pass chat_template= a template that keeps message text as it is.")
        at = found[1]
        if k + 1 < len(messages):
            bounds.append(at)
    try:
        whole = _render(tokenizer, messages, template, False)
        end = len(whole) if full.startswith(whole) and len(whole) >= at else len(full)
    except Exception:
        end = len(full)
    return bounds + [end]


def _contents(tokenizer, messages, template: str, full: str, bounds: list[int], exact: bool) -> list | None:
    """(start, end) of each message's content in `full`, within its span; None where one is not found."""
    out = []
    for k, m in enumerate(messages):
        found = (_content_at(tokenizer, messages, k, template, full) if exact else None) \
            or _find(full, m["content"], bounds[k], bounds[k + 1])
        if found is None or not bounds[k] <= found[0] <= found[1] <= bounds[k + 1]:
            return None
        out.append(found)
    return out


def _find(text: str, content: str, start: int, end: int | None = None) -> tuple[int, int] | None:
    """Where content (or, for a template that trims, content stripped) is in text[start:end]."""
    for c in (content, content.strip()):
        if not c:
            return None if content.strip() else (start, start)
        i = text.find(c, start, len(text) if end is None else end)
        if i >= 0:
            return i, i + len(c)
    return None


_PROBE = "LWCHATCONTENTPROBE7f3a"  # stands in for a message's content to find where the template puts it


def _content_at(tokenizer, messages, k: int, template: str, full: str) -> tuple[int, int] | None:
    """Where message k's content is in `full`, found by rendering the first k + 1 messages with a
    probe in place of its content (so a content that also appears in the template's header, such as
    the role's name, is not mistaken for it); None where that cannot be told."""
    content = messages[k]["content"]
    try:
        probe = _render(tokenizer, messages[:k] + [{**messages[k], "content": _PROBE}], template, False)
    except Exception:
        return None
    i = probe.find(_PROBE)
    if i < 0 or probe[:i] != full[:i]:
        return None
    for c in (content, content.strip()):
        if full.startswith(c, i):
            return i, i + len(c)
    return None


def chat(tokenizer, messages, *, chat_template: str | None = None) -> Chat:
    """Turn messages into a `Chat`: token ids exactly as `tokenizer.apply_chat_template(messages,
    add_generation_prompt=True, tokenize=True)` gives them (a reply from the assistant is to come),
    with the role, message and markup flag of every token. chat_template: a Jinja template to use
    instead of the tokenizer's own (required where it has none). Raises LLMWidgetsError for a
    tokenizer without a template, malformed messages, a template that writes the tokenizer's BOS
    twice, or a tokenizer that cannot give character offsets (a slow, Python-only tokenizer)."""
    messages = check_messages(messages)
    template = template_of(tokenizer, chat_template)
    try:
        full = _render(tokenizer, messages, template, True)
        enc = tokenizer.apply_chat_template(messages, chat_template=template, add_generation_prompt=True,
                                            tokenize=True, return_dict=True,
                                            tokenizer_kwargs={"return_offsets_mapping": True})
    except NotImplementedError as e:  # offsets: fast tokenizers only
        raise LLMWidgetsError(f"messages= needs a fast tokenizer (one that reports where each token is in the "
                              f"text) to tell the role of each token; {type(tokenizer).__name__} does not: {e}") from e
    except LLMWidgetsError:
        raise
    except Exception as e:  # a Jinja error in the template, raise_exception(...) in it, ...
        raise LLMWidgetsError(f"The chat template could not render these messages: {type(e).__name__}: {e}") from e
    ids = [int(i) for i in enc["input_ids"]]
    if not ids:
        raise EmptyInputError("The chat template produced no tokens for these messages.")
    lead = doubled_prefix(tokenizer, ids)
    if lead:
        raise LLMWidgetsError(f"The chat template writes {tokenizer.convert_ids_to_tokens(lead)} twice at the start "
                              f"(a double BOS): fix the template (pass chat_template=) so it writes it once.")
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    bounds = _prefix_spans(tokenizer, messages, template, full)
    contents = None if bounds is None else _contents(tokenizer, messages, template, full, bounds, True)
    exact = contents is not None
    if not exact:  # e.g. a system message folded into the first user turn: located from the contents
        bounds = _located_spans(tokenizer, messages, template, full)
        contents = _contents(tokenizer, messages, template, full, bounds, False)
        if contents is None:
            raise LLMWidgetsError("Cannot find the content of every message in what the chat template renders: "
                                  "the template changes the text. Pass chat_template= a template that keeps "
                                  "message text as it is.")
    n = len(messages)
    message, markup = [], []
    for a, b in offsets:
        inside = [k for k, (c0, c1) in enumerate(contents) if a < c1 and b > c0]  # overlaps content k
        if inside:
            message.append(inside[0])
            markup.append(False)
            continue
        at = a if b > a else max(a - 1, 0)  # zero-width: the character before it
        k = next((k for k in range(n) if bounds[k] <= at < bounds[k + 1]), n)
        message.append(k)
        markup.append(True)
    roles = [messages[k]["role"] if k < n else GENERATION for k in message]
    try:
        specials = set(tokenizer.all_special_ids)  # special tokens written by the template: no word
        word_ids = tuple(None if i in specials else w for i, w in zip(ids, enc.word_ids(0)))
    except Exception:  # a tokenizer that cannot tell words
        word_ids = (None,) * len(ids)
    out = Chat(full)
    out.messages = tuple(messages)
    out.template = template
    out.ids = tuple(ids)
    out.tokens = tuple(tokenizer.convert_ids_to_tokens(ids))
    out.encoding = {k: tuple(int(x) for x in v) for k, v in enc.items() if k != "offset_mapping"}
    out.roles, out.markup, out.message = tuple(roles), tuple(markup), tuple(message)
    out.word_ids = word_ids
    out.exact = exact
    return out


@dataclass
class MessageTotals:
    """Per-token scores summed per message (attribution grouped by message). roles [M]: each
    message's role ('assistant' last for the generation prompt where there is one); content [M]: the
    sum over the message's content tokens; markup [M]: the sum over the template's tokens of it."""

    roles: list[str]
    content: np.ndarray
    markup: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.content + self.markup


def message_totals(chat: Chat, scores) -> MessageTotals:
    """Sum per-token scores (attribution, or any [T] value per input token) per message of `chat`,
    content and template markup apart. scores: [T] for the chat's first T tokens (T <= its tokens,
    so a truncated input works)."""
    if not isinstance(chat, Chat):
        raise LLMWidgetsError(f"message_totals needs a Chat (Session.chat(messages)), got {type(chat).__name__}")
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or not 0 < len(s) <= chat.n_tokens:
        raise LLMWidgetsError(f"scores must be one value per token of the chat ([T], T <= {chat.n_tokens}), got "
                              f"shape {s.shape}")
    roles = chat.message_roles
    msg = np.asarray(chat.message[:len(s)])
    mark = np.asarray(chat.markup[:len(s)], dtype=bool)
    content = np.bincount(msg[~mark], weights=s[~mark], minlength=len(roles))
    markup = np.bincount(msg[mark], weights=s[mark], minlength=len(roles))
    return MessageTotals(roles=roles, content=content, markup=markup)


def chat_input(tokenizer, text, messages, chat_template) -> str:
    """What a view or computation reads: `text` (a str or a Chat) or the Chat of `messages`, exactly
    one of them; chat_template applies to messages only."""
    if messages is not None:
        if text is not None:
            raise LLMWidgetsError("Pass either text or messages=, not both.")
        return chat(tokenizer, messages, chat_template=chat_template)
    if text is None:
        raise LLMWidgetsError("Pass a text, or messages=[{'role': 'user', 'content': ...}] for a chat model.")
    if chat_template is not None:
        raise LLMWidgetsError("chat_template= applies to messages=; pass messages=[...] with it (a text is used "
                              "as it is).")
    return text


def doubled_prefix(tokenizer, ids: list[int]) -> list[int]:
    """What the tokenizer adds before a text (added_prefix) where `ids` start with it twice, else []."""
    lead = added_prefix(tokenizer)
    return lead if lead and list(ids[:2 * len(lead)]) == lead + lead else []


def check_single_prefix(tokenizer, ids: list[int]) -> None:
    """Refuse token ids of a plain text that start with what the tokenizer adds twice: the text
    already began with it (a chat template rendered to text by hand, then tokenized again)."""
    lead = doubled_prefix(tokenizer, ids)
    if lead:
        shown = tokenizer.convert_ids_to_tokens(lead)
        raise LLMWidgetsError(f"The text already starts with {shown} and the tokenizer adds it again (a double "
                              f"BOS). For a chat, pass messages=[...] (the template is applied once, with no "
                              f"second BOS); otherwise remove {shown} from the start of the text.")


def check_same_tokenizer(tokenizer, chat: Chat) -> None:
    """Refuse a Chat made by another tokenizer (its ids would mean other tokens to this model):
    its ids must read as the same token strings here."""
    try:
        same = list(tokenizer.convert_ids_to_tokens(list(chat.ids))) == list(chat.tokens)
    except Exception:  # ids outside this vocabulary
        same = False
    if not same:
        raise LLMWidgetsError("This chat was tokenized by another tokenizer: its ids mean other tokens to this "
                              "model. Build it with this session (session.chat(messages)) or pass messages=.")
