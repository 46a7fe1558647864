"""How a token reads as text: decoded by its tokenizer, with what cannot be read made visible.

Byte-level BPE tokenizers (GPT-2, Llama 3, Qwen, ...) write every byte as one printable character
(GPT-2's byte alphabet, `byte_alphabet`); a token that holds part of a multi-byte UTF-8 character
(the first two of the three bytes of a CJK character, say) decodes to the replacement character
U+FFFD, which would show every such token as the same "?". Those bytes are shown as escapes instead
("\\xe6\\x97"), and newlines and tabs as visible arrows.
"""
from __future__ import annotations

from functools import lru_cache

REPLACEMENT = "\ufffd"


@lru_cache(maxsize=1)
def byte_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet, character -> byte: the printable bytes stand for themselves, the
    other 68 are shifted to 256 and up (Radford et al. 2019, the encoder every byte-level BPE uses)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def readable(token: str, decoded: str) -> str:
    """The readable form of one token: `decoded` (its tokenizer's own string for it), with bytes
    that are not whole characters as escapes when `token` is written in the byte alphabet, and
    newlines / tabs as visible arrows."""
    if REPLACEMENT in decoded and token and REPLACEMENT not in token:
        alphabet = byte_alphabet()
        if all(c in alphabet for c in token):
            decoded = bytes(alphabet[c] for c in token).decode("utf-8", errors="backslashreplace")
    return decoded.replace("\n", "\u21b5").replace("\t", "\u21e5")
