"""Field names as forms, chat bots and spreadsheets spell them, mapped to leadpipe's canonical names.

WordPress Contact Form 7 posts ``your-name``/``your-email``, HubSpot ``firstname``/``mobilephone``, a business-card
scanner exports "E-Mail Address" and "Job Title", a German export "Ansprechpartner" and "Firma", a French form
"Prénom" and "Nom" (accents folded): one table, shared by every adapter that reads named fields. A word that is a
surname in one language and a full name in another ("Nom", "Name", "Nome") is read as the full name;
``normalize.person_name`` completes it with the first or last name beside it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from pipeline.sources.base import text_of

_ALIASES: dict[str, tuple[str, ...]] = {
    "email": (
        "email",
        "e_mail",
        "email_address",
        "e_mail_address",
        "mail",
        "work_email",
        "business_email",
        "emailaddress",
        "contact_email",
        "user_email",
        "courriel",
        "adresse_email",
        "correo",
        "correo_electronico",
        "posta_elettronica",
        "e_mail_adresse",
        "emailadresse",
        "mailadresse",
        # Nordic, Finnish, Turkish, Hungarian, Polish, Dutch, Portuguese, Indonesian; Cyrillic, CJK, Korean, Arabic,
        # Greek, Hebrew: as form builders and spreadsheets in those languages head the column
        "e_post",
        "e_postadress",
        "sahkoposti",
        "e_posta",
        "e_posta_adresi",
        "e_mail_cim",
        "adres_e_mail",
        "e_mailadres",
        "endereco_de_e_mail",
        "alamat_email",
        "электронная_почта",
        "эл_почта",
        "почта",
        "електронна_пошта",
        "имейл",
        "メールアドレス",
        "メール",
        "eメール",
        "電子メール",
        "邮箱",
        "电子邮件",
        "电子邮箱",
        "邮箱地址",
        "電子郵件",
        "電郵",
        "이메일",
        "이메일_주소",
        "البريد_الإلكتروني",
        "البريد_الالكتروني",
        "ηλεκτρονικό_ταχυδρομείο",
        "email_διεύθυνση",
        "דואר_אלקטרוני",
        # Outlook's CSV export as a French, Spanish, German, Italian, Finnish, Russian or Japanese Outlook heads it
        "adresse_de_messagerie",
        "direccion_de_correo_electronico",
        "indirizzo_posta_elettronica",
        "sahkopostiosoite",
        "адрес_эл_почты",
        "電子メール_アドレス",
    ),
    "first_name": (
        "first_name",
        "firstname",
        "fname",
        "given_name",
        "name_first",
        "vorname",
        "forename",
        "prenom",
        "primer_nombre",
        "primeiro_nome",
        "voornaam",
        "imie",
        "fornamn",
        "fornavn",
        "etunimi",
        "jmeno",
        "keresztnev",
        "prenume",
        "nama_depan",
        "имя",
        "ім_я",
        "име",
        "名",
        "όνομα",
        "שם_פרטי",
        "الاسم_الأول",
    ),
    "last_name": (
        "last_name",
        "lastname",
        "lname",
        "surname",
        "family_name",
        "name_last",
        "nachname",
        "nom_de_famille",
        "familienname",
        "apellido",
        "apellidos",
        "cognome",
        "sobrenome",
        "achternaam",
        "nazwisko",
        "efternamn",
        "etternavn",
        "efternavn",
        "sukunimi",
        "prijmeni",
        "priezvisko",
        "vezeteknev",
        "prezime",
        "nume",
        "nama_belakang",
        "soyad",
        "soyadı",
        "фамилия",
        "прізвище",
        "презиме",
        "姓",
        "성",
        "επώνυμο",
        "שם_משפחה",
        "اسم_العائلة",
    ),
    "full_name": (
        "name",
        "full_name",
        "fullname",
        "contact_name",
        "contact_person",
        "person",
        "attendee_name",
        "user_name_original_name",
        "name_original_name",
        "nom",
        "nom_complet",
        "nome",
        "nome_completo",
        "nombre",
        "nombre_completo",
        "naam",
        "ansprechpartner",
        "kontaktperson",
        "caller_name",
        "namn",
        "navn",
        "nimi",
        "nev",
        "imie_i_nazwisko",
        "jmeno_a_prijmeni",
        "nume_complet",
        "nama",
        "nama_lengkap",
        "ho_va_ten",
        "ho_ten",
        "ad_soyad",
        "adı_soyadı",
        "isim",
        "фио",
        "имя_и_фамилия",
        "полное_имя",
        "піб",
        "ім_я_та_прізвище",
        "氏名",
        "お名前",
        "名前",
        "姓名",
        "名字",
        "이름",
        "성명",
        "الاسم",
        "الاسم_الكامل",
        "ονοματεπώνυμο",
        "שם",
        "שם_מלא",
        "नाम",
    ),
    "phone": (
        "phone",
        "tel",
        "telephone",
        "phone_number",
        "phonenumber",
        "mobile",
        "mobilephone",
        "mobile_phone",
        "cell",
        "cell_phone",
        "work_phone",
        "business_phone",
        "telefon",
        "phone_no",
        "telefonnummer",
        "handy",
        "mobil",
        "mobilnummer",
        "portable",
        "telefono",
        "movil",
        "celular",
        "cellulare",
        "telefone",
        "telefoon",
        "telefoonnummer",
        "mobiel",
        "home_phone",
        "mobile_phone_number",
        "text_reminder_number",
        "sms",
        "personal_phone",
        "telephone_portable",
        "numero_de_telephone",
        "numero_de_telefono",
        "numero_de_telefone",
        "numero_di_telefono",
        "puhelin",
        "puhelinnumero",
        "matkapuhelin",
        "telefonszam",
        "numer_telefonu",
        "telefon_komorkowy",
        "telefonni_cislo",
        "telefon_numarası",
        "cep_telefonu",
        "gsm",
        "nomor_telepon",
        "telepon",
        "no_hp",
        "so_đien_thoai",
        "đien_thoai",
        "whatsapp",
        "whatsapp_number",
        "whatsapp_phone",
        "телефон",
        "мобильный",
        "мобильный_телефон",
        "номер_телефона",
        "мобільний",
        "номер_телефону",
        "電話番号",
        "電話",
        "携帯電話",
        "携帯番号",
        "电话",
        "电话号码",
        "手机",
        "手机号",
        "手机号码",
        "联系电话",
        "手機",
        "電話號碼",
        "聯絡電話",
        "전화번호",
        "전화",
        "휴대폰",
        "휴대전화",
        "연락처",
        "الهاتف",
        "رقم_الهاتف",
        "الجوال",
        "رقم_الجوال",
        "τηλέφωνο",
        "κινητό",
        "טלפון",
        "נייד",
        "फ़ोन",
        "मोबाइल",
        # Outlook's CSV export in other languages, as above
        "telephone_bureau",
        "telephone_mobile",
        "telefono_del_trabajo",
        "telefono_movil",
        "telefon_geschaftlich",
        "telefon_privat",
        "mobiltelefon",
        "рабочий_телефон",
        "会社電話",
        "携帯電話番号",
    ),
    "position": (
        "position",
        "job_title",
        "jobtitle",
        "role",
        "job",
        "title_position",
        "designation",
        "employment_title",
        "funktion",
        "berufsbezeichnung",
        "poste",
        "fonction",
        "puesto",
        "ruolo",
        "functie",
        "organization_title",
        "organisation_title",
        "cargo",
        "befattning",
        "stilling",
        "tehtava",
        "beosztas",
        "stanowisko",
        "pozice",
        "jabatan",
        "chuc_vu",
        "unvan",
        "должность",
        "посада",
        "役職",
        "職位",
        "职位",
        "职务",
        "職稱",
        "직책",
        "직위",
        "المسمى_الوظيفي",
        "الوظيفة",
        "θέση",
        "תפקיד",
        # Outlook's CSV export in other languages, as above
        "titre_du_poste",
    ),
    "company": (
        "company",
        "company_name",
        "organisation",
        "organization",
        "org",
        "firm",
        "employer",
        "account",
        "firma",
        "firmenname",
        "unternehmen",
        "societe",
        "entreprise",
        "empresa",
        "azienda",
        "societa",
        "bedrijf",
        "organisatie",
        "organization_name",
        "organisation_name",
        "account_name",
        "business_name",
        "foretag",
        "bedrift",
        "virksomhed",
        "yritys",
        "ceg",
        "spolecnost",
        "spolocnost",
        "tvrtka",
        "companie",
        "perusahaan",
        "cong_ty",
        "sirket",
        "firma_adı",
        "компания",
        "организация",
        "название_компании",
        "компанія",
        "організація",
        "会社名",
        "会社",
        "企業名",
        "所属",
        "公司",
        "公司名称",
        "单位",
        "公司名稱",
        "회사",
        "회사명",
        "소속",
        "الشركة",
        "اسم_الشركة",
        "εταιρεία",
        "חברה",
        # Outlook's CSV export in other languages, as above
        "organizacion",
        "company_account",  # a Salesforce report's "Company / Account"
    ),
    "company_address": (
        "company_address",
        "address",
        "street_address",
        "business_address",
        "work_address",
        "adresse",
        "anschrift",
        "direccion",
        "indirizzo",
        "endereco",
        "adres",
        "street",
        "address_formatted",
        "address_street",
        "business_street",
        "mailing_street",
        "adress",
        "osoite",
        "adresa",
        "alamat",
        "đia_chi",
        "адрес",
        "адреса",
        "住所",
        "地址",
        "주소",
        "العنوان",
        "διεύθυνση",
        "כתובת",
        # Outlook's CSV export in other languages, as above
        "rue_bureau",
        "strasse_geschaftlich",
    ),
    "location": (
        "location",
        "city",
        "town",
        "region",
        "state_region",
        "stadt",
        "ort",
        "ville",
        "ciudad",
        "citta",
        "cidade",
        "plaats",
        "woonplaats",
        "address_city",
        "business_city",
        "work_city",
        "mailing_city",
        "stad",
        "kaupunki",
        "varos",
        "miasto",
        "mesto",
        "grad",
        "oras",
        "kota",
        "thanh_pho",
        "sehir",
        "город",
        "місто",
        "市区町村",
        "都市",
        "城市",
        "도시",
        "المدينة",
        "πόλη",
        "עיר",
        # Outlook's CSV export in other languages, as above
        "ville_bureau",
        "ciudad_de_trabajo",
        "ort_geschaftlich",
    ),
    "state": (
        "state",
        "province",
        "state_province",
        "state_or_province",
        "stateorprovince",
        "province_state",
        "address_state",
        "business_state",
        "mailing_state",
        "bundesland",
        "provincia",
        "estado",
        "provincie",
        "prefecture",
        "都道府県",
        "省份",
    ),
    "country": (
        "country",
        "country_code",
        "country_region",
        "country_region_name",
        "land",
        "pays",
        "pais",
        "paese",
        "address_country",
        "business_country",
        "business_country_region",
        "work_country",
        "mailing_country",
        "maa",
        "orszag",
        "kraj",
        "zeme",
        "drzava",
        "tara",
        "negara",
        "quoc_gia",
        "ulke",
        "страна",
        "країна",
        "国",
        "国名",
        "国家",
        "國家",
        "国家_地区",
        "국가",
        "나라",
        "الدولة",
        "البلد",
        "χώρα",
        "מדינה",
        # Outlook's CSV export in other languages, as above
        "pays_region_bureau",
        "pais_o_region_del_trabajo",
        "land_region_geschaftlich",
    ),
    "skype_id": ("skype", "skype_id", "skype_name", "skypeid", "skype_login"),
    "linkedin_url": ("linkedin", "linkedin_url", "linkedin_profile", "linkedin_profile_url", "linkedin_link"),
    "stated_age": ("age", "stated_age", "your_age"),
    "birth_date": ("birth_date", "birthdate", "date_of_birth", "dob", "birthday"),
    "message": (
        "message",
        "comments",
        "questions_comments",
        "comment",
        "request",
        "description",
        "details",
        "how_can_we_help",
        "how_can_we_help_you",
        "project_description",
        "project_details",
        "enquiry",
        "inquiry",
        "question",
        "notes",
        "note",
        "communication_history",
        "textarea",
        "nachricht",
        "mitteilung",
        "anfrage",
        "kommentar",
        "commentaire",
        "commentaires",
        "mensaje",
        "comentarios",
        "messaggio",
        "mensagem",
        "bericht",
        "opmerkingen",
        "meddelande",
        "melding",
        "besked",
        "viesti",
        "uzenet",
        "wiadomosc",
        "zprava",
        "poruka",
        "mesaj",
        "pesan",
        "tin_nhan",
        "сообщение",
        "комментарий",
        "вопрос",
        "повідомлення",
        "お問い合わせ内容",
        "お問い合わせ",
        "メッセージ",
        "内容",
        "留言",
        "备注",
        "咨询内容",
        "留言內容",
        "메시지",
        "문의내용",
        "문의_내용",
        "الرسالة",
        "رسالة",
        "μήνυμα",
        "הודעה",
    ),
    "subject": (
        "subject",
        "topic",
        "regarding",
        "betreff",
        "sujet",
        "objet",
        "asunto",
        "oggetto",
        "assunto",
        "onderwerp",
    ),
    "form_type": ("form_type", "form_kind", "request_type", "inquiry_type", "type_of_request", "lead_type"),
    "event_name": (
        "event",
        "event_name",
        "event_title",
        "conference",
        "met_at",
        "trade_show",
        "veranstaltung",
        "veranstaltungsname",
        "evenement",
        "nom_de_l_evenement",
        "evento",
        "nombre_del_evento",
        "nome_evento",
        "nome_do_evento",
        "wydarzenie",
        "мероприятие",
        "название_мероприятия",
        "イベント名",
        "活动名称",
        "活動名稱",
        "행사명",
    ),
    "event_date": (
        "event_date",
        "date_of_event",
        "event_start",
        "event_day",
        "scanned_at",
        "scan_date",
        "met_on",
        "veranstaltungsdatum",
        "datum_der_veranstaltung",
        "date_de_l_evenement",
        "fecha_del_evento",
        "data_evento",
        "data_do_evento",
        "datum_evenement",
        "data_wydarzenia",
        "дата_мероприятия",
        "開催日",
        "活动日期",
        "活動日期",
        "행사일",
    ),
    "last_service_delivery_at": (
        "last_service_delivery",
        "last_service_delivery_at",
        "last_service_date",
        "last_delivery",
        "last_delivery_date",
        "last_service",
        "service_delivered_at",
        "last_invoice_date",
        "last_order_date",
        "last_order",
        "last_purchase",
        "last_purchase_date",
        "letzte_lieferung",
        "letzte_bestellung",
        "derniere_commande",
        "ultimo_pedido",
        "derniere_livraison",
        "ultima_entrega",
        "ultima_consegna",
        "laatste_levering",
        "последняя_поставка",
        "最終購入日",
        "最終取引日",
        "最后购买日期",
        "최종_구매일",
    ),
    "customer_id": (
        "customer_id",
        "client_id",
        "account_id",
        "crm_id",
        "customer_number",
        "kundennummer",
        "kunden_nr",
        "numero_client",
        "numero_cliente",
        "numero_de_client",
        "numero_de_cliente",
        "klantnummer",
        "номер_клиента",
        "顧客番号",
        "客户编号",
        "고객번호",
    ),
    "page_url": ("page_url", "page_uri", "pageuri", "url", "page", "source_url", "referrer_page", "referrer"),
    # the website visitor's (cookie) id a form or chat passes on: Segment's ajs_anonymous_id, RudderStack's
    # rl_anonymous_id, HubSpot's hubspotutk (posted as hutk), Snowplow's domain_userid, or a plain hidden field
    "visitor_id": (
        "visitor_id",
        "visitorid",
        "anonymous_id",
        "anonymousid",
        "ajs_anonymous_id",
        "rl_anonymous_id",
        "hutk",
        "hubspotutk",
        "domain_userid",
    ),
    # the record's time; a CRM export's creation time: HubSpot's "Create Date", Zoho's "Created Time", Mailchimp's
    # "OPTIN_TIME" and "CONFIRM_TIME"
    "occurred_at": (
        "submitted_at",
        "submittedat",
        "created_at",
        "timestamp",
        "date",
        "created",
        "updated_at",
        "create_date",
        "created_time",
        "optin_time",
        "confirm_time",
    ),
}

#: A bracketed name's parts: PHP-style form names, Mailchimp's "data[merges][FNAME]".
_BRACKETS = re.compile(r"\[([^\[\]]+)\]")
#: Where camel case starts a word: "companyName".
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
#: "e_mail_1_value" -> "e_mail", "organization_1_name" -> "organization_name" (Google Contacts' CSV); "e_mail_2_address"
#: -> "e_mail_address" (Outlook's). Only a slot between words: "phone_1_type" -> "phone_type", which is no field.
_SLOT = re.compile(r"^([a-z]+(?:_[a-z]+)*)_\d+(?:_value$)?")
_PREFIXES = (
    "your_",
    "contact_",
    "input_",
    "field_",
    "lead_",
    "customer_",
    "attendee_",
    "visitor_",
    "billing_",
    "default_address_",
    "ihre_",
    "ihr_",
    "votre_",
    "tu_",
    "su_",
)


@lru_cache(maxsize=4096)
def normalize_key(key: str) -> str:
    """``Your-E-Mail``, ``your_email``, ``E-Mail Address`` → comparable snake case: a Latin letter's accents folded
    (``Prénom`` → ``prenom``, ``Şirket`` → ``sirket``), other scripts' letters kept as they are written (``Телефон``
    → ``телефон``, ``メールアドレス``; a kana's voicing mark is part of it, not an accent), case folded."""
    out: list[str] = []
    for char in unicodedata.normalize("NFKD", key):
        if unicodedata.combining(char) and out and out[-1].isascii():
            continue  # an accent on a Latin letter
        out.append(char)
    folded = unicodedata.normalize("NFC", "".join(out)).casefold()
    # letters and digits in any script, with the marks that belong to them (Devanagari's vowel signs, Thai's, Arabic's
    # vowel marks); everything else separates words
    kept = "".join(c if c.isalnum() or unicodedata.category(c).startswith("M") else " " for c in folded)
    return "_".join(kept.split())


_BY_ALIAS = {normalize_key(alias): canonical for canonical, aliases in _ALIASES.items() for alias in aliases}


@lru_cache(maxsize=4096)
def canonical_field(key: str) -> str | None:
    """The canonical name of a source's field name, or None when leadpipe does not know it."""
    norm = normalize_key(key)
    slotless = _SLOT.sub(r"\1", norm)  # an address book's numbered slots: "E-mail 1 - Value", "Address 1 - City"
    camel = normalize_key(_CAMEL.sub("_", key))  # "companyName", "mobilePhone": JSON's camel case
    nested = normalize_key(brackets[-1]) if (brackets := _BRACKETS.findall(key)) else norm  # "data[merges][FNAME]"
    custom = norm.removesuffix("_c") if key.lower().endswith("__c") else norm  # Salesforce's "Last_Service__c"
    candidates: tuple[str, ...] = (norm, re.sub(r"_\d+$", "", norm), slotless, camel, nested, custom)
    entity, _, rest = key.partition(" - ")  # Pipedrive's "Person - Email - Work": the entity, the field, its label
    if rest and normalize_key(entity) in _PERSON_ENTITIES:
        candidates = (*candidates, normalize_key(rest.partition(" - ")[0]))
    for candidate in dict.fromkeys(candidates):  # CF7's "tel-123"
        if candidate in _BY_ALIAS:
            return _BY_ALIAS[candidate]
        for prefix in _PREFIXES:
            if candidate.startswith(prefix) and (rest := candidate.removeprefix(prefix)) in _BY_ALIAS:
                return _BY_ALIAS[rest]
    return None


#: The entity a CRM's export names before a person's field ("Person - Name", "Contact - Phone - Mobile").
_PERSON_ENTITIES = frozenset({"person", "contact", "lead"})

_PERSONAL = frozenset({"email", "phone", "first_name", "last_name"})


def flattened(pairs: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """A field whose value is an object of a person's fields (Zoho's ``Name: {first_name, last_name}``, HubSpot's
    ``properties``, Mailchimp's ``merge_fields``: it names an e-mail, phone or name part) as those fields; any other
    object stays as it is (Salesforce's ``Account: {Name}`` names a company, not the person)."""
    out: list[tuple[str, Any]] = []
    for key, value in pairs:
        if isinstance(value, dict) and any(canonical_field(k) in _PERSONAL for k in value):
            out.extend((k, v) for k, v in value.items() if not isinstance(v, dict | list))
        else:
            out.append((key, value))
    return out


def collect(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Canonical name → value; when several fields mean the same (Phone, Mobile) the first non-empty one wins. A
    ``Title`` is the position in an export shaped as Salesforce's (``_title_is_position``), else it is not read."""
    out: dict[str, Any] = {}
    pairs = list(pairs)
    for key, value in pairs:
        name = canonical_field(key)
        if name is not None and name not in out and text_of(value) is not None:
            out[name] = value
    if "position" not in out:
        title = next((value for key, value in pairs if normalize_key(key) == "title"), None)
        if text_of(title) is not None and _title_is_position(pairs):
            out["position"] = title
    return out


#: Columns of Salesforce's contact and lead exports (a report's headers, the Data Export's API names; Zoho CRM's
#: exports name them the same) that Outlook's CSV never has. In those exports "Title" is the person's job title and
#: the form of address has a column of its own ("Salutation"); in Outlook's "Title" is the form of address (Mr.,
#: Dr.) and "Job Title" the position, and so it is in a mailing list's "Title", "First Name", "Surname".
_SALESFORCE_COLUMNS = frozenset(
    {
        "salutation",
        "account_name",
        "account_owner",
        "contact_owner",
        "contact_id",
        "lead_owner",
        "lead_id",
        "lead_source",
        "mailing_street",
        "mailing_city",
        "mailing_state_province",
        "mailing_zip_postal_code",
        "mailing_country",
        "email_opt_out",
        "reports_to",
        "accountid",
        "ownerid",
        "leadsource",
        "mailingstreet",
        "mailingcity",
        "hasoptedoutofemail",
    }
)

#: The record types of Salesforce's REST API whose ``Title`` is a job title (``attributes.type``).
_SALESFORCE_PEOPLE = frozenset({"Contact", "Lead", "User"})


def _title_is_position(pairs: Iterable[tuple[str, Any]]) -> bool:
    """Whether a record's ``Title`` is the person's job title: its fields (a CSV's header, never a value) are a
    Salesforce export's (``_SALESFORCE_COLUMNS``), or it is a person's record of Salesforce's REST API (its
    ``attributes`` name the type). Anywhere else a lone "Title" is a form of address, which is no part of a name."""
    for key, value in pairs:
        norm = normalize_key(key)
        if norm in _SALESFORCE_COLUMNS:
            return True
        if norm == "attributes" and isinstance(value, dict) and value.get("type") in _SALESFORCE_PEOPLE:
            return True
    return False


@lru_cache(maxsize=4096)
def is_honeypot(key: str) -> bool:
    """Hidden anti-spam fields: CF7 Honeypot (``honeypot-123``), Akismet's ``ak_hp`` and ``ak_hp_textarea``,
    Gravity's honeypot input, Netlify Forms' ``bot-field``."""
    norm = normalize_key(key)
    return (
        "honeypot" in norm
        or norm in {"hp", "_hp", "bot_field"}
        or norm.startswith(("hp_", "ak_hp"))
        or norm.endswith("_hp")
    )


#: A consent checkbox's name, in English and as German, French, Spanish, Italian, Dutch, Polish, Russian, Japanese,
#: Chinese and Korean forms name it (Einwilligung, DSGVO, RGPD, acepto, consenso, toestemming, zgoda, согласие, 同意).
_CONSENT = re.compile(
    r"consent|gdpr|opt_?in|newsletter|subscribe|marketing|communications|further_contact|agree|accept"
    r"|einwilligung|zustimmung|einverstanden|dsgvo|rgpd|acepto|consenso|toestemming|akkoord|zgoda|согласи|同意|동의"
)
#: ... unless it acknowledges a privacy notice, terms or the processing of personal data (Datenschutz, AGB,
#: confidentialité, privacidad, согласие на обработку персональных данных, 個人情報).
_NOT_CONSENT = re.compile(
    r"privacy|terms|tos|conditions|policy|datenschutz|(?:^|_)agb(?:_|$)|confidentialit|privacidad|privacidade"
    r"|privacit|privacybeleid|prywatnos|конфиденциальн|個人情報|プライバシー|隐私|隱私|개인정보"
    r"|персональн|datos_personales|dati_personali|donnees_personnelles|personenbezogen|dane_osobowe|dados_pessoais"
    # ... nor Mailchimp's "consents_to_one_to_one_messaging": its default on every member, no choice anyone made
    r"|one_to_one_messaging"
)
#: ... nor an opt-out: "unsubscribed", "marketing_opt_out", "do not contact", Mailchimp's ``UNSUB_TIME`` and
#: ``CLEAN_TIME`` (an address that bounced is marketed to no more either) record a refusal, never a consent.
_OPT_OUT = re.compile(
    r"unsub(?:scri|_|$)|opt_?out|opted_?out|do_?not_?(?:contact|e_?mail|mail|call|market|sell)"
    r"|dont_?(?:contact|e_?mail|mail)|(?:^|_)clean(?:ed)?_(?:time|at|date|on)$"
    r"|abmeld|abbestell|desabonn|desinscri|afmeld|uitschrijv"
)


@lru_cache(maxsize=4096)
def is_consent_field(key: str) -> bool:
    """A checkbox asking for further contact; "I have read the privacy notice" is acknowledgement, not consent."""
    norm = normalize_key(key)
    return bool(_CONSENT.search(norm)) and not _NOT_CONSENT.search(norm) and not _OPT_OUT.search(norm)


@lru_cache(maxsize=4096)
def is_opt_out_field(key: str) -> bool:
    """A field that records a refusal when set (HubSpot's "Unsubscribed from all email", Salesforce's and Zoho's
    "Email Opt Out", Mailchimp's ``UNSUB_TIME``): ``is_consent_field``'s converse, so no field is read as both."""
    return bool(_OPT_OUT.search(normalize_key(key)))


def is_opt_out_value(value: str) -> bool:
    """A status that names a refusal ("Unsubscribed", "Opted out": Pipedrive's marketing status)."""
    return bool(_OPT_OUT.search(normalize_key(value)))


def flatten(pairs: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return list(pairs.items())
