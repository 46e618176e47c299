"""HTML to plain text with the stdlib parser: enough for mail bodies and chat bubbles, never raises.

Links keep their target, as a mail reader's plain-text view writes them (``text <https://...>``): the person's
text is what the spam rules count links in, and an ``href`` hidden behind "click here" is a link all the same.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK = frozenset(
    {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "hr"}
)
_SKIP = frozenset({"script", "style", "head", "title", "noscript", "template"})
_WEB_LINK = re.compile(r"(?:https?://|www\.)\S", re.IGNORECASE)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0
        self._anchors: list[tuple[str | None, int]] = []  # (web link target, where its text starts in parts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skipping += 1
        elif tag in _BLOCK:
            self.parts.append("\n")
        elif tag == "a":
            href = next((v.strip() for k, v in attrs if k == "href" and v), None)
            self._anchors.append((href if href and _WEB_LINK.match(href) else None, len(self.parts)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")
        elif tag == "a" and self._anchors:
            href, start = self._anchors.pop()
            if href and not self._skipping and href not in "".join(self.parts[start:]):
                self.parts.append(f" <{href}>")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML fragment or document; block elements become line breaks."""
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # HTMLParser is lenient, but a pathological document must not fail the whole message
        return re.sub(r"<[^>]*>", " ", markup)
    text = "".join(parser.parts).replace("\xa0", " ")
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
