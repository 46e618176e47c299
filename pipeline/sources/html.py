"""HTML to plain text: enough for mail bodies and chat bubbles, linear in the input, never raises.

libxml2's HTML parser (lxml) reads the markup, as browsers and mail readers recover from broken markup; the
stdlib's ``html.parser`` is quadratic on unterminated constructs (256 KB of ``<!`` took 2 s, of ``<a `` minutes:
CVE-2025-6069, fixed only in newer Pythons), which a hostile mail body or chat bubble would exploit.

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
_VOID = frozenset({"br", "hr"})  # one line break, not one per start and end
_SKIP = frozenset({"script", "style", "head", "title", "noscript", "template"})
_WEB_LINK = re.compile(r"(?:https?://|www\.)\S", re.IGNORECASE)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML fragment or document; block elements become line breaks, links keep their target."""
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
    skipping = 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        tag = element.tag.lower() if isinstance(element.tag, str) else ""
        if event == "start":
            skipping += tag in _SKIP
            if skipping:
                continue
            if tag in _BLOCK:
                parts.append("\n")
            elif tag == "a":
                href = (element.get("href") or "").strip()
                anchors.append((href if _WEB_LINK.match(href) else None, len(parts)))
            if element.text:
                parts.append(element.text)
            continue
        if tag in _SKIP:
            skipping -= 1
        elif not skipping:
            if tag in _BLOCK and tag not in _VOID:
                parts.append("\n")
            elif tag == "a" and anchors:
                href, start = anchors.pop()
                if href and href not in "".join(parts[start:]):
                    parts.append(f" <{href}>")
        if not skipping and element.tail:
            parts.append(element.tail)
    return _tidy("".join(parts))


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
