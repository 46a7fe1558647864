"""The security and privacy sections of the printable audit report (plain HTML, no script, every
string escaped): successful adversarial examples and the attack's two search orders, then the
memorization strings and canary exposures. `with_security_sections(html, result)` adds them to the
report written by llm_widgets.reports.report_html, before </body>."""
from __future__ import annotations

import html
import math


def _cell(v, digits: int = 3) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.{digits}f}"
    return html.escape(str(v))


def _table(header: list[str], rows: list[list[str]], testid: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table data-testid="{testid}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _marked(a: str, b: str) -> str:
    """Text b with the words that differ from a in <mark> (each word escaped)."""
    from .substitutions import substitution_diff

    return " ".join(f"<mark>{html.escape(w)}</mark>" if changed else html.escape(w)
                    for w, changed in substitution_diff(a, b)[1])


def attack_section(attack, max_examples: int = 20) -> str:
    rows = [[_cell(r["order"]), f"{r['successes']}/{r['texts']}",
             f"{_cell(r['success_rate'])} [{_cell(r['success_rate_lo'])}, {_cell(r['success_rate_hi'])}]",
             _cell(r["mean_words_changed"], 2), _cell(r["queries_per_success"], 1), _cell(r["mean_queries"], 1)]
            for r in attack.summary]
    names = attack.class_names or []
    label = lambda k: _cell(names[k] if k < len(names) else k)  # noqa: E731
    run = attack.main
    ex = [[html.escape(attack.texts[i]), _marked(attack.texts[i], run.adversarial[i]),
           f"{label(int(run.pred_o[i]))} \u2192 {label(int(run.pred_a[i]))}", str(int(run.words_changed[i])),
           str(int(run.queries[i]))] for i in attack.successes()[:max_examples]]
    b = attack.budget
    return "\n".join([
        "<h2>Adversarial robustness: word-substitution attack</h2>",
        f"<p>Words ranked by {html.escape(attack.ranking)}; substitutions: {html.escape(', '.join(b['kinds']))}; "
        f"budget {b['max_words']} changed words, {b['max_queries']} model queries per text. The random order is "
        "the baseline.</p>",
        _table(["word order", "flipped", "success rate [95% CI]", "mean words changed", "queries per success",
                "mean queries"], rows, "attack-summary"),
        "<h3>Successful adversarial examples (changed words marked)</h3>",
        _table(["original", "adversarial", "class", "words changed", "queries"], ex, "attack-examples")])


def memorization_section(m) -> str:
    parts = ["<h2>Memorization and privacy leakage</h2>"]
    if m.strings:
        rows = [[html.escape(r["string"]), _cell(r["exact"]), f"{r['matched']}/{r['rest_tokens']}",
                 html.escape(r["continuation"]), _cell(r["loglik"], 2), _cell(r["percentile"], 2)] for r in m.table()]
        parts += [f"<p>Greedy decoding from the first {m.prefix_tokens} tokens; likelihood percentile against "
                  f"{m.n_lookalikes} {html.escape(m.lookalike)}d look-alikes.</p>",
                  _table(["string", "extracted", "tokens reproduced", "greedy continuation", "log-likelihood",
                          "percentile"], rows, "memorization-strings")]
    if m.canaries:
        rows = [[html.escape(c["canary"]), html.escape(c["secret"]), str(c["rank"]), str(c["candidates"]),
                 _cell(c["exposure"], 2), _cell(c["max_exposure"], 2)] for c in m.canaries]
        parts += ["<p>Exposure (Carlini et al. 2019) = log2 |candidates| \u2212 log2 rank of the canary among every "
                  "secret of its form, by the model's likelihood: near the maximum when memorized, about 1.4 bits "
                  "by chance.</p>",
                  _table(["canary", "secret", "rank", "candidates", "exposure (bits)", "max (bits)"], rows,
                         "memorization-canaries")]
    return "\n".join(parts)


def with_security_sections(page: str, result) -> str:
    """The report page with the attack and memorization sections of `result` (where present)."""
    parts = []
    if getattr(result, "attack", None) is not None:
        parts.append(attack_section(result.attack))
    if getattr(result, "memorization", None) is not None:
        parts.append(memorization_section(result.memorization))
    if not parts:
        return page
    i = page.rindex("</body>")
    return page[:i] + "\n".join(parts) + "\n" + page[i:]
