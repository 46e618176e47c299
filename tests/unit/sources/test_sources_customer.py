"""Customer imports: CSV and JSON Lines with the last service delivery."""

from __future__ import annotations

import pytest
from source_payloads import ctx_for, payload

from pipeline.models.common import InteractionKind
from pipeline.sources import SourceError, customer
from pipeline.sources.base import decode_text
from pipeline.sources.fields import canonical_field


def parse(name: str):  # type: ignore[no-untyped-def]
    raw, content_type = payload("customer", name)
    return customer.parse(raw, ctx_for("customer", raw, content_type))


def test_customer_csv() -> None:
    emma, john, yuki = parse("customers.csv")
    assert emma.interaction.kind is InteractionKind.CUSTOMER_RECORD
    assert emma.interaction.last_service_delivery_at is not None
    assert emma.interaction.last_service_delivery_at.isoformat() == "2024-03-31T00:00:00+00:00"
    assert emma.person.phone == "+46812345678"
    assert emma.person.linkedin_url == "https://www.linkedin.com/in/emma-johansson"
    assert emma.person.company_address == "Storgatan 1, 111 22 Stockholm"
    assert (john.person.first_name, john.person.last_name) == ("John", "Smith")
    assert yuki.person.email is None and yuki.person.phone == "+81312345678"  # phone-only customers are fine


def test_customer_jsonl_names_the_line_without_a_delivery_date() -> None:
    with pytest.raises(SourceError) as err:
        parse("customers.jsonl")
    [problem] = err.value.problems
    assert (problem.field, problem.reason) == ("line 3.last_service_delivery", "missing_last_service_delivery")


def test_customer_json_array() -> None:
    raw = (
        b'[{"email": "a@example.com", "last_service_delivery": "2024-01-01"},'
        b' {"email": "b@example.com", "last_service_date": "2023-01-01"}]'
    )
    events = customer.parse(raw, ctx_for("customer", raw, "application/json"))
    assert [e.person.email for e in events] == ["a@example.com", "b@example.com"]


def test_csv_rows_are_named_by_the_line_they_start_on() -> None:
    raw = (
        b"Email,Notes,Last Service Delivery\n"
        b'a@example.com,"a note\nover two lines",2024-01-01\n'
        b"\n"
        b'bad@@mail,"and\nthree\nlines",2024-01-01\n'
    )
    with pytest.raises(SourceError) as err:
        customer.parse(raw, ctx_for("customer", raw, "text/csv"))
    assert err.value.field == "row 5.email"  # not row 7, where the record ends, nor "row 3" of the data rows


def test_a_german_spreadsheet_export_in_windows_1252_with_semicolons() -> None:
    raw = (
        "Kundennummer;Ansprechpartner;E-Mail;Telefon;Firma;Land;Last Service Delivery\r\n"
        "K-1;Jürgen Müller;jm@beispiel.de;030 1234567;Müller GmbH;Deutschland;2024-03-31\r\n"
    ).encode("cp1252")
    [event] = customer.parse(raw, ctx_for("customer", raw, "text/csv"))
    person = event.person
    assert (person.first_name, person.last_name, person.company) == ("Jürgen", "Müller", "Müller GmbH")
    assert (person.phone, person.country_code) == ("+49301234567", "DE")


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_a_windows_excel_export_with_a_line_break_in_its_last_cell_keeps_its_delimiter(delimiter: str) -> None:
    """Windows Excel ends rows with CRLF and a line break inside a cell with LF alone."""
    rows = [
        ["Name", "E-Mail", "Last Service Delivery", "Adresse"],
        ["Hans Müller", "hans@beispiel.de", "2024-03-31", '"Hauptstr. 1\n80331 München"'],
        ["Eva Groß", "eva@beispiel.de", "2024-04-01", "Ring 2"],
    ]
    raw = "".join(delimiter.join(row) + "\r\n" for row in rows).encode("cp1252")
    hans, eva = customer.parse(raw, ctx_for("customer", raw, "text/csv"))
    assert (hans.person.email, hans.person.company_address) == ("hans@beispiel.de", "Hauptstr. 1 80331 München")
    assert eva.person.email == "eva@beispiel.de"


@pytest.mark.parametrize(
    ("text", "encoding", "expected"),
    [
        (  # a Japanese Excel's "CSV" is Shift_JIS, its headings Japanese
            "氏名,メールアドレス,電話番号,会社名,役職,国,Last Service Delivery\n"
            "山田 太郎,taro@example.co.jp,090-1234-5678,株式会社テスト,部長,日本,2024-03-15\n"
            "佐藤 花子,hanako@example.co.jp,03-1234-5678,株式会社サンプル,課長,日本,2024-04-01\n",
            "cp932",
            ("太郎", "山田", "taro@example.co.jp", "+819012345678", "株式会社テスト", "部長", "JP"),
        ),
        (  # a Chinese one's is GBK
            "姓名,邮箱,手机号,公司名称,职位,国家,Last Service Delivery\n"
            "王 伟,wang.wei@example.cn,138 0013 8000,华为技术有限公司,经理,中国,2024-03-15\n"
            "李 娜,li.na@example.cn,139 1234 5678,阿里巴巴集团,总监,中国,2024-04-01\n",
            "gbk",
            ("伟", "王", "wang.wei@example.cn", "+8613800138000", "华为技术有限公司", "经理", "CN"),
        ),
        (  # a Russian one's Windows-1251
            "Имя,Фамилия,Электронная почта,Телефон,Компания,Должность,Страна,Last Service Delivery\n"
            "Дмитрий,Иванов,d.ivanov@example.ru,8 912 345-67-89,Газпром,Менеджер,Россия,2024-03-15\n"
            "Ольга,Смирнова,o.smirnova@example.ru,8 916 123-45-67,Сбербанк,Директор,Россия,2024-04-01\n",
            "cp1251",
            ("Дмитрий", "Иванов", "d.ivanov@example.ru", "+79123456789", "Газпром", "Менеджер", "RU"),
        ),
        (  # Korean headings in UTF-8
            "이름,이메일,휴대폰,회사명,직책,국가,Last Service Delivery\n"
            "김민준,minjun@example.kr,010-1234-5678,삼성전자,과장,대한민국,2024-03-15\n",
            "utf-8",
            ("민준", "김", "minjun@example.kr", "+821012345678", "삼성전자", "과장", "KR"),
        ),
    ],
)
def test_a_spreadsheet_saved_in_its_language_s_code_page_with_headings_in_that_language(
    text: str, encoding: str, expected: tuple[str, ...]
) -> None:
    """Each column was unknown (its heading a word of another script) and the file mis-decoded as Windows-1252: every
    row was rejected ``no_identity``."""
    raw = text.encode(encoding)
    event = customer.parse(raw, ctx_for("customer", raw, "text/csv"))[0]
    person = event.person
    got = (person.first_name, person.last_name, person.email, person.phone, person.company, person.position)
    assert (*got, person.country_code) == expected


def test_windows_1252_text_stays_windows_1252() -> None:
    """The code page is looked for only when Windows-1252 does not read as text: Western exports, the most common,
    are read as before (a short one or one of symbols too)."""
    for text in ("Nom,Prénom\nLefèvre,Hélène\n", "Müller\n", "Preis\n10 €; © ™ ½\n", "Nombre\nJosé Muñoz, A Coruña\n"):
        assert decode_text(text.encode("cp1252")) == text


def test_pipedrive_s_person_export_names_its_columns_entity_field_label() -> None:
    """Pipedrive heads a person's columns "Person - Email - Work": every row was refused no_identity."""
    raw = (
        b'"Person - Name","Person - Email - Work","Person - Phone - Mobile","Person - Organization",'
        b'"Person - Job title","Deal - Title","Last Service Delivery"\n'
        b'"Eva Novak","eva@novak.example","+420 601 123 456","Novak s.r.o.","CEO","Renewal","2024-12-01"\n'
    )
    [event] = customer.parse(raw, ctx_for("customer", raw, "text/csv"))
    person = event.person
    assert (person.first_name, person.last_name, person.email, person.phone) == (
        "Eva",
        "Novak",
        "eva@novak.example",
        "+420601123456",
    )
    assert (person.company, person.position) == ("Novak s.r.o.", "CEO")


def test_address_book_exports_as_google_outlook_and_salesforce_write_them() -> None:
    """The column names of Google Contacts' CSV (numbered slots), Outlook's and a Salesforce report: the e-mail,
    the phone read in the address's country, the company, title and city are taken, none dropped as unknown."""
    google = (
        "First Name,Middle Name,Last Name,Birthday,Notes,Labels,E-mail 1 - Label,E-mail 1 - Value,Phone 1 - Label,"
        "Phone 1 - Value,Address 1 - Label,Address 1 - Formatted,Address 1 - Street,Address 1 - City,"
        "Address 1 - Postal Code,Address 1 - Country,Organization Name,Organization Title,Organization 1 - Name,"
        "Organization 1 - Title,Last Service Delivery\n"
        "Lucía,,Fernández,,Cliente desde 2019,* myContacts,* Work,lucia@empresa.example.es,Mobile,612 34 56 78,Work,"
        '"Gran Vía 1, 28013 Madrid, España",Gran Vía 1,Madrid,28013,España,,,Empresa SL,Directora,2024-04-30\n'
    ).encode()
    outlook = (
        "Title,First Name,Middle Name,Last Name,Company,Job Title,Business Street,Business City,"
        "Business Postal Code,Business Country/Region,Business Phone,Home Phone,Mobile Phone,E-mail Address,"
        "E-mail 2 Address,Notes,Last Service Delivery\n"
        "Mr.,Thomas,,Berger,Berger AG,CFO,Bahnhofstrasse 10,Zürich,8001,Switzerland,044 123 45 67,,,"
        "thomas.berger@berger.example.ch,,,2024-02-29\n"
    ).encode()
    salesforce = (
        b"Salutation,First Name,Last Name,Account Name,Mailing Street,Mailing City,Mailing Country,Phone,Email,"
        b"Last Service Delivery\n"
        b"Ms.,Aiko,Tanaka,Tanaka KK,1-1 Otemachi,Chiyoda-ku,Japan,03-1234-5678,aiko@tanaka.example.jp,2024-01-31\n"
    )
    found = []
    for raw in (google, outlook, salesforce):
        [event] = customer.parse(raw, ctx_for("customer", raw, "text/csv"))
        person = event.person
        found.append(
            (person.email, person.phone, person.company, person.position, person.location, person.country_code)
        )
    assert found == [
        ("lucia@empresa.example.es", "+34612345678", "Empresa SL", "Directora", "Madrid", "ES"),
        ("thomas.berger@berger.example.ch", "+41441234567", "Berger AG", "CFO", "Zürich", "CH"),
        ("aiko@tanaka.example.jp", "+81312345678", "Tanaka KK", None, "Chiyoda-ku", "JP"),
    ]


@pytest.mark.parametrize(
    ("header", "row", "expected"),
    [
        (
            "Prénom;Nom;Société;Titre du poste;Rue (bureau);Ville (bureau);Pays/Région (bureau);Téléphone (bureau);"
            "Téléphone mobile;Adresse de messagerie",
            "Jean;Dupont;Exemple SA;Directeur;1 rue de la Paix;Paris;France;01 23 45 67 89;;jean@exemple.fr",
            ("jean@exemple.fr", "+33123456789", "Exemple SA", "Directeur", "Paris", "FR", "1 rue de la Paix"),
        ),
        (
            "Nombre;Apellidos;Organización;Puesto;Ciudad de trabajo;País o región del trabajo;Teléfono del trabajo;"
            "Teléfono móvil;Dirección de correo electrónico",
            "Juan;García;Ejemplo SL;Director;Madrid;España;;612 34 56 78;jc@ejemplo.es",
            ("jc@ejemplo.es", "+34612345678", "Ejemplo SL", "Director", "Madrid", "ES", None),
        ),
        (
            "Vorname;Nachname;Firma;Straße geschäftlich;Ort geschäftlich;Land/Region geschäftlich;"
            "Telefon geschäftlich;Mobiltelefon;Telefon privat;E-Mail-Adresse",
            "Hans;Müller;Beispiel GmbH;Hauptstr. 1;München;Deutschland;;;089 1234567;hans@beispiel.de",
            ("hans@beispiel.de", "+49891234567", "Beispiel GmbH", None, "München", "DE", "Hauptstr. 1"),
        ),
    ],
)
def test_outlook_exports_headed_in_other_languages(header: str, row: str, expected: tuple[str | None, ...]) -> None:
    """Outlook names its export's columns in the language it is installed in: every contact was refused."""
    raw = f"{header};Last Service Delivery\r\n{row};2024-03-31\r\n".encode("cp1252")
    [event] = customer.parse(raw, ctx_for("customer", raw, "text/csv"))
    person = event.person
    found = (person.email, person.phone, person.company, person.position, person.location, person.country_code)
    assert (*found, person.company_address) == expected


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("Indirizzo posta elettronica", "email"),
        ("電子メール アドレス", "email"),
        ("Адрес эл. почты", "email"),
        ("Sähköpostiosoite", "email"),
        ("携帯電話番号", "phone"),
        ("Рабочий телефон", "phone"),
        ("会社電話", "phone"),
    ],
)
def test_outlook_s_column_names_in_italian_japanese_russian_and_finnish(header: str, field: str) -> None:
    assert canonical_field(header) == field


def test_api_exports_wrap_their_records_and_nest_the_fields() -> None:
    """HubSpot's ``results`` of ``properties``, Mailchimp's ``members`` with ``merge_fields``, Salesforce's
    ``records`` (whose ``Account: {Name}`` names the company, not the person): each record one customer."""
    hubspot = (
        b'{"results": [{"id": "51", "properties": {"email": "bh@hubspot.example.com", "firstname": "Brian",'
        b' "lastname": "Halligan", "last_service_delivery": "2024-03-01"}, "archived": false}],'
        b' "paging": {"next": {"after": "52"}}}'
    )
    mailchimp = (
        b'{"members": [{"email_address": "urist@example.com", "status": "subscribed", "merge_fields":'
        b' {"FNAME": "Urist", "LNAME": "McVankab", "PHONE": "+1 212 555 0100"}, "last_service_delivery":'
        b' "2024-02-01"}], "list_id": "57afe96172", "total_items": 1}'
    )
    salesforce = (
        b'{"totalSize": 1, "done": true, "records": [{"attributes": {"type": "Contact", "url": "/x"},'
        b' "LastName": "Rogers", "Email": "jrogers@burlington.example.com", "Account": {"Name": "Burlington"},'
        b' "Last_Service_Delivery__c": "2024-01-15"}]}'
    )
    found = []
    for raw in (hubspot, mailchimp, salesforce):
        [event] = customer.parse(raw, ctx_for("customer", raw, "application/json"))
        found.append((event.person.first_name, event.person.last_name, event.person.email, event.person.phone))
    assert found == [
        ("Brian", "Halligan", "bh@hubspot.example.com", None),
        ("Urist", "McVankab", "urist@example.com", "+12125550100"),
        (None, "Rogers", "jrogers@burlington.example.com", None),
    ]
    bad = b'{"results": [{"properties": {"email": "a@example.com"}}]}'
    with pytest.raises(SourceError) as err:
        customer.parse(bad, ctx_for("customer", bad, "application/json"))
    assert [p.field for p in err.value.problems] == ["results[0].last_service_delivery"]


def test_excels_separator_hint_line_names_the_delimiter() -> None:
    """Excel writes (and reads) a first line ``sep=;`` naming the delimiter; rows keep the line they are on."""
    raw = b"sep=;\r\nName;E-Mail;Last Service Delivery\r\nAna Garcia;ana@example.es;2024-03-31\r\n;;\r\nBad;;\r\n"
    with pytest.raises(SourceError) as err:
        customer.parse(raw, ctx_for("customer", raw, "text/csv"))
    assert [(p.field, p.reason) for p in err.value.problems] == [
        ("row 5.email", "no_identity"),
        ("row 5.last_service_delivery", "missing_last_service_delivery"),
    ]
    [event] = customer.parse(raw[: raw.index(b";;\r\nBad")], ctx_for("customer", raw, "text/csv"))
    assert (event.person.first_name, event.person.email) == ("Ana", "ana@example.es")


def test_shop_exports_shopify_customers_and_woocommerce_orders() -> None:
    shopify = (
        b"First Name,Last Name,Email,Accepts Email Marketing,Default Address Company,Default Address City,"
        b"Default Address Country Code,Default Address Phone,Total Spent,Last Service Delivery\n"
        b"Ana,Garc\xc3\xada,ana@example.es,yes,Empresa SL,Madrid,ES,612 34 56 78,120.00,2024-05-01\n"
    )
    woocommerce = (
        b"order_id,billing_first_name,billing_last_name,billing_email,billing_phone,billing_company,billing_country,"
        b"order_date\n1001,Jean,Dupont,jean@exemple.fr,06 12 34 56 78,Dupont SARL,FR,2024-04-30\n"
    )
    [ana] = customer.parse(shopify, ctx_for("customer", shopify, "text/csv"))
    assert (ana.person.company, ana.person.location, ana.person.phone) == ("Empresa SL", "Madrid", "+34612345678")
    with_delivery = woocommerce.replace(b"order_date", b"last_service_delivery")
    [jean] = customer.parse(with_delivery, ctx_for("customer", with_delivery, "text/csv"))
    assert (jean.person.first_name, jean.person.email, jean.person.phone) == ("Jean", "jean@exemple.fr", "+33612345678")


def test_linkedins_connections_export_names_the_profile_url() -> None:
    raw = (
        b"First Name,Last Name,URL,Email Address,Company,Position,Connected On,Last Service Delivery\n"
        b"Aiko,Tanaka,https://www.linkedin.com/in/aiko-tanaka,aiko@example.jp,Tanaka KK,CTO,05 Jun 2024,2024-06-01\n"
    )
    [event] = customer.parse(raw, ctx_for("customer", raw, "text/csv"))
    assert event.person.linkedin_url == "https://www.linkedin.com/in/aiko-tanaka"
    assert (event.person.company, event.person.position) == ("Tanaka KK", "CTO")


@pytest.mark.parametrize("column", ["Last Order Date", "Letzte Bestellung", "Dernière commande", "Último pedido"])
def test_a_shops_last_order_starts_the_customer_clock(column: str) -> None:
    """A shop's customer export names the last order, which is the last service delivery the clock starts from."""
    raw = f"Email,{column}\nana@example.es,2024-05-01\n".encode()
    [event] = customer.parse(raw, ctx_for("customer", raw, "text/csv"))
    assert event.interaction.last_service_delivery_at is not None
    assert event.interaction.last_service_delivery_at.isoformat() == "2024-05-01T00:00:00+00:00"
