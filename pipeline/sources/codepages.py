"""Which legacy code page a payload that is not UTF-8 is in: a spreadsheet saved by Excel in its system's language.

Windows-1252 first (Western Europe's, the most common), kept whenever its words beyond ASCII read as text; else the
code page whose reading is most plausible. charset-normalizer proposes the readings and measures their mess; on a
few short names (a CSV of addresses and numbers whose only non-ASCII text is the names) its pick between the East
Asian code pages is a coin toss, so each reading is also scored by how much of it is the everyday part of its own
code page: the first level of kanji and the kana in Shift_JIS, GB2312's first level in GBK, the KS X 1001 syllables
in Korean, Big5's frequent characters; for an alphabet, letters of the script the code page is for (a Central
European reading of Cyrillic bytes gives words of accented letters only, which no language writes).
"""

from __future__ import annotations

import codecs
import re
import unicodedata

from charset_normalizer import from_bytes
from charset_normalizer.md import mess_ratio

#: The code pages a spreadsheet saves a CSV in besides Windows-1252, by its system's language: Central European,
#: Cyrillic, Greek, Turkish, Hebrew, Arabic, Baltic, Thai, Japanese (Shift_JIS), Chinese (GBK), Korean, Big5.
LEGACY_CODE_PAGES = (
    "cp1250", "cp1251", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp874", "cp932", "gb18030", "cp949", "big5",
)  # fmt: skip

#: Windows-1252 text whose words beyond ASCII have a mess ratio (charset-normalizer's: accents inside words, symbols
#: between letters) below this reads as what it is; Western words measure 0, another code page's bytes read as
#: Windows-1252 0.25-1.1 (a single Greek name the least).
PLAIN_TEXT_MESS = 0.2

#: What separates the words of a payload read as text: white space and a CSV's or a vCard's delimiters.
_WORD_BREAKS = re.compile(r"[\s,;:|\"']+")

#: The lead bytes of a double-byte code page's everyday characters (symbols, kana, the frequent ideographs, Hangul).
_COMMON_LEADS = {
    "cp932": (range(0x81, 0x85), range(0x88, 0x99)),  # symbols and kana; JIS level 1 kanji
    "gb18030": (range(0xA1, 0xAA), range(0xB0, 0xD8)),  # symbols; GB2312 level 1 hanzi
    "cp949": (range(0xA1, 0xAD), range(0xB0, 0xC9)),  # symbols and jamo; KS X 1001 Hangul syllables
    "big5": (range(0xA1, 0xA4), range(0xA4, 0xC7)),  # symbols; the frequent hanzi
}
#: The script an alphabet's code page is for, as Unicode names its letters.
_SCRIPTS = {
    "cp1251": "CYRILLIC",
    "cp1253": "GREEK",
    "cp1255": "HEBREW",
    "cp1256": "ARABIC",
}


def legacy_text(raw: bytes) -> str:
    """``raw`` read in the legacy code page it is most plausibly in (Windows-1252 when that reads as text; its five
    undefined bytes then as Latin-1 control characters); UTF-8 when only its last character is cut short
    (``cut_short_text``)."""
    if (cut := cut_short_text(raw, "utf-8")) is not None:
        return cut
    try:
        western = raw.decode("cp1252")
    except UnicodeDecodeError:
        western = raw.decode("latin-1")
    # measured on the words that are not plain ASCII (a file of addresses and numbers with a few names in another
    # script is mostly ASCII, which would thin out the mess); a stray byte Windows-1252 leaves undefined is no mess
    beyond_ascii = " ".join(w for w in _WORD_BREAKS.split(raw.decode("cp1252", errors="replace")) if not w.isascii())
    if not beyond_ascii:
        return western
    mess = mess_ratio(beyond_ascii, maximum_threshold=1.0)
    if mess < PLAIN_TEXT_MESS:
        return western
    readings = [match for match in from_bytes(raw, cp_isolation=list(LEGACY_CODE_PAGES)) if match.chaos < mess]
    scored = [
        (_everyday_share(str(match), match.encoding), -match.chaos, match.coherence, str(match)) for match in readings
    ]
    if not scored:
        return western
    share, _, _, found = max(scored)
    # another script's text is mostly its everyday letters; a few Western symbols ("10 €; ™ ½") read in another code
    # page are not: those stay Windows-1252
    return found if share >= 0.9 else western


def _everyday_share(text: str, encoding: str) -> float:
    """How much of a reading's text beyond ASCII is the everyday part of its code page (see the module's doc)."""
    beyond = [c for c in text if not c.isascii()]
    if not beyond:
        return 0.0
    if (leads := _COMMON_LEADS.get(encoding)) is not None:
        double = single = 0
        for char in beyond:
            encoded = char.encode(encoding, errors="ignore")
            if len(encoded) == 1:
                single += 1  # Shift_JIS's half-width kana: a furigana column beside names in kanji, never alone
            elif encoded and any(encoded[0] in lead for lead in leads):
                double += 1
        return (double + (single if double else 0)) / len(beyond)
    if encoding == "cp874":
        return _thai_share(text) / len(beyond)
    if (script := _SCRIPTS.get(encoding)) is not None:
        count, previous_is_letter = 0, False
        for char in text:
            letter = unicodedata.name(char, "").startswith(script) and not _is_mark(char)
            if letter or (_is_mark(char) and previous_is_letter):  # a vowel point sits on a letter, never alone
                count += 1
            previous_is_letter = letter or (previous_is_letter and _is_mark(char))
        return count / len(beyond)
    # a Latin alphabet's accented letters sit in words with plain letters ("Wiśniewski"), not in words of their own
    words = _WORD_BREAKS.split(text)
    return sum(len([c for c in w if not c.isascii() and c.isalpha()]) for w in words if _has_ascii_letter(w)) / len(
        beyond
    )


#: Thai's consonants, and the vowels and tone marks written after one (the marks above and below it).
_THAI_CONSONANTS = frozenset(chr(c) for c in range(0x0E01, 0x0E2F))
_THAI_AFTER = frozenset(chr(c) for c in (*range(0x0E30, 0x0E3B), *range(0x0E47, 0x0E4D)))
_THAI_LEADING_VOWELS = frozenset(chr(c) for c in range(0x0E40, 0x0E45))


def _thai_share(text: str) -> int:
    """The characters of a Thai reading that Thai writes: consonants, leading vowels, and vowels and tone marks after
    a consonant (or another of them). Nearly any byte is some Thai character in TIS-620, so bytes of another code
    page read as Thai give marks with nothing under them and the rare signs (digits, ฯ, ๅ)."""
    count, previous = 0, ""
    for char in text:
        after = char in _THAI_AFTER and (previous in _THAI_CONSONANTS or previous in _THAI_AFTER)
        if char in _THAI_CONSONANTS or char in _THAI_LEADING_VOWELS or after:
            count += 1
        previous = char
    return count


def _is_mark(char: str) -> bool:
    return unicodedata.category(char).startswith("M")


def _has_ascii_letter(word: str) -> bool:
    return any(c.isascii() and c.isalpha() for c in word)


#: The codecs a declared charset is read in, as mail readers read it (the WHATWG Encoding Standard's labels): a
#: subset's label stands for its Windows superset, which senders' software actually writes (Outlook's curly quotes
#: and € labelled ISO-8859-1, NEC and IBM kanji labelled Shift_JIS, GBK hanzi labelled GB2312, Hong Kong's
#: characters labelled Big5). Bytes a 7-bit label cannot hold are read as UTF-8 first: that label is wrong anyway.
_SUPERSETS = {
    "iso8859-1": ("cp1252", "latin-1"),
    "ascii": ("ascii", "utf-8", "cp1252"),
    "shift_jis": ("cp932",),
    "gb2312": ("gbk",),
    "big5": ("big5hkscs",),
    "euc_kr": ("cp949",),
    "iso2022_jp": ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2", "iso2022_jp_3"),
}


def declared_text(raw: bytes, charset: str) -> str | None:
    """``raw`` read in its declared charset as mail readers read it (``_SUPERSETS``), or None when it is not that
    charset's text or Python knows no such charset. A 7-bit one that shifts between character sets by escape
    sequences (ISO-2022-*) never falls back to UTF-8 or a code page, which would keep those sequences as letters:
    ISO-2022-JP is read through Windows' table (``iso2022jp_text``), else with what cannot be read replaced."""
    try:
        name = codecs.lookup(charset).name
    except (LookupError, ValueError):  # also a charset name that is garbage ("utf\x00-8")
        return None
    for encoding in _SUPERSETS.get(name, (name,)):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            if (cut := cut_short_text(raw, encoding)) is not None:
                return cut
            continue
        except (ValueError, LookupError):  # LookupError: a codec that is no text encoding ("base64")
            continue
    if not name.startswith("iso2022") or not raw.isascii():  # 8-bit bytes: the label is wrong
        return None
    found = iso2022jp_text(raw) if name == "iso2022_jp" else None
    return found if found is not None else raw.decode(name, errors="replace")


#: How a decoder says the bytes end inside a character (UTF-8's, then the CJK codecs').
_CUT_SHORT = frozenset({"unexpected end of data", "incomplete multibyte sequence"})


def cut_short_text(raw: bytes, encoding: str) -> str | None:
    """``raw`` in a multi-byte ``encoding`` whose last character the sender's software cut in two (a bulk mailer's
    subject or body truncated at a byte count, mid-character, white space or a line break perhaps after it), without
    that half character; None when the bytes are not that (an invalid byte elsewhere), or when nothing before the
    cut is beyond ASCII, so nothing says the text is in that encoding ("Café" in Windows-1252 ends like a cut UTF-8
    character). Without it one cut character made the whole text be read in a Western code page: Korean, Chinese,
    Japanese or UTF-8 mail shown as mojibake. No multi-byte encoding has white space inside a character."""
    text = raw.rstrip(b" \t\r\n")
    try:
        text.decode(encoding)
    except UnicodeDecodeError as exc:
        if exc.end != len(text) or exc.reason not in _CUT_SHORT or text[: exc.start].isascii():
            return None
        try:
            return text[: exc.start].decode(encoding) + raw[len(text) :].decode("ascii")
        except UnicodeDecodeError:
            return None
    except LookupError:
        return None
    return None


#: ISO-2022-JP's escape sequences: to ASCII or JIS X 0201 Roman (read as ASCII), JIS X 0201 katakana, JIS X 0208.
_ISO2022JP_SHIFT = re.compile(rb"(\x1b(?:\(B|\(J|\(I|\$@|\$B))")


def iso2022jp_text(raw: bytes) -> str | None:
    """ISO-2022-JP read as mail readers read it: its JIS X 0208 characters through Windows' table (cp932), which has
    the NEC special characters (①, ㈱, ㍻) that Japanese mail is full of and Python's ISO-2022-JP codecs lack. None
    when the bytes are no such text (another escape sequence, a broken double-byte run)."""
    out = bytearray()
    mode = b"(B"
    for index, chunk in enumerate(_ISO2022JP_SHIFT.split(raw)):
        if index % 2:
            mode = chunk[1:]
            continue
        if b"\x1b" in chunk or not chunk.isascii():
            return None
        if mode in (b"(B", b"(J"):
            out += chunk
        elif mode == b"(I":
            out += bytes(byte + 0x80 for byte in chunk)
        else:
            kanji = chunk.replace(b"\r", b"").replace(b"\n", b"")  # a line break left in double-byte mode
            if len(kanji) % 2:
                return None
            for first, second in zip(kanji[::2], kanji[1::2], strict=True):
                out += _jis_to_shift_jis(first, second)
    try:
        return out.decode("cp932")
    except UnicodeDecodeError:
        return None


def _jis_to_shift_jis(first: int, second: int) -> bytes:
    """A JIS X 0208 character's two bytes (0x21-0x7E each) as Shift_JIS writes it."""
    lead = (first + 1) // 2 + (0x70 if first <= 0x5E else 0xB0)
    trail = second + (0x1F + (second >= 0x60) if first % 2 else 0x7E)
    return bytes((lead, trail))
