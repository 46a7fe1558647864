"""Tokens as text: byte-level tokens that hold part of a character show their bytes as escapes, not as
the replacement character; the byte alphabet is the one the `tokenizers` library uses."""
import pytest
from tokenizers import pre_tokenizers

from llm_widgets.token_text import byte_alphabet, readable


def test_the_byte_alphabet_is_the_tokenizers_librarys():
    ours = byte_alphabet()
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    for text in [chr(i) for i in range(1, 0x800)] + ["\u653f", "\U0001f600"]:
        (got, _), = byte_level.pre_tokenize_str(text)
        assert bytes(ours[c] for c in got) == text.encode("utf-8"), repr(text)
    assert len(ours) == 256 and sorted(ours.values()) == list(range(256))


@pytest.mark.parametrize("text, cut, want", [("\u653f", 2, "\\xe6\\x94"), ("\u00e9t\u00e9", 1, "\\xc3"),
                                             ("\U0001f600", 3, "\\xf0\\x9f\\x98")])
def test_a_partial_character_shows_its_bytes(text, cut, want):
    inv = {b: c for c, b in byte_alphabet().items()}
    token = "".join(inv[b] for b in text.encode("utf-8")[:cut])
    assert readable(token, "\ufffd") == want


def test_whole_tokens_read_as_decoded_with_visible_whitespace():
    assert readable("\u0120the", " the") == " the"
    assert readable("a\u010a", "a\n") == "a\u21b5"
    assert readable("[UNK]", "[UNK]") == "[UNK]"
    assert readable("x", "\ufffd") == "\ufffd" or readable("x", "\ufffd") == "x"  # not byte-level text: kept
