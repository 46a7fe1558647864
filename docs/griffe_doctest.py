"""griffe extension for the API pages: the docstrings' `>>>` example lines become Python code blocks.

The docstrings are prose with doctest-style examples (`>>> AttentionView(session, "...")`); Markdown
would read those lines as three nested quotes. Only the rendering changes, never the docstring.
"""
import griffe


def _fence(text: str) -> str:
    out, block = [], False
    for line in text.split("\n"):
        example = line.lstrip().startswith(">>>") or (block and line.lstrip().startswith("..."))
        if example and not block:
            out.append("```pycon")
            block = True
        elif block and not example:
            out.append("```")
            block = False
        out.append(line.strip() if example else line)
    if block:
        out.append("```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = _fence(obj.docstring.value)
