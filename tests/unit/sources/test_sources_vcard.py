"""vCard reading (``pipeline.sources.vcard``): what each exporter's cards give, and refusals that name the line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.sources import SourceError
from pipeline.sources.vcard import card_fields, read_vcards, split_vcards, with_fields


def card(*lines: str, version: str = "3.0") -> str:
    return "\r\n".join(["BEGIN:VCARD", f"VERSION:{version}", *lines, "END:VCARD"]) + "\r\n"


def test_the_preferred_email_and_phone_win_over_the_first() -> None:
    fields = card_fields(
        card(
            "N:Doe;Jane;;;",
            "EMAIL;TYPE=home:jane@home.example",
            "EMAIL;TYPE=work,pref:jane@work.example",
            "TEL;TYPE=work:+1 212 555 0100",
            "TEL;TYPE=cell;TYPE=pref:+1 917 555 0199",
        )
    )
    assert (fields["email"], fields["phone"]) == ("jane@work.example", "+1 917 555 0199")


def test_vcard_21_bare_parameters_and_latin1_quoted_printable() -> None:
    text = card(
        "N;CHARSET=ISO-8859-1;ENCODING=QUOTED-PRINTABLE:Lef=E8vre;Ren=E9;;;",
        "TEL;HOME:01 23 45 67 89",
        "TEL;CELL;PREF:06 12 34 56 78",
        "ADR;WORK;CHARSET=ISO-8859-1;ENCODING=QUOTED-PRINTABLE:;;1 rue de la Paix;Paris;;75002;France",
        version="2.1",
    )
    fields = card_fields(text)
    assert (fields["first_name"], fields["last_name"]) == ("René", "Lefèvre")
    assert fields["phone"] == "06 12 34 56 78"
    assert (fields["location"], fields["country"]) == ("Paris", "France")


def test_a_windows_1252_file_is_read() -> None:
    raw = card("N:Muñoz;José;;;", "EMAIL:jose@example.es").encode("cp1252")
    [(_, fields)] = read_vcards(raw)
    assert (fields["first_name"], fields["last_name"]) == ("José", "Muñoz")


def test_a_japanese_phone_s_vcard_in_the_shift_jis_its_properties_declare() -> None:
    """vCard 2.1 from a Japanese phone: raw Shift_JIS bytes under ``CHARSET=SHIFT_JIS`` (no quoted-printable). The
    file was read as Windows-1252 (its few Japanese bytes did not make it look like another code page): names and
    address were mojibake and the country unknown, so the national number was dropped too."""
    raw = card(
        "N;CHARSET=SHIFT_JIS:山田;花子;;;",
        "TEL;CELL:090-1111-2222",
        "EMAIL:hanako@example.co.jp",
        "ADR;HOME;CHARSET=SHIFT_JIS:;;千代田1-1;千代田区;東京都;100-0001;日本",
        version="2.1",
    ).encode("cp932")
    [(_, fields)] = read_vcards(raw)
    assert (fields["first_name"], fields["last_name"], fields["country"]) == ("花子", "山田", "日本")


def test_binary_properties_are_left_out_even_when_broken() -> None:
    """A truncated photo would make the parser refuse the card; leadpipe keeps no photo, so it never sees one."""
    text = card(
        "FN:Jane Doe",
        "EMAIL:jane@example.com",
        "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRg",
        " ABAQAAAQABAAD",
        "item1.LOGO;VALUE=uri:https://example.com/logo.png",
        "KEY;ENCODING=b:MIICajCCAdOgAwIBAgICBE",
    )
    assert card_fields(text) == {"full_name": "Jane Doe", "email": "jane@example.com"}


def test_fields_from_uris_social_profiles_and_x_properties() -> None:
    fields = card_fields(
        card(
            "FN:Ana García",
            "TEL;VALUE=uri:tel:+34-600-123-456;ext=12",
            "URL:https://www.linkedin.com/in/anagarcia",
            "X-SKYPE-USERNAME:ana.g",
            "X-CUSTOMER-ID:K-1001",
            "X-ABLabel:_$!<Other>!$_",
            "BDAY:--0415",
            version="4.0",
        )
    )
    assert fields == {
        "full_name": "Ana García",
        "phone": "+34-600-123-456",
        "linkedin_url": "https://www.linkedin.com/in/anagarcia",
        "skype_id": "ana.g",
        "customer_id": "K-1001",
        "birth_date": "--04-15",  # without a year: build_person leaves it out with a note
    }


def test_with_fields_adds_only_what_the_card_lacks_and_round_trips() -> None:
    text = card("N:Doe;Jane;;;", "EMAIL:jane@example.com", "X-EVENT-DATE:2024-05-20")
    filled = with_fields(text, {"event_date": "2024-05-14", "Event Name": "Expo, Berlin; 2024\nHall 3"})
    assert filled.endswith("END:VCARD\r\n") and filled.count("EVENT-DATE") == 1
    assert card_fields(filled)["event_date"] == "2024-05-20"  # the card's own date is kept
    assert card_fields(filled)["event_name"] == "Expo, Berlin; 2024\nHall 3"
    assert with_fields(text, {"event_date": "2024-05-14"}) == text


def test_a_default_named_in_another_script_is_added_under_an_ascii_name() -> None:
    text = card("N:Doe;Jane;;;", "EMAIL:jane@example.com")
    filled = with_fields(text, {"Компания": "Газпром", "Заметка": "x"})  # a known field, and one leadpipe does not read
    assert "X-COMPANY:Газпром" in filled and card_fields(filled)["company"] == "Газпром"
    assert all(line.isascii() for line in (row.partition(":")[0] for row in filled.splitlines()))


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [
        (b"", "empty_payload", None),
        (b"Name,Email\nJane,jane@example.com\n", "empty_payload", None),
        (b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Jane\r\n", "malformed_vcard", "line 1"),
        (b"BEGIN:VCARD\r\nFN:A\r\nBEGIN:VCARD\r\nFN:B\r\nEND:VCARD\r\n", "malformed_vcard", "line 1"),
    ],
)
def test_what_is_not_a_vcard_document_is_refused(raw: bytes, reason: str, field: str | None) -> None:
    with pytest.raises(SourceError) as err:
        split_vcards(raw)
    assert (err.value.reason, err.value.field) == (reason, field)


def test_an_unreadable_card_names_its_line_without_quoting_it() -> None:
    raw = (
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nEMAIL:a@b.example\r\nEND:VCARD\r\n"
        + card("N:Doe;Jane", "EMAIL;ENCODING=b:@@@ not base64 jane@example.com").encode()
    )
    cards = split_vcards(raw)
    assert [line for line, _ in cards] == [1, 5]
    with pytest.raises(SourceError) as err:
        card_fields(cards[1][1], cards[1][0])
    assert (err.value.reason, err.value.field) == ("malformed_vcard", "line 5")
    assert "jane" not in err.value.message


_names = st.sampled_from(
    ["N", "FN", "EMAIL", "TEL", "ADR", "ORG", "BDAY", "NOTE", "PHOTO", "X-EVENT-DATE", "IMPP", "URL"]
)
_params = st.sampled_from(
    ["", ";TYPE=pref", ";ENCODING=QUOTED-PRINTABLE", ";ENCODING=b", ";CHARSET=x-unknown", ";PREF=1"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_names, _params, st.text(max_size=40)), max_size=8), st.sampled_from(["2.1", "3.0", "4.0"]))
def test_any_card_gives_fields_or_a_malformed_vcard(props: list[tuple[str, str, str]], version: str) -> None:
    """Whatever a card's properties hold, reading it gives text fields or ``malformed_vcard``, never another error."""
    text = card(
        *(f"{name}{param}:{value}".replace("\r", " ").replace("\n", " ") for name, param, value in props),
        version=version,
    )
    try:
        fields = card_fields(text)
    except SourceError as exc:
        assert exc.reason == "malformed_vcard"
    else:
        assert all(isinstance(v, str) and v.strip() == v and v for v in fields.values())


def test_an_apple_address_without_a_country_name_takes_its_country_code() -> None:
    text = card(
        "N:Tanaka;Aiko;;;",
        "EMAIL:aiko@example.jp",
        "item1.ADR;type=WORK:;;1-1 Otemachi;Chiyoda-ku;;;",
        "item1.X-ABADR:jp",
    )
    assert card_fields(text)["country"] == "jp"
