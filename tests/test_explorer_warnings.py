"""Warnings of the Explorer's own work reach its notice (issue 31, item 10): those raised while the panels
are built, and those a panel's background work raises on its worker thread; warnings of other threads
are left alone (they go to stderr as usual)."""
from __future__ import annotations

import threading
import warnings

import llm_widgets as lw
import llm_widgets.widgets.neuron as neuron_view
from llm_widgets.widgets.routed_warnings import WarningRoute, warning_line


def test_a_panels_background_warning_goes_to_the_notice_not_stderr(tiny_gpt2, monkeypatch, recwarn):
    scan = neuron_view.neuron_corpus
    threads = []

    def noisy(*args, **kwargs):  # the corpus scan of a NeuronView panel, in its background thread
        threads.append(threading.current_thread())
        warnings.warn("corpus scan: 3 texts were cut to the context", RuntimeWarning, stacklevel=1)
        return scan(*args, **kwargs)

    monkeypatch.setattr(neuron_view, "neuron_corpus", noisy)
    ex = lw.Explorer(tiny_gpt2, "the cat sat on the mat", panels=("neuron",),
                     options={"neuron": {"corpus": ["a dog ran", "the cat sat"], "background": True}})
    ex.wait()
    assert threads and threads[0] is not threading.main_thread()  # it did run in the background
    assert ex.panels["neuron"].corpus is not None and ex.panels["neuron"].error == ""
    line = "RuntimeWarning: corpus scan: 3 texts were cut to the context"
    assert ex.notice == line
    assert not [w for w in recwarn if "corpus scan" in str(w.message)]  # nothing left for stderr


def test_warnings_of_other_threads_are_not_taken(tiny_gpt2, recwarn):
    ex = lw.Explorer(tiny_gpt2, "the cat sat", panels=("neuron",))

    def elsewhere():
        warnings.warn("someone else's warning", UserWarning, stacklevel=1)

    t = threading.Thread(target=elsewhere)
    t.start()
    t.join()
    warnings.warn("the main thread's own warning, after the build", UserWarning, stacklevel=1)
    assert ex.notice == ""
    assert {str(w.message) for w in recwarn} >= {"someone else's warning", "the main thread's own warning, after the build"}


def test_a_route_takes_its_threads_and_holds_unknown_ones_while_building(recwarn):
    taken: list[str] = []
    mine: set = set()
    route = WarningRoute(lambda th: th in mine, taken.append)
    started = threading.Event()

    def worker(name):
        started.wait()
        warnings.warn(f"from {name}", UserWarning, stacklevel=1)

    ours, theirs = threading.Thread(target=worker, args=("ours",)), threading.Thread(target=worker, args=("theirs",))
    with route.building():
        warnings.warn("while building", UserWarning, stacklevel=1)  # the building thread is owned
        ours.start(), theirs.start()
        started.set()
        ours.join(), theirs.join()  # they warned before anyone knew whose they were: held
        assert taken == ["UserWarning: while building"]
        mine.add(ours)  # now known (as a panel's worker becomes known once its view is built)
    assert taken == ["UserWarning: while building", "UserWarning: from ours"]
    assert [str(w.message) for w in recwarn] == ["from theirs"]
    del route


def test_warning_line():
    assert warning_line("first line\nsecond", UserWarning) == "UserWarning: first line"
    assert warning_line("  ", UserWarning) == ""
