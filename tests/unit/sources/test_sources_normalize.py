"""Normalisation helpers: the canonical forms every adapter relies on for identity and the retention rules."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from pipeline import normalize
from pipeline.models.common import Channel
from pipeline.normalize import NormalizationError
from pipeline.sources.base import PHONE_INVALID, Problem, SourceContext, build_person, parse_timestamp


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Jürgen   Müller ", "Jürgen Müller"),
        ("Jo\u0308rg", "Jörg"),  # decomposed umlaut becomes NFC
        ("Anna\u200b Maria", "Anna Maria"),
        ("\t\n", None),
    ],
)
def test_names_are_trimmed_nfc_and_collapsed(raw: str, expected: str | None) -> None:
    assert normalize.normalize_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "first", "last"),
    [
        ("Smith, John", "John", "Smith"),
        ("Jean-Luc de la Cruz", "Jean-Luc", "de la Cruz"),
        ("Dr. Anna Kowalska", "Anna", "Kowalska"),
        ("Prof. Dr. Hans Meier", "Hans", "Meier"),
        ("Prof. Dr. med. Anna Schmidt", "Anna", "Schmidt"),
        ("Dr. rer. nat. Jan Wolf", "Jan", "Wolf"),
        ("Dr. Phil Jones", "Phil", "Jones"),  # a field of study only with its period
        ("Dra. Ana Ruiz", "Ana", "Ruiz"),
        ("Dott.ssa Giulia Bianchi", "Giulia", "Bianchi"),
        ("Maître Paul Durand", "Paul", "Durand"),
        ("Dr. Smith", None, "Smith"),  # a form of address before one name: the family name
        ("Robert (Bob) Smith", "Robert", "Smith"),  # a nickname is no part of the family name
        ('Robert "Bob" Smith', "Robert", "Smith"),
        ("Jane Doe (Acme)", "Jane", "Doe"),  # nor a note after the name
        ("Mrs Patel", None, "Patel"),
        ("Cher", "Cher", None),
        ("Петров Иван Иванович", "Иван Иванович", "Петров"),  # ФИО: family, given, patronymic
        ("Анна Сергеевна Иванова", "Анна Сергеевна", "Иванова"),  # given, patronymic, family
        ("Ivan Ivanovich Petrov", "Ivan Ivanovich", "Petrov"),
        ("John Paul Abramovich", "John", "Paul Abramovich"),  # a Latin-script surname in -ovich: no ФИО
        ("山田 太郎", "太郎", "山田"),  # written in Han/kana/Hangul: the family name first
        ("김 민수", "민수", "김"),
        ("王　小明", "小明", "王"),  # the ideographic space too
        ("山田太郎", "山田太郎", None),  # no space: where the family name ends is not known
        ("Taro Yamada", "Taro", "Yamada"),  # in Latin letters the given name comes first
        ("ジョン・スミス", "ジョン・スミス", None),
        ("Jane Doe, MBA", "Jane", "Doe"),  # a degree after a comma: no "Last, First"
        ("John Smith, PhD", "John", "Smith"),
        ("John Smith, Jr.", "John", "Smith"),
        ("Doe, Jane, Ph.D.", "Jane", "Doe"),
        ("Li, Ma", "Ma", "Li"),  # a given name, not a degree in capitals
        ("J. Smith", "J.", "Smith"),  # an initial is no family name written in capitals
        ("A. R. Rahman", "A.", "R. Rahman"),
        ("LI Wei", "Wei", "LI"),  # a family name in capitals, however short
        ("Dr.-Ing. Hans Müller", "Hans", "Müller"),  # titles of German, Austrian, Czech, Indian, Arab offices
        ("Dipl.-Kfm. Peter Schulz", "Peter", "Schulz"),
        ("Univ.-Prof. Anna Berger", "Anna", "Berger"),
        ("MUDr. Jan Novák", "Jan", "Novák"),
        ("Eng. Ahmed Hassan", "Ahmed", "Hassan"),
        ("Shri Ravi Kumar", "Ravi", "Kumar"),
        ("M. Dupont", None, "Dupont"),  # Monsieur is written with its full stop
        ("M Ali Khan", "M", "Ali Khan"),  # without it, an initial
    ],
)
def test_full_names_split(raw: str, first: str, last: str | None) -> None:
    assert normalize.split_full_name(raw) == (first, last)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("John.Smith", "john.smith"),
        ("skype:John.Smith?call", "john.smith"),
        ("Live:.cid.3F2A9B", "live:.cid.3f2a9b"),
        ("live: jane_doe", "live:jane_doe"),
    ],
)
def test_skype_ids_are_canonical_and_keep_the_live_prefix(raw: str, expected: str) -> None:
    assert normalize.canonical_skype(raw) == expected


@pytest.mark.parametrize("raw", ["", "a", "not a skype id!", "x" * 101])
def test_bad_skype_ids_are_refused(raw: str) -> None:
    with pytest.raises(NormalizationError) as err:
        normalize.canonical_skype(raw)
    assert err.value.reason == "invalid_skype_id"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("linkedin.com/in/lisaschmidt", "https://www.linkedin.com/in/lisaschmidt"),
        (
            "https://uk.linkedin.com/in/Priya-Raman-42/?originalSubdomain=uk",
            "https://www.linkedin.com/in/priya-raman-42",
        ),
        ("http://www.linkedin.com/in/j%C3%BCrgen-m%C3%BCller", "https://www.linkedin.com/in/j%C3%BCrgen-m%C3%BCller"),
        ("https://m.linkedin.com/in/jürgen-müller#about", "https://www.linkedin.com/in/j%C3%BCrgen-m%C3%BCller"),
    ],
)
def test_linkedin_urls_are_canonical(raw: str, expected: str) -> None:
    assert normalize.canonical_linkedin(raw) == expected


@pytest.mark.parametrize("raw", ["https://www.linkedin.com/company/acme", "https://example.com/in/x", "lisa"])
def test_non_profile_linkedin_urls_are_refused(raw: str) -> None:
    with pytest.raises(NormalizationError):
        normalize.canonical_linkedin(raw)


@pytest.mark.parametrize(
    ("location", "code"),
    [
        ("Berlin, Germany", "DE"),
        ("München, Deutschland", "DE"),
        ("Austin, TX", "US"),
        ("San Francisco, CA", "US"),  # a US state code, not Canada
        ("Toronto, ON", "CA"),
        ("London, UK", "GB"),
        ("Москва, Россия", "RU"),
        ("São Paulo, Brasil", "BR"),  # another language's name, from pycountry's ISO 3166 translations
        ("東京, 日本", "JP"),
        ("Norfolk, VA", "US"),  # a state code is read before other languages' names (one names Norfolk Island so)
        ("Austin, Texas", "US"),  # a state's or province's name
        ("Ontario", "CA"),
        ("Georgia", "GE"),  # the country's name first
        ("Berlin", None),
        (None, None),
    ],
)
def test_country_from_location(location: str | None, code: str | None) -> None:
    assert normalize.country_from_location(location) == code


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("de", "DE"),
        ("DEU", "DE"),
        ("United Kingdom", "GB"),
        ("Turkey", "TR"),
        ("Atlantis", None),
        ("Brasil", "BR"),
        ("Deutschland", "DE"),
        ("ESPAÑA", "ES"),
        ("Sverige", "SE"),
        ("日本", "JP"),
        ("대한민국", "KR"),
        ("Ελλάδα", "GR"),
        ("Việt Nam", "VN"),
        ("Mexico", "MX"),  # one catalog gives "Mexico" as Malaysia's name: English comes first, the clash is left out
        # typed without the vowel marks the Arabic catalog writes ("السّعوديّة"), with another alef or yeh
        ("المملكة العربية السعودية", "SA"),
        ("الإمارات العربية المتحدة", "AE"),
        ("الامارات", "AE"),
        ("ශ්‍රී ලංකාව", "LK"),  # with the zero-width joiner typed text has and the catalog has not
        ("ประเทศไทย", "TH"),
        ("한국", "KR"),
        ("Turkiye", "TR"),
        ("Cote d'Ivoire", "CI"),  # an ASCII-only export's spelling
        ("Curacao", "CW"),
        ("Netherlands, The", "NL"),
        ("The Bahamas", "BS"),
        ("Korea, South", "KR"),
        ("Hong Kong SAR", "HK"),
        ("P.R. China", "CN"),
        ("Lao PDR", "LA"),
        ("Theland", None),
        ("Democratic Republic of the Congo", "CD"),
        ("DR Congo", "CD"),
        ("Bosnia & Herzegovina", "BA"),
        ("Trinidad & Tobago", "TT"),
        ("Côte d\u2019Ivoire", "CI"),  # a word processor's apostrophe
        ("Etats-Unis", "US"),  # French without its accent
    ],
)
def test_country_field(value: str, code: str | None) -> None:
    assert normalize.country_code(value) == code


def test_a_name_two_catalogs_give_different_countries_names_none() -> None:
    names = normalize._localized_country_names()
    assert "brasil" in names and "mexico" not in names  # only in the catalog that maps it to Malaysia


def test_a_national_number_takes_the_country_named_in_another_language() -> None:
    region = normalize.country_code("Brasil")
    assert normalize.canonical_phone("(11) 91234-5678", region, require_valid=True) == "+5511912345678"


def test_phone_without_prefix_takes_the_country_of_the_location() -> None:
    region = normalize.country_from_location("Berlin, Germany")
    assert normalize.canonical_phone("030 1234567", region) == "+49301234567"
    with pytest.raises(NormalizationError, match="no country prefix"):
        normalize.canonical_phone("030 1234567", None)


@pytest.mark.parametrize(
    ("email", "number", "region"),
    [
        ("jan@firma.de", "0171 2345678", "DE"),
        ("Jane@Shop.CO.UK", "07400 123456", "GB"),
        ("kenji@example.co.jp", "03-1234-5678", "JP"),
        ("marco@azienda.it", "347 123 4567", "IT"),  # Italy has no trunk prefix
        ("jane@example.de", "(415) 555-0132", None),  # not written as Germany writes its numbers
        ("joe@example.com", "0171 2345678", None),
        ("ceo@startup.io", "0171 2345678", None),  # a brand domain: says nothing of the country
        ("ana@empresa.co", "0171 2345678", None),
        ("info@agency.eu", "0171 2345678", None),
        ("no-address", "0171 2345678", None),
        (None, "0171 2345678", None),
    ],
)
def test_an_addresss_country_domain_is_a_phone_region(email: str | None, number: str, region: str | None) -> None:
    assert normalize.region_of_address(email, number) == region


def test_a_national_number_beside_a_country_domain_address_is_read_in_that_country() -> None:
    """An export without a country column: the German address's mobile is kept (it was left out: no prefix), the
    person's country is not claimed from the domain, and a number not valid there is still left out."""
    ctx = SourceContext.for_payload(
        b"", source_id="import", channel=Channel.CUSTOMER, content_type="text/csv",
        received_at=datetime(2025, 6, 1, tzinfo=UTC), pepper=b"p" * 32,
    )  # fmt: skip
    problems: list[Problem] = []
    person, _ = build_person({"email": "john@example.de", "phone": "0171 2345678"}, ctx, problems)
    assert person["phone"] == "+491712345678" and "country_code" not in person and not problems
    person, _ = build_person({"email": "jane@example.de", "phone": "(415) 555-0132"}, ctx, problems)
    assert "phone" not in person and [p.reason for p in problems] == [PHONE_INVALID]
    person, _ = build_person({"email": "ceo@startup.io", "phone": "0171 2345678"}, ctx, [])
    assert "phone" not in person


@pytest.mark.parametrize(
    ("value", "region", "e164"),
    [
        ("447400123456", None, "+447400123456"),  # a spreadsheet dropped the plus of +44 7400 123456
        ("447400123456", "GB", "+447400123456"),
        ("1 415 555 2671", None, "+14155552671"),
        ("491712345678", "GB", "+491712345678"),  # not a British number; with the plus back a German one
        ("+52 1 55 1234 5678", None, "+525512345678"),  # a Mexican mobile as dialled from abroad before 2019
        ("+52 1 55 1234 5678", "MX", "+525512345678"),
    ],
)
def test_an_international_number_that_lost_its_plus_is_read_with_it(value: str, region: str | None, e164: str) -> None:
    assert normalize.canonical_phone(value, region, require_valid=True) == e164


@pytest.mark.parametrize(
    ("value", "region", "e164"),
    [
        ("07400 123456 (mobile)", "GB", "+447400123456"),  # letters were read as a vanity number's digits
        ("+49 171 2345678 mobil", None, "+491712345678"),
        ("+49 30 1234567 (Zentrale)", None, "+49301234567"),
        ("+49 (0)171 2345678 - privat", None, "+491712345678"),
        ("+33 6 12 34 56 78 / +33 1 23 45 67 89", None, "+33612345678"),  # two numbers: the first
        ("030/1234567 oder 0171 2345678", "DE", "+49301234567"),
        ("030 / 1234567", "DE", "+49301234567"),  # an area code's slash is no second number
        ("+1-800-FLOWERS", None, "+18003569377"),  # a vanity number stays one
    ],
)
def test_a_phone_field_s_label_or_second_number_is_left_out(value: str, region: str | None, e164: str) -> None:
    assert normalize.canonical_phone(value, region, require_valid=True) == e164


@pytest.mark.parametrize(
    ("value", "region", "e164"),
    [
        ("+49 89 1234567 privat", None, "+49891234567"),  # valid with "privat" as keypad digits too
        ("030 1234567 Fax", "DE", "+49301234567"),
        ("+49 30 123456 Tel", None, "+4930123456"),
        ("+49 6221 12345 gesch", None, "+49622112345"),
        ("+49 89 1234567 App. 12", None, "+49891234567"),  # an extension, as libphonenumber reads "ext. 12"
        ("+49 89 1234567 Durchwahl: 12 privat", None, "+49891234567"),
        ("+49 89 1234567 ext. 12", None, "+49891234567"),
        ("1 800 FLOWERS", "US", "+18003569377"),  # no valid number without the letters: a vanity number
    ],
)
def test_a_label_after_a_number_that_stays_valid_with_it_is_left_out(value: str, region: str | None, e164: str) -> None:
    assert normalize.canonical_phone(value, region, require_valid=True) == e164


@pytest.mark.parametrize(
    ("value", "region", "e164"),
    [
        ("001 212 736 5000", "US", "+12127365000"),
        ("007 916 123 45 67", "RU", "+79161234567"),
        ("0055 11 91234 5678", "BR", "+5511912345678"),
        ("0061 2 9374 4000", "AU", "+61293744000"),
        ("0049 30 1234567", "US", "+49301234567"),
    ],
)
def test_the_international_prefix_00_is_read_whatever_the_country(value: str, region: str, e164: str) -> None:
    assert normalize.canonical_phone(value, region, require_valid=True) == e164


def test_a_00_number_that_is_not_valid_with_a_plus_stays_refused() -> None:
    with pytest.raises(NormalizationError):
        normalize.canonical_phone("00 12 345", "US", require_valid=True)


def test_google_contacts_second_phone_number_is_left_out() -> None:
    assert normalize.canonical_phone("050 123 4567 ::: +971 4 123 4567", "AE", require_valid=True) == "+971501234567"


def test_a_mexican_number_that_is_none_without_its_old_mobile_1_stays_refused() -> None:
    with pytest.raises(NormalizationError, match="not a possible phone number"):
        normalize.canonical_phone("+52 1 00 1234 5678", None, require_valid=True)


@pytest.mark.parametrize("value", ["12345678", "999999999999", "0447400123456", "1234"])
def test_digits_that_are_no_valid_number_with_a_plus_stay_refused(value: str) -> None:
    with pytest.raises(NormalizationError, match="no country prefix") as err:
        normalize.canonical_phone(value, None, require_valid=True)
    assert err.value.reason == "invalid_phone"


@pytest.mark.parametrize(("value", "age"), [("17", 17), (17, 17), ("17 years", 17), ("42 Jahre", 42), (16.0, 16)])
def test_stated_age(value: object, age: int) -> None:
    assert normalize.parse_stated_age(value) == age


@pytest.mark.parametrize(
    ("value", "age"),
    [
        ("15歳", 15),
        ("17 años", 17),
        ("16 лет", 16),
        ("15세", 15),
        # a bracket a form offers: the youngest age it takes in
        ("25-34", 25),
        ("25 \u2013 34 Jahre", 25),  # an en dash
        ("18〜24", 18),
        ("16 to 24", 16),
        ("13-17", 13),
        ("65+", 65),
        ("65 years and over", 65),
        ("60歳以上", 60),
        ("20代", 20),
        ("Under 18", 0),
        ("unter 16", 0),
        ("18歳未満", 0),
        ("19세 미만", 0),
    ],
)
def test_stated_ages_and_brackets_as_forms_in_other_languages_write_them(value: str, age: int) -> None:
    assert normalize.parse_stated_age(value) == age


@pytest.mark.parametrize("value", ["seventeen", "-3", "200", True, 17.5, "18-", "+5", "5++", "abc 16", "1-2-3"])
def test_bad_stated_age(value: object) -> None:
    with pytest.raises(NormalizationError):
        normalize.parse_stated_age(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2009-03-04", date(2009, 3, 4)),
        ("04.03.2009", date(2009, 3, 4)),
        ("25/12/2008", date(2008, 12, 25)),
        ("12/25/2008", date(2008, 12, 25)),
        ("2009-03-04T00:00:00Z", date(2009, 3, 4)),
    ],
)
def test_birth_dates(value: str, expected: date) -> None:
    assert normalize.parse_birth_date(value, today=date(2024, 6, 6)) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("03/04/2009", "ambiguous_birth_date"),
        ("2030-01-01", "invalid_birth_date"),
        ("31.02.2000", "invalid_birth_date"),
        ("soon", "invalid_birth_date"),
    ],
)
def test_bad_birth_dates(value: str, reason: str) -> None:
    with pytest.raises(NormalizationError) as err:
        normalize.parse_birth_date(value, today=date(2024, 6, 6))
    assert err.value.reason == reason


def test_invalid_email_message_does_not_quote_the_address() -> None:
    with pytest.raises(NormalizationError) as err:
        normalize.canonical_email("tom.secret@@example")
    assert "tom.secret" not in str(err.value) and "'" not in str(err.value)


def test_clean_text_cuts_long_text_with_a_marker() -> None:
    text = normalize.clean_text("a" * 100, 50)
    assert text is not None and len(text) == 50 and text.endswith("[truncated]")
    assert normalize.clean_text("line1\r\nline2\x00\x85", 50) == "line1\nline2"


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ('"Books@Books"@example.com', '"Books@Books"@example.com'),  # RFC 5321 quoted local part, kept quoted
        ('"john smith"@Example.COM', '"john smith"@example.com'),
        ('"ana"@example.com', "ana@example.com"),  # quotes that quote nothing are dropped
        ("ana@docs.example", "ana@docs.example"),  # documentation names stay accepted (RFC 6761 6.5)
    ],
)
def test_quoted_local_parts_are_valid_addresses(raw: str, canonical: str) -> None:
    assert normalize.canonical_email(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("Jane Doe <Jane@Example.COM>", "Jane@example.com"),  # an address book's or a mail client's copy
        ('"Doe, Jane" <jane@example.com>', "jane@example.com"),
        ("<jane@example.com>", "jane@example.com"),
        ("mailto:jane@example.com", "jane@example.com"),
        ("MAILTO:jane@example.com?subject=Quote", "jane@example.com"),
        ("a?b@example.com", "a?b@example.com"),  # a question mark is a letter of a local part, not a query
        ("jane@example.com.", "jane@example.com"),  # the end of the sentence it was typed in
        ("jane@example.com;", "jane@example.com"),
        ("jane@example.com, ", "jane@example.com"),
        ("\u200bjane@example.com\u200b", "jane@example.com"),  # copied from a web page
        ("\ufeffjane@exam\u00adple.com", "jane@example.com"),  # a spreadsheet's byte-order mark, a soft hyphen
        ("jane@example.com\u200e", "jane@example.com"),  # the direction mark of a right-to-left page
        ("jane@work.example, jane@home.example", "jane@work.example"),  # two in one field: the first
        ("jane@work.example or jane@home.example", "jane@work.example"),
        ("jane@work.example jane@home.example", "jane@work.example"),
        ("Jane Doe <jane@work.example>, Bob <bob@work.example>", "jane@work.example"),
        ("joao@exemplo.com.br ::: joao.silva@gmail.com", "joao@exemplo.com.br"),  # Google Contacts' two values
        ("José García <jose@empresa.es>", "jose@empresa.es"),  # a display name the validator refuses unquoted
        ("山田太郎 <taro@example.co.jp>", "taro@example.co.jp"),
        ("Doe, Jane <jane@example.com>", "jane@example.com"),
    ],
)
def test_an_address_field_s_everyday_forms_give_the_address(raw: str, canonical: str) -> None:
    assert normalize.canonical_email(raw) == canonical


def test_a_refusal_of_a_very_short_value_keeps_its_words() -> None:
    with pytest.raises(NormalizationError) as err:
        normalize.canonical_email("a")
    assert "must have an @-sign" in str(err.value)


@pytest.mark.parametrize(
    "raw",
    ["jdoe@corp.local", "jdoe@printer.localhost", "jdoe@localhost", "jdoe@shop.test", "jdoe@nowhere.invalid",
     "jdoe@abc.onion", "jdoe@router.home.arpa", "jdoe@intranet.internal", "jdoe@name.alt", "JDoe@Corp.LOCAL."],
)  # fmt: skip
def test_reserved_domains_have_their_own_reason(raw: str) -> None:
    with pytest.raises(NormalizationError) as err:
        normalize.canonical_email(raw)
    assert err.value.reason == "reserved_email_domain"
    assert "jdoe" not in str(err.value).lower()


@pytest.mark.parametrize(
    "raw", ["no-at-sign", "a@b", "a b@corp.local", "a@-x.local", "a@@corp.local", "a@@b.com, c@d.com", "a.@b.com."]
)
def test_malformed_addresses_stay_invalid_email(raw: str) -> None:
    with pytest.raises(NormalizationError) as err:
        normalize.canonical_email(raw)
    assert err.value.reason == "invalid_email"


def test_the_domain_check_is_memoised_and_still_refuses() -> None:
    """canonical_email keeps email-validator's domain verdicts (pipeline/normalize.py): the name it wraps exists,
    a good domain is checked once, and a bad one still raises every time (errors are not kept)."""
    import importlib

    checker = importlib.import_module("email_validator.validate_email").validate_email_domain_name
    assert hasattr(checker, "cache_info")
    before = checker.cache_info()
    for _ in range(3):
        assert normalize.canonical_email("Ana@Memo-Check.Example.org") == "Ana@memo-check.example.org"
    after = checker.cache_info()
    assert after.misses - before.misses == 1 and after.hits - before.hits == 2
    for _ in range(2):
        with pytest.raises(normalize.NormalizationError):
            normalize.canonical_email("ana@bad_domain..example")


def test_a_visitor_key_is_a_keyed_hash_of_the_cookie_id_of_its_own_kind() -> None:
    key = normalize.visitor_key(b"pepper", " 507f191e810c19729de860ea ")
    assert key == normalize.visitor_key(b"pepper", "507f191e810c19729de860ea")  # surrounding blanks ignored
    assert key.startswith("vk_") and len(key) == 43 and normalize.is_visitor_key(key)
    assert "507f191e" not in key
    assert key != normalize.visitor_key(b"other-pepper", "507f191e810c19729de860ea")
    assert normalize.visitor_key(b"pepper", "Abc") != normalize.visitor_key(b"pepper", "abc")  # ids are case-sensitive
    person = normalize.subject_key(b"pepper", email="a@example.com")
    assert not normalize.is_visitor_key(person)


@pytest.mark.parametrize("raw", ["", "   ", "two words", "x" * 201, "zero\x00byte", "é"])
def test_what_is_not_a_visitor_id_is_refused(raw: str) -> None:
    with pytest.raises(normalize.NormalizationError) as err:
        normalize.visitor_key(b"pepper", raw)
    assert err.value.reason == "invalid_visitor_id" and err.value.field == "visitor_id"


@pytest.mark.parametrize(
    ("first", "last", "full", "expected"),
    [
        ("John", "Smith", "ignored", ("John", "Smith")),
        (None, None, "Smith, John", ("John", "Smith")),
        ("John", None, "John Smith", ("John", "Smith")),  # the name field repeats the first name
        ("Jürgen", None, "Müller", ("Jürgen", "Müller")),  # German "Vorname" + "Name": Name is the surname
        (None, "Rossi", "Mario", ("Mario", "Rossi")),  # Italian "Nome" + "Cognome"
        (None, "García López", "Ana María García López", ("Ana María", "García López")),
        ("John", None, "Dr. John Smith", ("John", "Smith")),
        ("John", None, "JOHN", ("John", None)),
        ("John", None, "Smith, John", ("John", "Smith")),
        (None, "Smith", None, (None, "Smith")),
    ],
)
def test_person_name_completes_one_part_from_the_name_field(
    first: str | None, last: str | None, full: str | None, expected: tuple[str | None, str | None]
) -> None:
    assert normalize.person_name(first, last, full) == expected


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("U.S.A.", "US"),
        ("U.K.", "GB"),
        ("U.A.E.", "AE"),
        ("Emirates", "AE"),
        ("KSA", "SA"),
        ("Republic of Korea", "KR"),
        ("Cape Verde", "CV"),
        ("Eire", "IE"),
    ],
)
def test_everyday_country_names_and_dotted_abbreviations(given: str, code: str) -> None:
    """ "U.S.A." was listed as an alias but never matched: the lookup drops a trailing dot, the table kept it."""
    assert normalize.country_code(given) == code
    assert normalize.country_from_location(f"Springfield, {given}") == code


def test_an_address_typed_in_fullwidth_forms_is_read() -> None:
    """A Japanese or Chinese input method types ASCII as fullwidth forms (U+FF01-U+FF5E): the address they stand
    for."""
    fullwidth = "jane.doe@example.co.jp".translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    assert fullwidth != "jane.doe@example.co.jp" and fullwidth.isprintable()
    assert normalize.canonical_email(fullwidth) == "jane.doe@example.co.jp"
    assert normalize.canonical_email("山田@例え.jp") == "山田@xn--r8jz45g.jp"  # other characters are left as they are


@pytest.mark.parametrize(
    ("full", "first", "last"),
    [
        ("김민준", "민준", "김"),  # a Korean name without a space: the family name is its first syllable
        ("남궁민수", "민수", "남궁"),  # or one of the few two-syllable family names
        ("DUPONT Jean-Pierre", "Jean-Pierre", "DUPONT"),  # the family name in capitals first, as French forms ask
        ("YAMADA Taro", "Taro", "YAMADA"),
        ("VAN DER BERG Anna", "Anna", "VAN DER BERG"),
        ("Jean DUPONT", "Jean", "DUPONT"),
        ("JOHN SMITH", "JOHN", "SMITH"),  # all in capitals: the order as written
        ("山田太郎", "山田太郎", None),  # Han without a space: the split is not known
    ],
)
def test_full_names_written_family_name_first(full: str, first: str, last: str | None) -> None:
    assert normalize.split_full_name(full) == (first, last)


@pytest.mark.parametrize(
    ("written", "iso"),
    [
        ("05 Jun 2024", "2024-06-05T00:00:00+00:00"),
        ("June 5, 2024", "2024-06-05T00:00:00+00:00"),
        ("Wednesday, June 5th, 2024", "2024-06-05T00:00:00+00:00"),
        ("5. Juni 2024", "2024-06-05T00:00:00+00:00"),
        ("1er juin 2024", "2024-06-01T00:00:00+00:00"),
        ("5 de junio de 2024", "2024-06-05T00:00:00+00:00"),
        ("3 março 2024", "2024-03-03T00:00:00+00:00"),
        ("5-Jun-24", "2024-06-05T00:00:00+00:00"),
        ("2024/06/05", "2024-06-05T00:00:00+00:00"),
        ("2024年6月5日", "2024-06-05T00:00:00+00:00"),
        ("13/06/2024", "2024-06-13T00:00:00+00:00"),
        ("06/13/2024 2:30 PM", "2024-06-13T14:30:00+00:00"),
        ("Wed, 05 Jun 2024 10:00:00 +0200", "2024-06-05T08:00:00+00:00"),  # RFC 2822, as mail headers write it
    ],
)
def test_dates_as_people_and_spreadsheets_write_them(written: str, iso: str) -> None:
    problems: list[Problem] = []
    found = parse_timestamp(written, "event_date", problems)
    assert (found.isoformat() if found else None, problems) == (iso, [])


@pytest.mark.parametrize(
    ("written", "reason"),
    [("06/05/2024", "ambiguous_date"), ("31/02/2024", "invalid_timestamp"), ("next Tuesday", "invalid_timestamp")],
)
def test_a_date_that_could_be_two_or_none_is_refused(written: str, reason: str) -> None:
    """06/05/2024 is 6 May in Europe and 5 June in the US: refused with a way to write it, never guessed."""
    problems: list[Problem] = []
    assert parse_timestamp(written, "event_date", problems) is None
    assert [(p.reason, p.field) for p in problems] == [(reason, "event_date")]


def test_a_birth_date_is_read_the_same_way() -> None:
    assert normalize.parse_birth_date("17 May 1990", today=date(2024, 6, 5)) == date(1990, 5, 17)
    with pytest.raises(normalize.NormalizationError) as err:
        normalize.parse_birth_date("03/04/2001", today=date(2024, 6, 5))
    assert err.value.reason == "ambiguous_birth_date"


@pytest.mark.parametrize(
    ("first", "last", "full"),
    [("Info Requested", "Info Requested", None), ("N/A", "n/a", None), (None, None, "Unknown"), ("-", None, None)],
)
def test_a_placeholder_where_no_name_was_given_is_no_name(
    first: str | None, last: str | None, full: str | None
) -> None:
    """Eventbrite writes "Info Requested" for an attendee whose buyer alone answered: it became their name."""
    assert normalize.person_name(first, last, full) == (None, None)
    assert normalize.person_name("Ana", "Info Requested", None) == ("Ana", None)
