"""Griffe extension for the API pages: the project's reST-flavoured docstrings as Markdown.

The code's docstrings use Sphinx roles (``:class:`~benchmark.method.Method```) and doctest
examples (``>>> ...``). Rendered as Markdown the roles would show their markup and the
examples would become nested block quotes, so before rendering each docstring:

- a role becomes inline code (``~a.b.C`` shows ``C``, as Sphinx does);
- a run of doctest lines and their output becomes a ``pycon`` code block.
"""

from __future__ import annotations

import re
from typing import Any

try:
    from griffe import Extension, Object
except ModuleNotFoundError:  # without the docs extra; markdown_docstring still works (tests)
    Extension = Object = object  # type: ignore[assignment,misc]

ROLE = re.compile(r":[\w:.-]+:`(~?)([^`]*)`")


def _role(match: re.Match[str]) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def markdown_docstring(text: str) -> str:
    """``text`` with roles as inline code and doctest runs fenced.

    >>> markdown_docstring("See :func:`~a.b.f`.\\n\\n>>> f(1)\\n2")
    'See `f`.\\n\\n```pycon\\n>>> f(1)\\n2\\n```'
    """
    text = ROLE.sub(_role, text)
    out: list[str] = []
    in_example = False
    for line in text.split("\n"):
        starts = line.lstrip().startswith(">>>")
        if starts and not in_example:
            out.append("```pycon")
            in_example = True
        elif in_example and not line.strip():
            out.append("```")
            in_example = False
        out.append(line)
    if in_example:
        out.append("```")
    return "\n".join(out)


class MarkdownDocstrings(Extension):
    """Rewrite every docstring once the object tree is loaded."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
