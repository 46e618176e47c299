"""Pure normalisation shared by every source adapter: e-mail, phone, names, Skype, LinkedIn, country, age, subject key.

The subject key is an HMAC of the canonical identity under a secret pepper, so topics, the suppression list and
logs can name a person without carrying their address, and nobody without the pepper can reverse or guess it.
"""

from __future__ import annotations

import contextlib
import gettext
import hashlib
import hmac
import importlib
import os
import re
import unicodedata
from datetime import date
from functools import lru_cache
from urllib.parse import quote, unquote

import phonenumbers
import pycountry
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email


class NormalizationError(ValueError):
    """A field that cannot be normalised; ``field`` names it, the message never quotes the value."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = reason


#: Domains no one outside a private network receives mail at: IANA's special-use names as email-validator lists them
#: (RFC 6761 .test/.localhost/.invalid, RFC 6762 .local, RFC 7686 .onion, .arpa incl. RFC 8375 home.arpa), plus RFC
#: 9476 .alt and ICANN's private-use .internal (2024). The documentation names (.example, example.com/.net/.org) stay
#: accepted, as RFC 6761 6.5 asks of applications: tests, demos and docs use them.
RESERVED_EMAIL_DOMAINS = frozenset({*SPECIAL_USE_DOMAIN_NAMES, "alt", "internal"})


#: email-validator checks every address's domain against the UTS-46 tables character by character (about 0.2 ms,
#: most of an address's cost) while domains repeat (a few providers, each company's own). That check is a pure
#: function of the domain and two flags, so its results are kept (a failing domain raises and is not kept).
#: tests/unit/sources/test_sources_normalize.py pins the name this relies on.
_EMAIL_VALIDATOR = importlib.import_module("email_validator.validate_email")  # (the package's attribute is a function)
_DOMAIN_CHECK = "validate_email_domain_name"
setattr(_EMAIL_VALIDATOR, _DOMAIN_CHECK, lru_cache(maxsize=4096)(getattr(_EMAIL_VALIDATOR, _DOMAIN_CHECK)))

#: libphonenumber's metadata patterns compiled once and kept (its own switch), instead of ~20 lookups in ``re``'s
#: bounded cache per number: a valid-number check took 192 -> 159 us (issue 20). Bounded by the metadata, not input.
phonenumbers.enable_pattern_cache()


#: Text shaped like an e-mail address (not checked: ``canonical_email`` does that), to find one in a line or a field.
ADDRESS_IN_TEXT = re.compile(r"[^\s<>()\"',;:]+@[^\s<>()\"',;:]+\.[^\s<>()\"',;:]+")

#: An address after a display name (``Jane Doe <jane@example.com>``, ``"Doe, Jane" <...>``): the address is inside
#: the angle brackets. Taken here rather than by email-validator, which refuses an unquoted name with a comma or a
#: letter outside ASCII ("José García", "山田太郎"), as address books write them.
_NAMED_ADDRESS = re.compile(r'(?:"[^"]*"|[^<>"])*<([^<>]*)>')

#: A ``mailto:`` link pasted into an e-mail field: the address is before its ``?subject=...``.
_MAILTO = re.compile(r"mailto:([^?]*)(?:\?.*)?", re.I | re.S)


#: Fullwidth ASCII forms (U+FF01-U+FF5E) as the ASCII they stand for: an East Asian keyboard's at sign and letters;
#: and the invisible characters an address copied from a web page or a document brings along (zero-width space,
#: direction marks, word joiner, byte-order mark, soft hyphen), which no address contains, removed.
_FULLWIDTH = {
    **{code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)},
    **dict.fromkeys([0x200B, 0x200E, 0x200F, 0x2060, 0xFEFF, 0x00AD]),
}


def canonical_email(value: str, *, first_of_two: bool = True) -> str:
    """Syntax-checked (no DNS), local part kept (quoted where RFC 5321 needs it), domain lowercased, IDNA (ASCII).

    What an address field holds in practice is taken too: ``Jane Doe <jane@example.com>`` (an address book's or a
    mail client's copy) and a ``mailto:`` link give the address inside; the punctuation of a sentence after it
    (``jane@example.com.``: no address ends so) and invisible characters a copy brought along are left out; of two
    addresses in one field (``jane@work.example, jane@home.example``) the first is taken, unless ``first_of_two`` is
    False (naming a data subject: two addresses may be two people), which refuses them (``two_addresses``).

    A domain reserved for private or special use is ``reserved_email_domain``, not ``invalid_email``: the address
    is well-formed, only nobody can write to it from outside (a ``.local`` Active Directory name, a ``.test`` fixture).
    """
    text = value.translate(_FULLWIDTH).strip()  # an address a Japanese input method typed, or copied from a page
    if "<" in text and (named := _NAMED_ADDRESS.fullmatch(text)):
        text = named.group(1).strip()
    if mailto := _MAILTO.fullmatch(text):
        text = mailto.group(1).strip()
    text = text.rstrip(".,;:").rstrip()
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=True, allow_quoted_local=True)
    except EmailNotValidError as exc:
        if _reserved_domain(text):
            raise _reserved_error() from None
        if not first_of_two and any(sum("@" in part for part in b.split(text)) > 1 for b in _SECOND_ADDRESS):
            raise NormalizationError("email", "two_addresses", "holds two addresses; give one") from None
        for between in _SECOND_ADDRESS:  # two addresses in one field: the first, when it is one
            if (first := between.split(text, maxsplit=1)[0]) != text and "@" in first:
                with contextlib.suppress(NormalizationError):
                    return canonical_email(first)
        # the validator's message quotes the offending characters; a rejection must not quote personal data
        message = str(exc).replace(text, "the address") if len(text) > 3 else str(exc)  # "a": not in every word
        explanation = re.sub(r"\s*[:(]?\s*'[^']*'[).]?|\s*\"[^\"]*\"", "", message).strip()
        raise NormalizationError("email", "invalid_email", explanation or "not a valid e-mail address") from None
    domain = result.ascii_domain.lower()
    if _is_reserved(domain):  # the names email-validator does not know
        raise _reserved_error()
    return f"{result.local_part}@{domain}"


#: Between two addresses in one field: ",", ";", "|", " / ", " or ", Google Contacts' " ::: "; else white space
#: between two addresses.
_SECOND_ADDRESS = (
    re.compile(r"\s*(?:[,;|]|:::)\s*|\s+/\s+|\s+(?:or|oder|ou|o|of)\s+", re.I),
    re.compile(r"(?<=[a-z])\s+(?=\S+@)", re.I),
)


def _reserved_error() -> NormalizationError:
    return NormalizationError(
        "email", "reserved_email_domain", "the domain is reserved for private or special use: no mail reaches it"
    )


def _is_reserved(domain: str) -> bool:
    return any(domain == name or domain.endswith("." + name) for name in RESERVED_EMAIL_DOMAINS)


def _reserved_domain(address: str) -> bool:
    """Whether an address that failed validation is well-formed but for its reserved domain (runs on errors only).

    email-validator refuses special-use names with a message, not a type, so the address is validated again with
    the documentation TLD appended (``corp.local`` -> ``corp.local.example``): that checks every label's syntax.
    """
    local, at, domain = address.rpartition("@")
    name = domain.strip().rstrip(".").lower()
    if not at or not _is_reserved(name):
        return False
    try:
        validate_email(
            f"{local}@{name}.example", check_deliverability=False, allow_smtputf8=True, allow_quoted_local=True
        )
    except EmailNotValidError:
        return False
    return True


def canonical_phone(
    value: str, default_region: str | None = None, *, require_valid: bool = False, first_of_two: bool = True
) -> str:
    """E.164. A number without a country prefix needs ``default_region`` (taken from the person's location).

    ``require_valid`` (what sources use for what they take in) asks libphonenumber whether the number can exist
    (``is_valid_number``: a real range of a real numbering plan), not merely whether its length is possible:
    ``+4912`` or ``+1 555 0000`` are refused. Looking a subject up (rights, CRM search) keeps the lenient check,
    so a number stored before this rule can still be found and erased. Of two numbers in one field the first is
    taken, unless ``first_of_two`` is False (naming a data subject: two numbers may be two people), which refuses
    them (``two_numbers``).
    """
    if not first_of_two and _two_numbers(value, default_region):
        raise NormalizationError("phone", "two_numbers", "holds two phone numbers; give one")
    if (text := value.strip()).startswith("00"):  # 00 is the international prefix of most of the world
        international = "+" + text[2:]  # and no national number starts so
        if default_region is None:
            value = international
        elif not _is_valid(text, default_region):  # "001 212 ...", written so in a country that dials 011 or 810
            with contextlib.suppress(NormalizationError):
                return canonical_phone(international, None, require_valid=True)
    if (bare := _without_label(value)) != value:
        # a label after the number ("privat", "Fax"): libphonenumber reads letters as a vanity number's digits, and
        # a German number with them can still be valid. Without it, when that is valid; else the letters may be a
        # vanity number's ("1-800-FLOWERS")
        with contextlib.suppress(NormalizationError):
            return _e164(bare, default_region, require_valid=True)
    try:
        return _e164(value, default_region, require_valid=require_valid)
    except NormalizationError:
        # a label in parentheses ("(mobile)"), or a second number after the first ("+33 6 ... / +33 1 ..."): the
        # first number alone, when it is valid
        if (first := _first_number(value)) != value:
            with contextlib.suppress(NormalizationError):
                return _e164(first, default_region, require_valid=True)
        if (mexican := _MEXICAN_MOBILE.fullmatch(_PHONE_PUNCTUATION.sub("", value))) is not None:
            # Mexico's mobile numbers were dialled from abroad with a 1 after +52 until 2019 and many address books
            # still hold them so: the same number without it (only when that is valid)
            with contextlib.suppress(NormalizationError):
                return _e164("+52" + mexican.group(1), None, require_valid=True)
        # A spreadsheet reads "+447400123456" as a number and drops the plus: digits that are a valid international
        # number with the plus put back are taken as that (only when valid: nothing is guessed from a bad number).
        digits = _PHONE_PUNCTUATION.sub("", value)
        if not (digits.isdigit() and digits.isascii() and 8 <= len(digits) <= 15 and digits[0] != "0"):
            raise
        try:
            return _e164("+" + digits, None, require_valid=True)
        except NormalizationError:
            raise NormalizationError(
                "phone",
                "invalid_phone",
                "not a phone number" + ("" if default_region else " (no country prefix and no known country)"),
            ) from None


#: An extension as offices write it that libphonenumber does not read as one (it does "ext.", "x", "int.",
#: "anexo", "доб."): German "App." and "Durchwahl", French "poste", Italian "interno", Dutch "toestel". Made its
#: " ext. " so that the extension is read as one (E.164 leaves it out) rather than as more digits of the number.
_EXTENSION = re.compile(
    r"(?<=\d)\s*,?\s*(?:app|apparat|durchwahl|dw|nebenstelle|poste|interno|toestel)\b\.?:?\s*(?=\d)", re.I
)
_LETTER = re.compile(r"[^\W\d_]")
#: What follows a number's last digit when it holds a letter: a label ("privat", "Fax", "Tel", "(mobile)").
_TRAILING_LABEL = re.compile(r"(?<=\d)[^\d]*[^\W\d_][^\d]*$")


def _without_label(value: str) -> str:
    """The number with an office's extension marker made libphonenumber's and the label after its digits left out."""
    if _LETTER.search(value) is None:  # most numbers: no letter, nothing to leave out (both patterns need one)
        return value
    return _TRAILING_LABEL.sub("", _EXTENSION.sub(" ext. ", value)).strip()


def _is_valid(value: str, default_region: str) -> bool:
    try:
        _e164(value, default_region, require_valid=True)
    except NormalizationError:
        return False
    return True


#: A label in parentheses without a digit ("(mobile)", "(Zentrale)").
_PHONE_LABEL = re.compile(r"\([^()\d]*\)")
#: Between two numbers in one field: ";", ",", "|", Google Contacts' " ::: ", " or ", " oder ", " ou ", " o ", or
#: " / " before a "+".
_SECOND_NUMBER = re.compile(r"\s*(?:[;,|]|:::)\s*|\s+(?:or|oder|ou|o|of)\s+|\s+/\s+(?=\+)", re.IGNORECASE)


def _first_number(value: str) -> str:
    """The first phone number a field holds, without the labels around it."""
    first = _SECOND_NUMBER.split(_PHONE_LABEL.sub(" ", value), maxsplit=1)[0]
    last_digit = max((i for i, c in enumerate(first) if c.isdigit()), default=-1)
    return first[: last_digit + 1].strip()


def _two_numbers(value: str, default_region: str | None) -> bool:
    """Whether a field holds a second phone number after the first (not a label, not an extension)."""
    parts = _SECOND_NUMBER.split(_PHONE_LABEL.sub(" ", value), maxsplit=1)
    if len(parts) < 2 or not any(c.isdigit() for c in parts[0]):
        return False
    try:
        _e164(parts[1].strip(), default_region, require_valid=True)
    except NormalizationError:
        return False
    return True


#: What separates a phone number's digit groups.
_PHONE_PUNCTUATION = re.compile(r"[\s().\-/]")
#: +52 1 55 1234 5678: a Mexican mobile number in its pre-2019 international form.
_MEXICAN_MOBILE = re.compile(r"(?:\+|00)521(\d{10})")


def _e164(value: str, default_region: str | None, *, require_valid: bool) -> str:
    try:
        parsed = phonenumbers.parse(value, default_region.upper() if default_region else None)
    except phonenumbers.NumberParseException:
        raise NormalizationError(
            "phone",
            "invalid_phone",
            "not a phone number" + ("" if default_region else " (no country prefix and no known country)"),
        ) from None
    if not phonenumbers.is_possible_number(parsed):
        raise NormalizationError("phone", "invalid_phone", "not a possible phone number")
    if require_valid and not phonenumbers.is_valid_number(parsed):
        raise NormalizationError("phone", "invalid_phone", "not a phone number that can exist (libphonenumber)")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def subject_key(pepper: bytes, *, email: str | None = None, phone: str | None = None) -> str:
    """Keyed hash of the canonical e-mail, or of the E.164 phone when there is no e-mail.

    Call with values already canonical. The e-mail is matched case-insensitively (mailboxes in practice are).
    """
    if email:
        material = b"email:" + email.lower().encode()
    elif phone:
        material = b"phone:" + phone.encode()
    else:
        raise NormalizationError("email", "no_identity", "an event needs an e-mail address or a phone number")
    return "sk_" + hmac.new(pepper, material, hashlib.sha256).hexdigest()[:40]


#: Prefix of a visitor key: the pseudonymous subject key of an anonymous website visitor (``visitor_key``).
VISITOR_KEY_PREFIX = "vk_"

#: The longest visitor (cookie) id taken: Segment's anonymousId is a UUID, HubSpot's hutk 32 hex characters,
#: Snowplow's domain_userid a UUID; 200 leaves room for any tracker without letting a payload pass as one.
VISITOR_ID_MAX = 200

_VISITOR_ID = re.compile(r"[\x21-\x7e]+")


def visitor_key(pepper: bytes, visitor_id: str) -> str:
    """The key of an anonymous visitor: an HMAC of their cookie id, never the id itself (``vk_`` + 40 hex).

    A subject key of its own kind: an e-mail or phone can never give a ``vk_`` key, so a visitor's history and a
    person's never share a data key, and the DPO can erase a visitor known only by the cookie id. The id is taken as
    sent (trackers' ids are case-sensitive), surrounding whitespace removed; printable ASCII without spaces only.
    """
    text = visitor_id.strip()
    if not text or len(text) > VISITOR_ID_MAX or not _VISITOR_ID.fullmatch(text):
        raise NormalizationError(
            "visitor_id", "invalid_visitor_id", f"not a visitor id (1-{VISITOR_ID_MAX} printable ASCII characters)"
        )
    return VISITOR_KEY_PREFIX + hmac.new(pepper, b"visitor:" + text.encode(), hashlib.sha256).hexdigest()[:40]


def is_visitor_key(key: str) -> bool:
    """Whether a subject key is an anonymous visitor's (``visitor_key``) rather than a person's."""
    return key.startswith(VISITOR_KEY_PREFIX)


# ---- names, free text -------------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
#: Forms of address and titles before a name, in the languages leads write them ("Dra.", "Sig.ra", "Dott.ssa",
#: "Mag.", "ir."), with a German doctorate's field after "Dr." ("Dr. med.", "Dr. rer. nat."; only with its period:
#: "Dr. Phil Jones" keeps Phil).
_HONORIFIC = re.compile(
    r"^(?:(?:dr|dra|prof|mr|mrs|ms|mx|miss|mister|sir|dame|herr|frau|mme|mlle|madame|monsieur|mademoiselle|maître"
    r"|m(?=\.)|sr|sra|srta|señor|señora|señorita|sig|sig\.ra|signor|signora|dott|dott\.ssa|ing|mag|mgr|ir|drs|rev"
    r"|dr\.?-ing|dipl\.?-(?:ing|kfm|kff|inf|psych)|univ\.?-prof|mudr|judr|phdr|rndr|mvdr|bc|eng|shri|smt)\.?\s+"
    r"(?:(?:med|phil|jur|rer\.\s?nat|vet|dent|oec|h\.\s?c)\.\s+)*)+",
    re.I,
)
_SPACES = re.compile(r"\s+")
#: Degrees and generational suffixes after a comma ("Jane Doe, MBA", "John Smith, Jr.", "Doe, Jane, PhD, CPA"):
#: no part of the name, and the comma before them no "Last, First". A two-letter degree only in capitals ("Li, Ma"
#: is Ma Li).
_NAME_SUFFIX = re.compile(
    r"(?:\s*,\s*(?:(?i:jr|sr|esq|phd|ph\.\s?d|m\.d|d\.d\.s)|II|III|IV|MBA|MD|MA|BA|MSc|BSc|MS|BS|JD|LLM|CPA|CFA|DDS"
    r"|RN|PE|PMP)\.?(?!\w))+$"
)
#: A nickname written between the given and the family name, in parentheses or quotes, or a note in parentheses
#: after the name ("Jane Doe (Acme)", "Jane Doe (she/her)").
_NICKNAME = re.compile(r"\s\([^()]*\)(?=\s|$)|\s[\"\u201c][^\"\u201c\u201d]*[\"\u201d](?=\s)")
_CJK = (
    "\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
    "\U00020000-\U0003134f"
)
_CJK_FULL_NAME = re.compile(f"[{_CJK}]+(?: [{_CJK}]+)+")
#: A Korean name written without a space: two to four Hangul syllables, the family name first.
_HANGUL_NAME = re.compile("[\uac00-\ud7a3]{2,4}")
_KOREAN_TWO_SYLLABLE_FAMILIES = frozenset({"남궁", "황보", "제갈", "선우", "독고", "사공", "서문", "동방"})


def normalize_name(value: str | None) -> str | None:
    """Trimmed, Unicode NFC, inner whitespace collapsed, invisible characters removed; None when nothing is left."""
    if value is None:
        return None
    text = _SPACES.sub(" ", _CONTROL.sub("", unicodedata.normalize("NFC", value))).strip()
    return text or None


#: A word in Cyrillic letters (a family name first is read only so: "John Paul Abramovich" is no ФИО).
_CYRILLIC_WORD = re.compile(r"[\u0400-\u04ff'\u2019-]+")
#: A patronymic's ending (Russian, Ukrainian, Belarusian; Cyrillic or transliterated): "Иванович", "Сергеевна",
#: "Ильич", "Кузьминична", "Ivanovich", "Petrovna". A surname ends so too rarely to matter in a three-word name.
_PATRONYMIC = re.compile(r"(?:ович|евич|ьич|ич|овна|евна|ична|ovich|evich|ovna|evna|ichna|ovych|ivna)$", re.I)


def split_full_name(value: str | None) -> tuple[str | None, str | None]:
    """(first, last) from one name field: "Smith, John" or "John Smith" (everything after the first word is last).

    A name written wholly in Han, kana or Hangul with a space puts the family name first (山田 太郎: family 山田, given
    太郎; 김 민수), as those languages do; a Korean name without a space too (김민준: family 김), its family name being
    one syllable but for a few; Han or kana without a space (山田太郎) stays whole: the split is not known. A family
    name written in capitals before the given name ("DUPONT Jean", "YAMADA Taro", as French forms and passports
    write it) is read as the family name. Three words with a patronymic are read in the order East Slavic records
    write them: "Петров Иван Иванович" (family first) and "Ivan Ivanovich Petrov" (family last), the given name
    with the patronymic.
    """
    name = normalize_name(value)
    if name is None:
        return None, None
    name = normalize_name(_NICKNAME.sub(" ", name)) or name  # "Robert (Bob) Smith", 'Robert "Bob" Smith'
    name = _NAME_SUFFIX.sub("", name) or name  # "Jane Doe, MBA": no "Last, First"
    if "," in name:
        last, _, first = name.partition(",")
        return normalize_name(_HONORIFIC.sub("", first.strip())), normalize_name(last)
    bare = _HONORIFIC.sub("", name) or name
    if bare != name and " " not in bare:  # "Dr. Smith", "Mrs Patel": a form of address goes with the family name
        return None, bare
    name = bare
    if _CJK_FULL_NAME.fullmatch(name):
        family, _, given = name.partition(" ")
        return given, family
    if _HANGUL_NAME.fullmatch(name):  # 김민준: a one-syllable family name, or one of the few two-syllable ones
        cut = 2 if name[:2] in _KOREAN_TWO_SYLLABLE_FAMILIES and len(name) > 3 else 1
        return name[cut:], name[:cut]
    words = name.split(" ")
    if (
        len(words) == 3
        and all(_CYRILLIC_WORD.fullmatch(w) for w in words)
        and _PATRONYMIC.search(words[2])
        and not _PATRONYMIC.search(words[1])
    ):
        # "Петров Иван Иванович": the family name first, as Russian, Ukrainian and Belarusian records write a full
        # name (ФИО); the given name goes with the patronymic, as the person is addressed
        return f"{words[1]} {words[2]}", words[0]
    if len(words) == 3 and _PATRONYMIC.search(words[1]):  # "Ivan Ivanovich Petrov": given, patronymic, family
        return f"{words[0]} {words[1]}", words[2]
    # a family name in capitals is a word of two letters or more, never an initial ("J. Smith", "I. M. Pei")
    capitals = next((i for i, w in enumerate(words) if not (w.isupper() and len(w) > 1 and "." not in w)), len(words))
    if 0 < capitals < len(words) and any(w.islower() for w in words[capitals]):  # "DUPONT Jean", "YAMADA Taro"
        return " ".join(words[capitals:]), " ".join(words[:capitals])
    first, _, last = name.partition(" ")
    return first, normalize_name(last)


def person_name(first: str | None, last: str | None, full: str | None) -> tuple[str | None, str | None]:
    """(first, last) from a form's name fields: as given when both are; else the full name split
    (``split_full_name``); one of them beside a name field completes it with what the name field adds
    ("First name: John", "Name: John Smith" -> Smith) or with the whole name field when it does not repeat the part
    given, which is how German ("Vorname" + "Name"), French ("Prénom" + "Nom"), Italian ("Nome" + "Cognome") and
    Spanish ("Nombre" + "Apellidos") forms ask for a name. A placeholder where no name was asked (Eventbrite's "Info
    Requested" for an attendee whose buyer alone gave details, "N/A") is no name."""
    first, last, full = (None if _placeholder(n) else n for n in map(normalize_name, (first, last, full)))
    if first is None and last is None:
        return split_full_name(full)
    if full is None or (first is not None and last is not None):
        return first, last
    if "," in full:  # "Smith, John": the split says which part is which
        split_first, split_last = split_full_name(full)
        return first or split_first, last or split_last
    words = (_HONORIFIC.sub("", full) or full).split(" ")
    given = (first or last or "").split(" ")
    folded = [w.casefold() for w in words]
    part = [w.casefold() for w in given]
    if first is not None:
        rest = words[len(part) :] if folded[: len(part)] == part else None if folded == part else words
        return first, " ".join(rest) if rest else None
    rest = words[: -len(part)] if folded[-len(part) :] == part else None if folded == part else words
    return " ".join(rest) if rest else None, last


#: What exports write where a name was not asked or given ("Info Requested": Eventbrite's attendee whose ticket buyer
#: alone answered the questions).
_NAME_PLACEHOLDERS = frozenset({"info requested", "n/a", "n.a.", "-", "--", "none", "null", "unknown"})


def _placeholder(name: str | None) -> bool:
    return name is not None and name.casefold() in _NAME_PLACEHOLDERS


def clean_text(value: str | None, max_length: int) -> str | None:
    """Free text (messages, subjects): NFC, control characters removed, line breaks kept, cut at ``max_length``.

    Cutting, not refusing: a long message is still a real request; the marker says it was cut.
    """
    if value is None:
        return None
    text = _CONTROL.sub("", unicodedata.normalize("NFC", value.replace("\r\n", "\n").replace("\r", "\n"))).strip()
    if not text:
        return None
    if len(text) > max_length:
        marker = " [truncated]"
        text = text[: max_length - len(marker)] + marker
    return text


# ---- Skype, LinkedIn ----------------------------------------------------------------------------------------------

_SKYPE = re.compile(r"^(?:live:)?[a-z0-9._,@-]{2,100}$")


def canonical_skype(value: str) -> str:
    """A Skype ID as one canonical string: ``skype:`` URI scheme and ``?call`` suffixes removed, lowercased.

    The ``live:`` prefix of Microsoft-account IDs is part of the ID (``live:jane`` and ``jane`` are different
    accounts), so it is kept, lowercased, never stripped.
    """
    text = normalize_name(value) or ""
    text = text.strip().lower()
    if text.startswith("skype:"):
        text = text.removeprefix("skype:").split("?", 1)[0].lstrip("/")
    if text.startswith("live: "):
        text = "live:" + text.removeprefix("live: ").strip()
    if not _SKYPE.fullmatch(text) or len(text) > 100:
        raise NormalizationError("skype_id", "invalid_skype_id", "not a Skype ID (letters, digits, . , _ - allowed)")
    return text


_LINKEDIN = re.compile(r"^(?:https?://)?(?:[a-z]{2,3}\.|www\.|m\.)?linkedin\.com/in/([^/?#\s]+)/?(?:[?#].*)?$", re.I)


def canonical_linkedin(value: str) -> str:
    """``https://www.linkedin.com/in/<slug>``: scheme, country sub-domain, tracking query and trailing slash removed."""
    text = (normalize_name(value) or "").strip()
    match = _LINKEDIN.fullmatch(text)
    if match is None:
        raise NormalizationError("linkedin_url", "invalid_linkedin_url", "not a LinkedIn profile URL (…/in/<name>)")
    slug = unicodedata.normalize("NFC", unquote(match.group(1))).strip().lower()
    if not slug or any(c.isspace() or c in "/?#" for c in slug):
        raise NormalizationError("linkedin_url", "invalid_linkedin_url", "the LinkedIn profile name is not valid")
    return f"https://www.linkedin.com/in/{quote(slug, safe='-_.~')}"


# ---- country ------------------------------------------------------------------------------------------------------

#: Everyday names that ISO 3166 (pycountry) does not list under that spelling.
_COUNTRY_ALIASES = {
    "uk": "GB",
    "u.k.": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "usa": "US",
    "u.s.a.": "US",
    "u.s.": "US",
    "america": "US",
    "united states of america": "US",
    "russia": "RU",
    "turkey": "TR",
    "macedonia": "MK",
    "ivory coast": "CI",
    "uae": "AE",
    "holland": "NL",
    "the netherlands": "NL",
    "korea": "KR",
    "north korea": "KP",
    "kosovo": "XK",
    "palestine": "PS",
    "ukraina": "UA",
    "россия": "RU",
    "czechia": "CZ",
    "republic of korea": "KR",
    "cape verde": "CV",
    "u.a.e.": "AE",
    "emirates": "AE",
    "ksa": "SA",
    "saudi": "SA",
    "eire": "IE",
    "turkiye": "TR",
    "great britain and northern ireland": "GB",
    "großbritannien": "GB",
    "grossbritannien": "GB",
    "s. korea": "KR",
    "korea (south)": "KR",
    "korea, south": "KR",
    "south korea": "KR",
    "n. korea": "KP",
    "korea (north)": "KP",
    "korea, north": "KP",
    "한국": "KR",
    "prc": "CN",
    "p.r. china": "CN",
    "p.r.c.": "CN",
    "mainland china": "CN",
    "hong kong sar": "HK",
    "hong kong s.a.r.": "HK",
    "macau sar": "MO",
    "macao sar": "MO",
    "lao pdr": "LA",
    "laos": "LA",
    "bosnia": "BA",
    "democratic republic of the congo": "CD",
    "dr congo": "CD",
    "drc": "CD",
    "ประเทศไทย": "TH",  # "Prathet Thai", the country's everyday name; the catalog has ไทย alone
    "ایران": "IR",  # Persian; the catalogs translate only "Iran, Islamic Republic of"
    "السعودية": "SA",
    "الامارات": "AE",
    "ўзбекистон": "UZ",
}


#: What typed text and the catalogs write differently for the same name: Arabic vowel marks and the tatweel (typed
#: text leaves them out, the Arabic catalog writes "السّعوديّة"), zero-width joiners (Sinhala, Persian), and the
#: Arabic letters Persian and Arabic keyboards give different code points (yeh, kaf, alef with hamza); a word
#: processor's typographic apostrophe (U+2019, "Côte d'Ivoire") and "&" ("Bosnia & Herzegovina") as the catalogs
#: write them.
_NAME_FOLD = str.maketrans(
    {
        "\u2019": "'",
        "&": "and",
        **dict.fromkeys([*range(0x064B, 0x0660), 0x0670, 0x0640, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF]),
        "\u064a": "\u06cc",  # ي -> ی
        "\u0649": "\u06cc",  # ى -> ی
        "\u0643": "\u06a9",  # ك -> ک
        "\u0623": "\u0627",  # alef with hamza above -> alef
        "\u0625": "\u0627",  # alef with hamza below -> alef
        "\u0622": "\u0627",  # alef with madda -> alef
    }
)

#: "The Bahamas", "Netherlands, The" (an index's inversion): the article is no part of the name ISO 3166 lists.
_THE = re.compile(r"^the\s+|,\s*the$")


def _name_key(name: str) -> str:
    key = unicodedata.normalize("NFC", name).strip().strip(".").casefold().translate(_NAME_FOLD)
    return _THE.sub("", key)


def _unaccented(key: str) -> str:
    """A name key without its Latin accents ("cote d'ivoire", "curacao", "peru"): how an ASCII-only export spells it."""
    return "".join(c for c in unicodedata.normalize("NFD", key) if not unicodedata.combining(c))


@lru_cache(maxsize=1)
def _unaccented_names() -> dict[str, str]:
    """English names and aliases by their unaccented keys, for a name typed without accents; a key two countries
    would share is left out rather than guessed."""
    found: dict[str, set[str]] = {}
    for country in pycountry.countries:
        for attribute in ("name", "common_name", "official_name"):
            if name := getattr(country, attribute, None):
                found.setdefault(_unaccented(_name_key(name)), set()).add(str(country.alpha_2))
    for key, code in _ALIASES_BY_KEY.items():
        found.setdefault(_unaccented(key), set()).add(code)
    return {name: codes.pop() for name, codes in found.items() if len(codes) == 1}


@lru_cache(maxsize=1)
def _localized_country_names() -> dict[str, str]:
    """Each country's names in every language pycountry ships (the iso-codes project's ISO 3166 translations, ~160
    catalogs: "Brasil", "Deutschland", "日本", "대한민국", "Ελλάδα") -> alpha-2, read once (~0.25 s) at the first name
    that is not English. A name that two countries share across catalogs (a catalog's own slip: one renders Mexico
    as Malaysia's name) is left out rather than guessed."""
    english = [
        (str(country.alpha_2), name)
        for country in pycountry.countries
        for attribute in ("name", "common_name", "official_name")
        if (name := getattr(country, attribute, None))
    ]
    found: dict[str, set[str]] = {}
    for code, name in english:  # the English names too, so that a catalog's slip onto one of them is seen
        found.setdefault(_name_key(name), set()).add(code)
    for language in sorted(os.listdir(pycountry.LOCALES_DIR)):
        try:
            catalog = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language])
        except OSError:
            continue
        for code, name in english:
            found.setdefault(_name_key(catalog.gettext(name)), set()).add(code)
    return {name: codes.pop() for name, codes in found.items() if len(codes) == 1}


@lru_cache(maxsize=1)
def _unaccented_localized_names() -> dict[str, str]:
    """``_localized_country_names`` by their unaccented keys, for a name an ASCII-only export wrote ("Etats-Unis");
    a key two countries would share is left out rather than guessed."""
    found: dict[str, set[str]] = {}
    for name, code in _localized_country_names().items():
        found.setdefault(_unaccented(name), set()).add(code)
    return {name: codes.pop() for name, codes in found.items() if len(codes) == 1}


#: The aliases by the key a name is looked up with (``_name_key`` drops a trailing dot: "U.S.A." is "u.s.a").
_ALIASES_BY_KEY = {_name_key(alias): code for alias, code in _COUNTRY_ALIASES.items()}


@lru_cache(maxsize=4096)
def _country_by_name(name: str, *, localized: bool = True) -> str | None:
    """The country a name names: English (ISO 3166), an everyday alias, then (``localized``) any language's name."""
    key = _name_key(name)
    if key in _ALIASES_BY_KEY:
        return _ALIASES_BY_KEY[key]
    if len(key) <= 3 and key.isascii():  # codes only in a country field: "CA" in "Austin, CA" is not Canada
        return None
    try:
        return str(pycountry.countries.lookup(key).alpha_2)
    except LookupError:
        pass
    if (code := _unaccented_names().get(_unaccented(key))) is not None:  # "Cote d'Ivoire" as an ASCII export writes it
        return code
    if not localized:
        return None
    return _localized_country_names().get(key) or _unaccented_localized_names().get(_unaccented(key))  # "Etats-Unis"


#: A dialling code where a form asks for the country beside the number (a country-code picker: "+49", "0049", "49").
_DIALLING_CODE = re.compile(r"(?:\+|00)\s*(\d{1,3})|([1-9]\d{0,2})")


def dialling_code_regions(value: str | None) -> tuple[str, ...]:
    """The countries a country field's dialling code stands for, the main one first ("+49" -> DE; "+1" -> US, CA,
    ...); () when the field holds no dialling code (a name, an ISO code, an ISO numeric code beginning with 0)."""
    if value is None or (match := _DIALLING_CODE.fullmatch(value.strip())) is None:
        return ()
    code = int(match.group(1) or match.group(2))
    return tuple(region for region in phonenumbers.region_codes_for_country_code(code) if region != "001")


#: Country-code domains sold to anyone as a brand (.io, .co, .me, .tv, .ai, ...): an address there says nothing of
#: where its owner's phone is.
_BRAND_DOMAINS = frozenset(
    {"ac", "ai", "am", "as", "bz", "cc", "cd", "cf", "co", "cx", "dj", "fm", "ga", "gg", "gl", "gq", "gy", "im", "io",
     "je", "la", "ly", "me", "ml", "ms", "mu", "nu", "pw", "sc", "sh", "so", "st", "tk", "tm", "to", "tv", "vc", "ws",
     "vg", "eu", "su"}
)  # fmt: skip


def region_of_address(email: str | None, number: str) -> str | None:
    """The country an e-mail address's country-code domain names ("…@firma.de" -> DE, "….co.uk" -> GB), to read a
    national phone ``number`` beside it that no country field explains; None for a generic or brand domain (.com,
    .io), or when the number is not written as that country writes its own: with its trunk prefix ("0171 ..." in
    Germany; a US "(415) 555-0132" beside a .de address is no German number, though libphonenumber would read one).
    Only the phone's region: never the person's country, which the address does not prove."""
    domain = (email or "").rpartition("@")[2].strip().rstrip(".").lower()
    label = domain.rpartition(".")[2]
    if len(label) != 2 or not label.isascii() or not label.isalpha() or label in _BRAND_DOMAINS:
        return None
    region = "GB" if label == "uk" else label.upper()
    if (metadata := phonenumbers.PhoneMetadata.metadata_for_region(region)) is None:
        return None
    trunk = metadata.national_prefix
    digits = "".join(c for c in number.lstrip(" (") if c.isdigit())
    return region if not trunk or digits.startswith(trunk) else None


def country_code(value: str | None) -> str | None:
    """ISO 3166-1 alpha-2 from a country field ("DE", "DEU", "Germany", "UK"); None when it names no country."""
    text = normalize_name(value)
    if text is None:
        return None
    if len(text) in (2, 3) and text.isalpha():
        if text.upper() == "UK":
            return "GB"
        try:
            return str(pycountry.countries.lookup(text).alpha_2)
        except LookupError:
            return _country_by_name(text)
    return _country_by_name(text)


@lru_cache(maxsize=1)
def _north_american_states() -> dict[str, str]:
    """The US states' and Canadian provinces' and territories' names -> US or CA (a form's separate state field)."""
    return {
        _name_key(str(division.name)): country
        for country in ("US", "CA")
        for division in pycountry.subdivisions.get(country_code=country)  # type: ignore[no-untyped-call]
    }


def country_from_location(location: str | None) -> str | None:
    """The country a free-text location names ("Berlin, Germany", "Austin, TX", "München, Deutschland").

    Parts are tried from the last by their English names (and everyday aliases); then a trailing US state or Canadian
    province code means US or CA; only then the other languages' names ("São Paulo, Brasil"), so that a place named
    like a country in some language ("Norfolk, VA": Norfolk Island's name in one catalog) stays where it is.
    """
    text = normalize_name(location)
    if text is None:
        return None
    parts = [p.strip() for p in re.split(r"[,;/\n]| - ", text) if p.strip()]
    for part in reversed(parts):
        found = _country_by_name(part, localized=False)
        if found:
            return found
    if len(parts) > 1:
        last = parts[-1].split()[0].upper() if parts[-1].split() else ""
        for country in ("US", "CA"):
            if len(last) == 2 and pycountry.subdivisions.get(code=f"{country}-{last}") is not None:  # type: ignore[no-untyped-call]
                return country
    if (state := _north_american_states().get(_name_key(parts[-1]))) is not None:  # "Austin, Texas", "Ontario"
        return state
    for part in reversed(parts):
        found = _country_by_name(part)
        if found:
            return found
    return None


# ---- age ----------------------------------------------------------------------------------------------------------

#: "years" after an age, as forms write it: English, German, French, Spanish, Portuguese, Italian, Dutch, Polish,
#: Russian, Ukrainian, Turkish, Finnish, Nordic, Greek, Japanese, Chinese, Korean.
_YEARS = (
    r"(?:\s*(?:years?|yrs?|y\.?o\.?|jahre|ans|años|anos|anni|jaar|lat|lata|лет|года?|роки?|років|yaş(?:ında)?"
    r"|vuotta|år|ετών|χρονών|歳|才|岁|歲|살|세)(?:\s*old)?)?"
)
_AGE = re.compile(rf"^\s*(\d{{1,3}}){_YEARS}\s*$", re.I)
#: An age bracket ("18-24", "25 to 34 Jahre", "65+", "under 16"), read as the youngest age it takes in; the dashes
#: are the hyphen, en and em dashes, the tildes ASCII, wave and fullwidth (a Japanese form's 18 wave-dash 24).
_AGE_RANGE = re.compile(
    rf"^\s*(\d{{1,3}})\s*(?:[-\u2013\u2014~\u301c\uff5e]|to|bis|à|a|al)\s*\d{{1,3}}{_YEARS}\s*$", re.I
)
_AGE_AND_OVER = re.compile(
    rf"^\s*(\d{{1,3}}){_YEARS}\s*(?:\+|and (?:over|older|above)|or older|und älter|et plus|o más|代|以上|이상)"
    rf"{_YEARS}\s*$",
    re.I,
)
_AGE_UNDER = re.compile(
    rf"^\s*(?:(?:under|below|younger than|less than|<|unter|jünger als|moins de|menos de|meno di|jonger dan|poniżej"
    rf"|младше|до)\s*\d{{1,3}}{_YEARS}|\d{{1,3}}{_YEARS}\s*(?:未満|以下|미만))\s*$",
    re.I,
)


def parse_stated_age(value: object) -> int:
    """A stated age ("17", "17 years", "15歳", 17); refuses anything that is not a plausible whole number of years.

    An age bracket a form offers is read as the youngest age it takes in ("18-24" is 18, "65+" 65, "under 16" 0):
    whether the person may be a child (policy section 12) is decided on what they may be, not on a guess.
    """
    if isinstance(value, bool):
        raise NormalizationError("stated_age", "invalid_age", "not an age in years")
    if isinstance(value, int):
        age = value
    elif isinstance(value, float) and value.is_integer():
        age = int(value)
    elif _AGE_UNDER.fullmatch(text := str(value)):
        age = 0
    else:
        match = _AGE.fullmatch(text) or _AGE_RANGE.fullmatch(text) or _AGE_AND_OVER.fullmatch(text)
        if match is None:
            raise NormalizationError("stated_age", "invalid_age", "not an age in years")
        age = int(match.group(1))
    if not 0 <= age <= 150:
        raise NormalizationError("stated_age", "invalid_age", "an age must be between 0 and 150")
    return age


# ---- dates as people and spreadsheets write them -------------------------------------------------------------------

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            "january jan januar janvier janv enero ene gennaio gen janeiro januari jän",
            "february feb februar fevrier fevr febrero febbraio fevereiro fev februari",
            "march mar marz maerz mars marzo marco maart mrt",
            "april apr avril avr abril abr aprile",
            "may mai mayo maggio mag maio mei",
            "june jun juni juin junio giugno giu junho",
            "july jul juli juillet juil julio luglio lug julho",
            "august aug august aout agosto ago augustus",
            "september sep sept septembre septiembre setiembre settembre set setembro",
            "october oct oktober okt octobre octubre ottobre ott outubro out",
            "november nov novembre noviembre novembro",
            "december dec dezember dez decembre diciembre dic dicembre dezembro",
        ),
        start=1,
    )
    for name in names.split()
}
"""Month names and their abbreviations in English, German, French, Spanish, Italian, Portuguese and Dutch, folded
(no accents, lower case): no two languages use one name for different months."""

_ORDINAL = r"(?:st|nd|rd|th|er|e|º|°)?"
_DAY_MONTH_YEAR = re.compile(
    rf"(\d{{1,2}}){_ORDINAL}\.?[ \t]*(?:de[ \t]+)?([^\W\d_]{{3,10}})\.?,?[ \t]*(?:de[ \t]+)?(\d{{4}})"
)
_MONTH_DAY_YEAR = re.compile(rf"([^\W\d_]{{3,10}})\.?[ \t]+(\d{{1,2}}){_ORDINAL},?[ \t]+(\d{{4}})")
_DASHED = re.compile(r"(\d{1,2})[-/ ]([^\W\d_]{3,10})\.?[-/ ](\d{2}|\d{4})")
_CJK_DATE = re.compile(r"(\d{4})[年년][ \t]*(\d{1,2})[月월][ \t]*(\d{1,2})[日일]")
_NUMERIC = re.compile(r"(\d{1,4})([./-])(\d{1,2})\2(\d{1,4})")
_CLOCK = re.compile(r"[ \tT,]+(\d{1,2}):(\d{2})(?::(\d{2}))?[ \t]*([AaPp]\.?[Mm]\.?)?(?:[ \t]*(?:UTC|GMT|Z))?")
_WEEKDAY_PREFIX = re.compile(r"^[^\W\d_]{2,12}\.?,[ \t]*")


def _fold(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c)).lower()


def read_date(value: str) -> tuple[date, tuple[int, int, int] | None]:
    """(the date, its clock time or None) of a date written as people and spreadsheets write it, besides ISO 8601:
    "5 June 2024", "June 5, 2024", "5. Juni 2024", "5 de junio de 2024", "05-Jun-24", "2024/06/05", "2024年6月5日",
    day-first with dots, slashes when unambiguous ("13/06/2024"), each with a clock time after it ("10:00 AM").

    Raises ``NormalizationError`` ``ambiguous_date`` for "06/05/2024" (6 May or 5 June: refused, not guessed) and
    ``invalid_timestamp`` for anything else that is not a calendar date."""
    text = _WEEKDAY_PREFIX.sub("", value.strip(), count=1) if value.strip()[:1].isalpha() else value.strip()
    found: tuple[int, int, int] | None = None
    rest = ""
    if match := _CJK_DATE.match(text):
        found, rest = (int(match.group(1)), int(match.group(2)), int(match.group(3))), text[match.end() :]
    elif (match := _DAY_MONTH_YEAR.match(text)) and _fold(match.group(2)) in _MONTHS:
        found = (int(match.group(3)), _MONTHS[_fold(match.group(2))], int(match.group(1)))
        rest = text[match.end() :]
    elif (match := _MONTH_DAY_YEAR.match(text)) and _fold(match.group(1)) in _MONTHS:
        found = (int(match.group(3)), _MONTHS[_fold(match.group(1))], int(match.group(2)))
        rest = text[match.end() :]
    elif (match := _DASHED.match(text)) and _fold(match.group(2)) in _MONTHS:
        year = int(match.group(3))
        found = (year + 2000 if year < 100 else year, _MONTHS[_fold(match.group(2))], int(match.group(1)))
        rest = text[match.end() :]
    elif match := _NUMERIC.match(text):
        found, rest = _numeric_date(match), text[match.end() :]
    if found is None:
        raise NormalizationError("date", "invalid_timestamp", "not a date/time (use ISO 8601 or epoch seconds)")
    clock = None
    if rest.strip():
        if (time_match := _CLOCK.fullmatch(rest)) is None:
            raise NormalizationError("date", "invalid_timestamp", "not a date/time (use ISO 8601 or epoch seconds)")
        hour, minute, second = int(time_match.group(1)), int(time_match.group(2)), int(time_match.group(3) or 0)
        if meridiem := (time_match.group(4) or "").replace(".", "").lower():
            if not 1 <= hour <= 12:
                raise NormalizationError("date", "invalid_timestamp", "a 12-hour clock time runs from 1 to 12")
            hour = hour % 12 + (12 if meridiem == "pm" else 0)
        clock = (hour, minute, second)
    try:
        return date(*found), clock
    except ValueError:
        raise NormalizationError("date", "invalid_timestamp", "not a calendar date") from None


def _numeric_date(match: re.Match[str]) -> tuple[int, int, int]:
    """Year first ("2024/06/05"), else day-first with dots ("05.06.2024"), else with slashes or dashes the order that
    fits: 13/06/2024 is the 13th of June, 06/13/2024 the 13th too; 06/05/2024 is refused."""
    first, separator, second, last = match.group(1), match.group(2), int(match.group(3)), match.group(4)
    if len(first) == 4:
        return int(first), second, int(last)
    if len(last) != 4:
        raise NormalizationError("date", "invalid_timestamp", "not a date/time (use ISO 8601 or epoch seconds)")
    day_or_month, year = int(first), int(last)
    if separator == ".":
        return year, second, day_or_month
    if day_or_month > 12 >= second:
        return year, second, day_or_month
    if second > 12 >= day_or_month or day_or_month == second:
        return year, day_or_month, second
    raise NormalizationError(
        "date",
        "ambiguous_date",
        "day and month order is ambiguous (as in 06/05/2024: 6 May or 5 June?); use YYYY-MM-DD",
    )


#: The reason a birth date is left out, not refused: the field holds no whole date. An address book's placeholder for
#: none (Outlook's ``0/0/00``) or a birthday without its year (Mailchimp's ``MM/DD``, Google's ``--06-21``, "21 June")
#: says nothing of the person's age, so the contact is kept without it (a note, as a bad phone beside an e-mail).
BIRTH_DATE_INCOMPLETE = "birth_date_incomplete"
#: Only zeros and separators: a placeholder for no date (``0/0/00``, ``00.00.0000``, ``0000-00-00``).
_NO_DATE = re.compile(r"[0./\-]*0[0./\-]*")
#: A day and month without a year: vCard's ``--MMDD`` / ``--MM-DD``, or two numbers (``04/12``, ``21.06.``).
_YEARLESS_VCARD = re.compile(r"--(\d{2})-?(\d{2})")
_YEARLESS_NUMERIC = re.compile(r"(\d{1,2})[./-](\d{1,2})\.?")
_YEARLESS_NAMED = (
    re.compile(rf"(\d{{1,2}}){_ORDINAL}\.?[ \t]*(?:de[ \t]+)?([^\W\d_]{{3,10}})\.?"),
    re.compile(rf"([^\W\d_]{{3,10}})\.?[ \t]+(\d{{1,2}}){_ORDINAL}"),
)


def _yearless(text: str) -> bool:
    """Whether ``text`` is a day of some month without a year (either order of two numbers may be meant)."""
    pairs: list[tuple[int, int]] = []
    if match := _YEARLESS_VCARD.fullmatch(text):
        pairs.append((int(match.group(1)), int(match.group(2))))
    elif match := _YEARLESS_NUMERIC.fullmatch(text):
        first, second = int(match.group(1)), int(match.group(2))
        pairs += [(first, second), (second, first)]
    elif (match := _YEARLESS_NAMED[0].fullmatch(text)) and _fold(match.group(2)) in _MONTHS:
        pairs.append((_MONTHS[_fold(match.group(2))], int(match.group(1))))
    elif (match := _YEARLESS_NAMED[1].fullmatch(text)) and _fold(match.group(1)) in _MONTHS:
        pairs.append((_MONTHS[_fold(match.group(1))], int(match.group(2))))
    for month, day in pairs:
        try:
            date(2000, month, day)  # a leap year: 29 February is a birthday
        except ValueError:
            continue
        return True
    return False


def parse_birth_date(value: str, *, today: date) -> date:
    """A birth date: ISO (1990-05-17), or as ``read_date`` reads one (17.05.1990, 17 May 1990, slashes when
    unambiguous).

    ``03/04/2001`` is refused rather than guessed: the children rule depends on the exact date. A placeholder for
    none or a birthday without its year raises ``BIRTH_DATE_INCOMPLETE``, which the caller leaves out with a note.
    """
    text = value.strip()
    if _NO_DATE.fullmatch(text):
        raise NormalizationError("birth_date", BIRTH_DATE_INCOMPLETE, "a placeholder for no date; left out")
    if _yearless(text):
        raise NormalizationError("birth_date", BIRTH_DATE_INCOMPLETE, "a birthday without its year; left out")
    try:
        parsed = date.fromisoformat(text[:10]) if re.fullmatch(r"\d{4}-\d{2}-\d{2}(?:[T ].*)?", text) else None
    except ValueError:
        raise NormalizationError("birth_date", "invalid_birth_date", "not a calendar date") from None
    if parsed is None:
        try:
            parsed = read_date(text)[0]
        except NormalizationError as exc:
            if exc.reason == "ambiguous_date":
                raise NormalizationError(
                    "birth_date", "ambiguous_birth_date", "day and month order is ambiguous; use YYYY-MM-DD"
                ) from None
            raise NormalizationError("birth_date", "invalid_birth_date", "not a date (use YYYY-MM-DD)") from None
    if parsed > today or parsed.year < today.year - 150:
        raise NormalizationError("birth_date", "invalid_birth_date", "not a plausible birth date")
    return parsed
