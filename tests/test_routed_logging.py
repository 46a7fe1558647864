"""Warning records of the `transformers` and `llm_widgets` loggers raised by a view's own work reach the
view's notice instead of stderr (issue 31, item 10), by the same routing as `warnings.warn`
(widgets/routed_warnings.py): for every view, on the thread that builds it and on its background
workers; records of other threads still reach the handlers (stderr) as before."""
from __future__ import annotations

import io
import logging
import threading
import warnings

import pytest

import llm_widgets as lw
import llm_widgets.widgets.neuron as neuron_view
from llm_widgets.widgets.routed_warnings import WarningRoute, record_line

TOO_LONG = "Token indices sequence length is longer than the specified maximum sequence length"
SEQ_KEY = "sequence-length-is-longer-than-the-specified-maximum"  # transformers warns once per tokenizer


@pytest.fixture
def stderr(monkeypatch, caplog):
    """Where the routed loggers' records would be printed: transformers' own stderr handler (its stream
    swapped for a buffer) and, with propagation on, the root logger's handlers (caplog's among them).
    Yields a function returning everything that reached either."""
    buf = io.StringIO()
    for name in ("transformers", "llm_widgets"):
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler):
                monkeypatch.setattr(handler, "stream", buf)
        monkeypatch.setattr(logger, "propagate", True)  # so root's handlers would see them too
    caplog.set_level(logging.WARNING)
    return lambda: buf.getvalue() + "\n".join(r.getMessage() for r in caplog.records)


def long_text(word: str) -> str:
    return " ".join([word] * 600)  # 600 words, 602 tokens with [CLS] and [SEP]: over MiniLM's 512


def test_minilm_warns_at_all(minilm, stderr):
    """The premise: without a view, tokenizing the long text writes transformers' warning to stderr."""
    minilm.tokenizer.deprecation_warnings.pop(SEQ_KEY, None)
    assert minilm.tokenizer.model_max_length == 512
    minilm.tokenizer(long_text("plain"))
    assert TOO_LONG in stderr()


def test_a_truncated_input_is_said_once_by_our_own_notice(minilm, stderr):
    """Counting a too-long text's tokens no longer makes transformers warn of "indexing errors" (the
    input is truncated, or refused with our own error, next): the view's notice says it, once."""
    minilm.tokenizer.deprecation_warnings.pop(SEQ_KEY, None)
    view = lw.AttentionView(minilm, long_text("apple"), truncate=True, background=False).wait()
    assert view.notice.startswith("Input truncated from 602 to 512 tokens")
    assert TOO_LONG not in view.notice and TOO_LONG not in stderr()


LINE = "transformers warning: a library warning raised while the view computes"


@pytest.fixture
def warns_while_encoding(monkeypatch):
    """Session.encode logs a transformers warning first (as a library does on some inputs)."""
    encode = lw.Session.encode

    def noisy(self, *args, **kwargs):
        logging.getLogger("transformers.tokenization_utils_base").warning(LINE.split(": ", 1)[1])
        return encode(self, *args, **kwargs)

    monkeypatch.setattr(lw.Session, "encode", noisy)


def test_a_library_record_goes_to_the_notice_not_on_stderr(minilm, stderr, warns_while_encoding):
    view = lw.AttentionView(minilm, long_text("cherry"), truncate=True, background=False).wait()
    assert view.notice.startswith("Input truncated from 602 to 512 tokens")  # the view's own notice stays
    assert view.notice.count(LINE) == 1
    assert LINE.split(": ", 1)[1] not in stderr()
    view.notice = "something the view says later"  # a view rewriting its notice keeps the warning
    assert view.notice == f"something the view says later {LINE}"


def test_the_explorer_shows_the_line_once(minilm, stderr, warns_while_encoding):
    ex = lw.Explorer(minilm, long_text("pear"), truncate=True).wait()
    assert ex.view_names  # some panels were built on the long text
    assert ex.notice.count(LINE) == 1
    assert all(LINE not in v.notice for v in ex.views)  # the Explorer took it, not also its panels
    assert LINE.split(": ", 1)[1] not in stderr()


def test_a_background_workers_record_goes_to_the_notice(minilm, monkeypatch, stderr):
    scan = neuron_view.neuron_corpus
    threads = []

    def noisy(*args, **kwargs):  # the corpus scan, in the view's background thread
        threads.append(threading.current_thread())
        logging.getLogger("llm_widgets.corpus").warning("corpus scan: 2 texts were cut\nsecond line")
        logging.getLogger("llm_widgets.corpus").info("an info record is not a warning")
        return scan(*args, **kwargs)

    monkeypatch.setattr(neuron_view, "neuron_corpus", noisy)
    view = lw.NeuronView(minilm, "the cat sat", corpus=["a dog ran", "the cat sat"], background=True).wait()
    assert threads and threads[0] is not threading.main_thread()
    assert view.corpus is not None and view.error == ""
    assert view.notice == "llm_widgets warning: corpus scan: 2 texts were cut"
    assert "corpus scan" not in stderr()


def test_records_of_other_threads_reach_stderr(minilm, stderr):
    minilm.tokenizer.deprecation_warnings.pop(SEQ_KEY, None)
    view = lw.AttentionView(minilm, "short text", background=False)

    def elsewhere():
        logging.getLogger("transformers.someone").warning("someone else's record")
        minilm.tokenizer(long_text("plum"))  # transformers' own warning, on a thread no view owns

    other = threading.Thread(target=elsewhere)
    other.start()
    other.join()
    logging.getLogger("llm_widgets").warning("the main thread's record, after the build")
    assert view.notice == ""
    out = stderr()
    assert "someone else's record" in out and TOO_LONG in out
    assert "the main thread's record, after the build" in out


def test_held_records_of_unknown_threads_are_shown_when_the_build_ends(stderr):
    """A record from a thread no route knows, raised while a route builds, is held, then shown as usual."""
    taken: list[str] = []
    route = WarningRoute(lambda th: False, taken.append)
    with route.building():
        logging.getLogger("transformers").warning("from the builder")
        other = threading.Thread(target=lambda: logging.getLogger("transformers").warning("from elsewhere"))
        other.start()
        other.join()
        assert "from elsewhere" not in stderr()  # held while the route builds
    assert taken == ["transformers warning: from the builder"]
    assert "from elsewhere" in stderr() and "from the builder" not in stderr()
    del route


def test_warnings_and_records_share_the_route(minilm, monkeypatch):
    """warnings.warn in a view's construction goes to the same notice (one mechanism)."""
    from llm_widgets.widgets import attention

    result = attention.attention_result

    def noisy(*args, **kwargs):
        warnings.warn("a library's warning", UserWarning, stacklevel=1)
        return result(*args, **kwargs)

    monkeypatch.setattr(attention, "attention_result", noisy)
    view = lw.AttentionView(minilm, "a cat", background=False)
    assert view.notice == "UserWarning: a library's warning"


def test_record_line():
    rec = logging.LogRecord("transformers.tokenization_utils_base", logging.WARNING, __file__, 1,
                            "length %d > %d\nmore", (600, 512), None)
    assert record_line(rec) == "transformers warning: length 600 > 512"
    rec.msg, rec.args = "   ", None
    assert record_line(rec) == ""
