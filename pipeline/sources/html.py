"""HTML to plain text: enough for mail bodies and chat bubbles, linear in the input, never raises.

libxml2's HTML parser (lxml) reads the markup, as browsers and mail readers recover from broken markup; the
stdlib's ``html.parser`` is quadratic on unterminated constructs (256 KB of ``<!`` took 2 s, of ``<a `` minutes:
CVE-2025-6069, fixed only in newer Pythons), which a hostile mail body or chat bubble would exploit.

A quoted message (``<blockquote>``: Thunderbird's and Gmail's replies) is written as a plain-text reply quotes it,
its lines prefixed ``> ``, so the history under a reply is told apart as in plain-text mail (``replies``). A table
row of two cells is written ``Label: value``, as a form notification's table (WPForms, Jotform) means it.

Links keep their target, as a mail reader's plain-text view writes them (``text <https://...>``): the person's
text is what the spam rules count links in, and an ``href`` hidden behind "click here" is a link all the same.
"""

from __future__ import annotations

import html
import re

from lxml import etree
from lxml import html as lxml_html

_BLOCK = frozenset(
    {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "hr"}
)
_CELLS = frozenset({"td", "th"})
_VOID = frozenset({"br", "hr"})  # one line break, not one per start and end
_SKIP = frozenset({"script", "style", "head", "title", "noscript", "template"})
_WEB_LINK = re.compile(r"(?:https?://|www\.)\S", re.IGNORECASE)
#: A style that hides its element: what no reader shows (a spammer's words for the filters, never for the reader).
_HIDDEN_STYLE = re.compile(
    r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*hidden)\s*(?:!important\s*)?(?:;|$)", re.I
)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML fragment or document; block elements become line breaks, links keep their target;
    what the reader hides (``_hidden``) is left out."""
    if not markup.strip():
        return ""
    parser = lxml_html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True, no_network=True)
    try:
        root = lxml_html.document_fromstring(markup.encode("utf-8", "replace"), parser=parser)
    except (etree.ParserError, ValueError):  # "Document is empty": markup with nothing a reader would show
        return ""
    if any(error.type_name == "ERR_RESOURCE_LIMIT" for error in parser.error_log):
        return _stripped(markup)  # nested deeper than libxml2 follows (256): it stops there; keep all the text
    parts: list[str] = []
    anchors: list[tuple[str | None, int]] = []  # (web link target, where its text starts in parts)
    quotes: list[int] = []  # where each open blockquote's text starts in parts
    rows: list[tuple[int, list[int]]] = []  # each open table row: where it starts, where each of its cells does
    skipping = 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        tag = element.tag.lower() if isinstance(element.tag, str) else ""
        skipped = tag in _SKIP or (bool(tag) and _hidden(element))
        if event == "start":
            skipping += skipped
            if skipping:
                continue
            if tag in _BLOCK:
                parts.append("\n")
            if tag == "blockquote":
                quotes.append(len(parts))
            elif tag == "tr":
                rows.append((len(parts), []))
            elif tag in _CELLS and rows:
                rows[-1][1].append(len(parts))
            elif tag == "a":
                href = (element.get("href") or "").strip()
                anchors.append((href if _WEB_LINK.match(href) else None, len(parts)))
            if element.text:
                parts.append(element.text)
            continue
        if skipped:
            skipping -= 1
        elif not skipping:
            if tag == "blockquote" and quotes:
                start = quotes.pop()
                parts[start:] = [_quoted("".join(parts[start:]))]
            elif tag == "tr" and rows:
                start, cells = rows.pop()
                if cells:  # a row without cells (MSHTML's spacer rows) keeps what text it has as it is
                    parts[start:] = [
                        _row(["".join(parts[a:b]) for a, b in zip(cells, [*cells[1:], len(parts)], strict=True)])
                    ]
            if tag in _BLOCK and tag not in _VOID:
                parts.append("\n")
            elif tag == "a" and anchors:
                href, start = anchors.pop()
                if href and href not in "".join(parts[start:]):
                    parts.append(f" <{href}>")
        if not skipping and element.tail:
            parts.append(element.tail)
    return _tidy("".join(parts))


def _hidden(element: etree._Element) -> bool:
    """Whether a reader hides the element (``hidden``, ``display: none``, ``visibility: hidden``): text hidden in
    spam to feed words to the filters (a ham newsletter's, a dictionary's) that the reader never sees."""
    if element.get("hidden") is not None:
        return True
    style = element.get("style")
    return bool(style) and _HIDDEN_STYLE.search(style) is not None


def _quoted(text: str) -> str:
    """A blockquote's text as plain-text mail quotes it: each line that says something prefixed ``> ``."""
    return "\n".join(f"> {line.strip()}" if line.strip() else "" for line in text.split("\n"))


#: The longest first cell read as the label of the second (``_row``); longer, the row is layout, not a field.
_LABEL_CHARS = 40


def _row(cells: list[str]) -> str:
    """A table row's text: two cells as ``Label: value`` when the first is a short label, else each cell apart."""
    texts = [text.strip() for text in cells if text.strip()]
    if len(cells) == 2 and len(texts) == 2 and len(texts[0]) <= _LABEL_CHARS and "\n" not in texts[0]:
        label = " ".join(texts[0].split())
        return f"{label} {texts[1]}" if label.endswith((":", "\uff1a")) else f"{label}: {texts[1]}"
    return ("\n" if any("\n" in text for text in texts) else " ").join(texts)


def _stripped(markup: str) -> str:
    """Every tag dropped (a link's target kept), entities decoded: markup too deep to parse, in linear time."""
    return _tidy(html.unescape(_TAG.sub(_tag_text, markup)))


_TAG = re.compile(r"<[^>]*>")
_ANCHOR_HREF = re.compile(r"""<a\s[^>]*?\bhref\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)


def _tag_text(tag: re.Match[str]) -> str:
    anchor = _ANCHOR_HREF.match(tag.group(0))
    href = anchor.group(1) if anchor else ""
    return f" {href} " if _WEB_LINK.match(href) else " "


def _tidy(text: str) -> str:
    text = text.replace("\xa0", " ")
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
