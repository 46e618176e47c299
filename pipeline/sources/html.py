"""HTML to plain text: enough for mail bodies and chat bubbles, linear in the input, never raises.

libxml2's HTML parser (lxml) reads the markup, as browsers and mail readers recover from broken markup; the
stdlib's ``html.parser`` is quadratic on unterminated constructs (256 KB of ``<!`` took 2 s, of ``<a `` minutes:
CVE-2025-6069, fixed only in newer Pythons), which a hostile mail body or chat bubble would exploit.

A quoted message (``<blockquote>``: Thunderbird's and Gmail's replies) is written as a plain-text reply quotes it,
its lines prefixed ``> ``, so the history under a reply is told apart as in plain-text mail (``replies``). A table
row of two cells is written ``Label: value``, as a form notification's table (WPForms, Jotform) means it.

Links keep their target, as a mail reader's plain-text view writes them (``text <https://...>``): the person's
text is what the spam rules count links in, and an ``href`` hidden behind "click here" is a link all the same.

What the reader does not see is not read: spam hides words there for the filters (hash-busters, a newsletter's or a
dictionary's words against Bayes filters), and the person never wrote them to anyone. An element hidden by its
attributes or inline style (``_hidden``) is passed over whole; text coloured like what is behind it or in a font too
small to read is left out where it stands (``_Looks``: a child may show again what its parent hid, as MJML's
``font-size:0px`` columns do); characters drawn as nothing are taken out of words (``without_invisible``). Only
inline styles and attributes are read, never a stylesheet's rules: where one may set a background, no colour is
taken to hide text. Words cut by comments or empty tags (``V<!-- x -->iagra``, ``Vi<b></b>agra``) and character
references (``&#86;iagra``) come out whole as libxml2 reads them.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import NamedTuple

from lxml import etree
from lxml import html as lxml_html

_BLOCK = frozenset(
    {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "hr"}
)
_CELLS = frozenset({"td", "th"})
_VOID = frozenset({"br", "hr"})  # one line break, not one per start and end
_SKIP = frozenset({"script", "style", "head", "title", "noscript", "template"})
_WEB_LINK = re.compile(r"(?:https?://|www\.)\S", re.IGNORECASE)


class Shown(NamedTuple):
    """An HTML body as its reader sees it: the visible text, and whether words the reader does not see were left
    out (a fact for the spam side; newsletters hide their preview line too, so it is no verdict)."""

    text: str
    hid_words: bool


def html_to_text(markup: str) -> str:
    """Visible text of an HTML fragment or document (``read_html``)."""
    return read_html(markup).text


def read_html(markup: str) -> Shown:
    """Visible text of an HTML fragment or document; block elements become line breaks, links keep their target;
    what the reader does not see is left out: an element hidden (``_hidden``), text coloured like what is behind
    it or too small to read (``_Looks``), characters drawn as nothing (``without_invisible``)."""
    if not markup.strip():
        return Shown("", False)
    parser = lxml_html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True, no_network=True)
    try:
        root = lxml_html.document_fromstring(markup.encode("utf-8", "replace"), parser=parser)
    except (etree.ParserError, ValueError):  # "Document is empty": markup with nothing a reader would show
        return Shown("", False)
    if any(error.type_name == "ERR_RESOURCE_LIMIT" for error in parser.error_log):
        return Shown(without_invisible(_stripped(markup)), False)  # deeper than libxml2 follows (256): all the text
    looks = _Looks(root) if _sets_looks(markup, root) else None
    parts: list[str] = []
    anchors: list[tuple[str | None, int, int]] = []  # (web link target, where its text starts, words hidden before)
    quotes: list[int] = []  # where each open blockquote's text starts in parts
    rows: list[tuple[int, list[int]]] = []  # each open table row: where it starts, where each of its cells does
    hidden_root: etree._Element | None = None  # the hidden element whose subtree is being passed over
    hid = 0  # texts with words left out
    for event, element in etree.iterwalk(root, events=("start", "end")):
        if hidden_root is not None:
            if event == "start" or element is not hidden_root:
                continue
            hidden_root = None
        else:
            tag = element.tag.lower() if isinstance(element.tag, str) else ""
            if event == "start":
                if tag in _SKIP:
                    hidden_root = element
                    continue
                if tag and _hidden(element):
                    hidden_root = element
                    hid += _has_words(element)
                    continue
                if looks is not None:
                    looks.enter(element, tag)
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
                    anchors.append((href if _WEB_LINK.match(href) else None, len(parts), hid))
                if element.text:
                    if looks is None or looks.seen() or element.text.isspace():
                        parts.append(element.text)
                    else:
                        parts.append(_spacing(element.text))
                        hid += 1
                continue
            if looks is not None:
                looks.leave()
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
                href, start, hid_before = anchors.pop()
                shown = "".join(parts[start:])
                unseen = hid > hid_before and not shown.strip()  # a link whose every word is hidden is no link seen
                if href and not unseen and href not in shown:
                    parts.append(f" <{href}>")
        if element.tail:  # the tail is the parent's text: seen as the parent is
            if looks is None or looks.seen() or element.tail.isspace():
                parts.append(element.tail)
            else:
                parts.append(_spacing(element.tail))
                hid += 1
    return Shown(without_invisible(_tidy("".join(parts))), hid > 0)


#: What a style that may hide its element holds (lower-cased; ``_NEGATIVE``: an offset off the page): only such a
#: style is read declaration by declaration (substring searches: a case-insensitive pattern cost 2 us a style).
_MAY_HIDE = ("none", "hidden", "opacity")
_NEGATIVE = re.compile(r":\s*-")
#: The declarations ``_hidden`` reads: each name and its value (``!important`` left in the value).
_HIDING_DECLARATION = re.compile(
    r"(?:^|;)\s*(display|visibility|opacity|overflow|(?:max-)?(?:height|width)|position|left|top|text-indent)"
    r"\s*:\s*([^;]*)",
    re.IGNORECASE,
)
#: A length a reader sees nothing in: zero, or one pixel or point (the preheader's ``max-height:1px``).
_NO_LENGTH = re.compile(r"(?:(?:0++(?:\.0*+)?|\.0++)(?:em|rem|%|cm|mm|in)?|0*+1(?:\.0*+)?)(?:px|pt)?", re.IGNORECASE)
#: Far enough off the page's left or top edge that nothing of a line is left on it (``left:-9999px``).
_OFF_PAGE_PX = 500


def _hidden(element: etree._Element) -> bool:
    """Whether a reader shows nothing of the element and all in it: ``hidden``, ``display: none``, ``visibility:
    hidden``, ``opacity: 0``, a box of no height or width whose overflow is hidden (the preheader trick:
    ``max-height:0; overflow:hidden``), an element placed off the page (``position:absolute; left:-9999px``) or its
    text indented off it. Spam hides a newsletter's or a dictionary's words there for the filters (hash-busters,
    Bayes poison); a newsletter its preview line, shown in the inbox list, not in the message.

    Only inline styles and attributes are read: a stylesheet's rules (classes, media queries) are not evaluated."""
    if element.get("hidden") is not None:
        return True
    style = element.get("style")
    if not style:
        return False
    lowered = style.lower()
    if not any(marker in lowered for marker in _MAY_HIDE) and _NEGATIVE.search(lowered) is None:
        return False
    found: dict[str, str] = {}
    for name, value in _HIDING_DECLARATION.findall(style):
        found[name.lower()] = value.lower().replace("!important", "").strip()
    if found.get("display") == "none" or found.get("visibility") in ("hidden", "collapse"):
        return True
    if _zero(found.get("opacity", "1")):
        return True
    clipped = found.get("overflow") in ("hidden", "clip")
    boxes = ("height", "max-height", "width", "max-width")
    if clipped and any(_NO_LENGTH.fullmatch(found.get(name, "auto")) for name in boxes):
        return True
    if found.get("position") in ("absolute", "fixed") and any(_off_page(found.get(name)) for name in ("left", "top")):
        return True
    return _off_page(found.get("text-indent"))


def _zero(number: str) -> bool:
    try:
        return float(number.rstrip("%")) <= 0
    except ValueError:
        return False


def _off_page(length: str | None) -> bool:
    """Whether a length puts a line off the page: at least ``_OFF_PAGE_PX`` pixels (or ems at 16 px) leftwards."""
    if not length or not length.startswith("-"):
        return False
    number = length.rstrip("pxremt ")
    try:
        value = -float(number)
    except ValueError:
        return False
    return value * (16 if length.endswith("em") else 1) >= _OFF_PAGE_PX


def _spacing(text: str) -> str:
    """What is left of unseen text: a space where it had one at an edge, so the words around it stay apart (the
    reader sees a gap there) and a word it cuts in two (``Vi<font color=white>x</font>agra``) is whole again."""
    return " " if text[:1].isspace() or text[-1:].isspace() else ""


def _has_words(element: etree._Element) -> bool:
    """Whether a hidden element holds words (not the blank spacers layouts hide)."""
    return any(not text.isspace() for text in element.itertext())


#: What markup that sets a colour or a font size holds (``bgcolor``, ``color:``, ``background:``, ``font-size:``).
_LOOK_MARKERS = ("colo", "background", "font-size")


def _sets_looks(markup: str, root: etree._Element) -> bool:
    """Whether the markup may set a colour or a font size: ``read_html`` follows them only then, so most HTML pays
    a few substring searches for them (a case-insensitive regex took ~0.1 us a character)."""
    lowered = markup.lower()
    if any(marker in lowered for marker in _LOOK_MARKERS):
        return True
    body = root.find("body")
    return body is not None and (body.get("text") is not None or body.get("link") is not None)


#: The declarations of an inline style ``_Looks`` reads.
_LOOK_DECLARATION = re.compile(r"(?:^|;)\s*(color|background(?:-color|-image)?|font-size)\s*:\s*([^;]*)", re.I)

_RGB = tuple[int, int, int]
_BLACK: _RGB = (0, 0, 0)
_WHITE: _RGB = (255, 255, 255)
_LINK_BLUE: _RGB = (0, 0, 238)  # an unvisited link's colour in every reader
_CLEAR: _RGB = (-1, -1, -1)  # "transparent" text: drawn as nothing
#: How far apart (in each of red, green and blue, 0-255) a text's colour may be from what is behind it and still be
#: the same to the eye: spam writes ``#ffffff``, ``#fefefe`` or ``#fafafa`` on white; a light grey (``#eeeeee``) is
#: faint but legible and stays.
_ALIKE = 12


class _Looks:
    """The colour of text and of what is behind it, and whether its font is too small to read, through the open
    elements, as their inline styles and attributes set them (``<font color>``, ``bgcolor``, ``style``).

    What is behind is unknown (no colour hides text there) under a background image, or where a stylesheet that
    sets backgrounds may reach (``<td class=...>``, a ``bgcolor`` it may override): stylesheets are not evaluated,
    so a newsletter's white text on a class's dark background stays. Unset, text is black on white."""

    def __init__(self, root: etree._Element) -> None:
        sheet = any("background" in (style.text or "").lower() for style in root.iter("style"))
        self.sheet = sheet  # a stylesheet sets backgrounds: only an inline style's background is certain
        self.link: _RGB | None = _LINK_BLUE
        # per open element: (text colour, colour behind it, font too small to read, text seen), None for unknown
        self.stack: list[_Look] = [(_BLACK, None if sheet else _WHITE, False, True)]
        self.memo: dict[tuple[object, ...], _Look] = {}  # a newsletter repeats its cells: each is worked out once

    def enter(self, element: etree._Element, tag: str) -> None:
        look = self.stack[-1]
        attributes = element.items()
        if attributes or tag == "a":
            key = (look, tag, *attributes)
            found = self.memo.get(key)
            if found is None:
                found = self._entered(look, tag, dict(attributes))
                if tag != "body" and len(self.memo) < _MEMO:  # <body> sets the link colour: never from the memo
                    self.memo[key] = found
            look = found
        self.stack.append(look)

    def _entered(self, look: _Look, tag: str, attributes: dict[str, str]) -> _Look:
        color, backdrop, tiny, _seen = look
        if tag == "a" and "href" in attributes:
            color = self.link  # a link is drawn in the link colour, not in the text's around it
        if tag == "body":
            color = _colour(attributes.get("text"), legacy=True, default=color)
            self.link = _colour(attributes.get("link"), legacy=True, default=self.link)
        elif tag == "font":
            color = _colour(attributes.get("color"), legacy=True, default=color)
            tiny = tiny and "size" not in attributes  # <font size=1> is small, never unreadable
        if (bgcolor := attributes.get("bgcolor")) is not None:
            backdrop = None if self.sheet else _colour(bgcolor, legacy=True, default=backdrop)
        if attributes.get("background") or (self.sheet and attributes.get("class")):
            backdrop = None  # an image, or what a stylesheet's rule for the class sets
        if style := attributes.get("style"):
            for name, value in _declarations(style):
                if name == "color":
                    color = _colour(value, default=color)
                elif name == "font-size":
                    tiny = _tiny(value, tiny)
                else:
                    backdrop = _backdrop(name, value, backdrop)
        if (color, backdrop, tiny) == look[:3]:
            return look
        return color, backdrop, tiny, _seen_as(color, backdrop, tiny)

    def leave(self) -> None:
        if len(self.stack) > 1:
            self.stack.pop()

    def seen(self) -> bool:
        """Whether the reader sees text here: not too small, not the colour of what is behind it."""
        return self.stack[-1][3]


_Look = tuple["_RGB | None", "_RGB | None", bool, bool]
#: Elements whose look one document remembers (``_Looks.memo``), however many it has.
_MEMO = 4096


def _seen_as(color: _RGB | None, backdrop: _RGB | None, tiny: bool) -> bool:
    if tiny or color == _CLEAR:
        return False
    if color is None or backdrop is None:
        return True
    red, green, blue = color
    behind_red, behind_green, behind_blue = backdrop
    return abs(red - behind_red) > _ALIKE or abs(green - behind_green) > _ALIKE or abs(blue - behind_blue) > _ALIKE


#: Styles longer than this are read each time, not remembered (``_declarations``).
_CACHED_STYLE = 400


def _declarations(style: str) -> tuple[tuple[str, str], ...]:
    """The declarations of an inline style ``_Looks`` reads, names and values lower-cased, ``!important`` dropped;
    remembered, as a newsletter repeats its styles on every cell."""
    return _read_declarations(style) if len(style) <= _CACHED_STYLE else _read_declarations.__wrapped__(style)


@lru_cache(maxsize=1024)
def _read_declarations(style: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        (name.lower(), value.lower().replace("!important", "").strip())
        for name, value in _LOOK_DECLARATION.findall(style)
    )


#: A font size nobody reads: zero in any unit, or at most one pixel or point.
_TINY = re.compile(r"(?:0++(?:\.0*+)?|\.0++)(?:[a-z]++|%)?|0*+(?:\.\d++|1(?:\.0*+)?)(?:px|pt)", re.IGNORECASE)


def _tiny(value: str, inherited: bool) -> bool:
    """Whether a ``font-size`` makes text unreadable; a relative size (``em``, ``%``) keeps its parent's verdict."""
    if _TINY.fullmatch(value):
        return True
    return inherited if value.endswith(("em", "%")) or value in ("inherit", "smaller", "larger") else False


def _backdrop(name: str, value: str, current: _RGB | None) -> _RGB | None:
    """What is behind text after a ``background``, ``background-color`` or ``background-image`` declaration:
    unknown under an image or a gradient, unchanged when transparent."""
    if name == "background-image":
        return current if value == "none" else None
    if "url(" in value or "gradient" in value or "var(" in value:
        return None
    for token in value.split() if name == "background" else [value]:
        found = _colour(token, default=None)
        if found == _CLEAR:
            return current
        if found is not None:
            return found
    return current if value in ("none", "inherit", "initial", "") else None


_NAMED: dict[str, _RGB] = {
    "white": _WHITE, "black": _BLACK, "snow": (255, 250, 250), "ivory": (255, 255, 240), "ghostwhite": (248, 248, 255),
    "whitesmoke": (245, 245, 245), "floralwhite": (255, 250, 240), "seashell": (255, 245, 238),
    "mintcream": (245, 255, 250), "azure": (240, 255, 255), "aliceblue": (240, 248, 255), "linen": (250, 240, 230),
    "honeydew": (240, 255, 240), "lavenderblush": (255, 240, 245), "oldlace": (253, 245, 230),
    "silver": (192, 192, 192), "gray": (128, 128, 128), "grey": (128, 128, 128), "red": (255, 0, 0),
    "maroon": (128, 0, 0), "yellow": (255, 255, 0), "olive": (128, 128, 0), "lime": (0, 255, 0),
    "green": (0, 128, 0), "aqua": (0, 255, 255), "cyan": (0, 255, 255), "teal": (0, 128, 128),
    "blue": (0, 0, 255), "navy": (0, 0, 128), "fuchsia": (255, 0, 255), "magenta": (255, 0, 255),
    "purple": (128, 0, 128), "orange": (255, 165, 0), "transparent": _CLEAR,
}  # fmt: skip
_HEX = re.compile(r"#?([0-9a-f]{3,8})")
_RGB_FUNCTION = re.compile(r"rgba?\(\s*([\d.]+%?)[\s,]+([\d.]+%?)[\s,]+([\d.]+%?)\s*(?:[,/]\s*([\d.]+%?)\s*)?\)")


def _colour(value: str | None, *, legacy: bool = False, default: _RGB | None) -> _RGB | None:
    """A colour as readers draw it: ``#fff``, ``#ffffff``, ``rgb(255, 255, 255)``, a name; in an attribute
    (``legacy``: ``<font color=ffffff>``) six hex digits without ``#`` too. ``_CLEAR`` when transparent (alpha 0);
    None (unknown) for what this does not read; ``default`` when there is no value."""
    if value is None or not value.strip():
        return default
    return _read_colour(value, legacy) if len(value) <= _CACHED_STYLE else _read_colour.__wrapped__(value, legacy)


@lru_cache(maxsize=1024)
def _read_colour(value: str, legacy: bool) -> _RGB | None:
    text = value.strip().lower()
    if text in _NAMED:
        return _NAMED[text]
    if (hexed := _HEX.fullmatch(text)) is not None and (text.startswith("#") or (legacy and len(text) == 6)):
        digits = hexed.group(1)
        if len(digits) in (3, 4):
            digits = "".join(c * 2 for c in digits)
        if len(digits) not in (6, 8):
            return None
        if digits[6:] == "00":
            return _CLEAR
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    if (function := _RGB_FUNCTION.fullmatch(text)) is not None:
        red, green, blue, alpha = function.groups()
        if alpha is not None and _channel(alpha, 1.0) == 0:
            return _CLEAR
        return _channel(red, 255.0), _channel(green, 255.0), _channel(blue, 255.0)
    return None


def _channel(text: str, scale: float) -> int:
    number = float(text[:-1]) * scale / 100 if text.endswith("%") else float(text)
    return round(min(max(number, 0.0), 255.0))


#: Characters drawn as nothing, that spam puts inside words the filters look for ("Vi&shy;agra", "Cia&#8203;lis"):
#: the soft hyphen, zero-width space, word joiner and invisible operators, the combining grapheme joiner, the
#: Mongolian vowel separator, the byte-order mark. (Zero-width joiners, which shape Arabic, Indic and emoji, stay.)
_INVISIBLE = re.compile("[\xad\u034f\u180e\u200b\u2060-\u2064\ufeff]")


def without_invisible(text: str) -> str:
    """The text without the characters drawn as nothing (``_INVISIBLE``); ASCII text is returned as it is."""
    return text if text.isascii() else _INVISIBLE.sub("", text)


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
