"""The word-level tokenizer every teaching model uses: a fixed vocabulary, `<bos>` put first, tokens
decoded joined by spaces. Built with the `tokenizers` library, so it runs offline."""
from __future__ import annotations


def word_level_tokenizer(words: list[str], *, bos: str, unk: str, max_length: int, pad: str | None = None,
                         eos: str | None = None, punctuation: bool = False):
    """A PreTrainedTokenizerFast whose token i is words[i]; `bos` starts every encoding. Text splits
    on whitespace, and also before and after punctuation where `punctuation` ('drink,' -> 'drink' ',')."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.Whitespace() if punctuation else pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, vocab[bos])])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # tokens joined by spaces
    specials = {k: v for k, v in (("pad_token", pad), ("eos_token", eos)) if v is not None}
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, unk_token=unk, model_max_length=max_length,
                                   **specials)
