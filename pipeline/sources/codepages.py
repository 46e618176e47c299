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
    undefined bytes then as Latin-1 control characters)."""
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
