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
    ),
    "full_name": (
        "name",
        "full_name",
        "fullname",
        "contact_name",
        "contact_person",
        "person",
        "attendee_name",
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
    ),
    "country": (
        "country",
        "country_code",
        "country_region",
        "land",
        "pays",
        "pais",
        "paese",
        "address_country",
        "business_country",
        "business_country_region",
        "work_country",
        "mailing_country",
    ),
    "skype_id": ("skype", "skype_id", "skype_name", "skypeid", "skype_login"),
    "linkedin_url": ("linkedin", "linkedin_url", "linkedin_profile", "linkedin_profile_url", "linkedin_link"),
    "stated_age": ("age", "stated_age", "your_age"),
    "birth_date": ("birth_date", "birthdate", "date_of_birth", "dob", "birthday"),
    "message": (
        "message",
        "comments",
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
    "event_name": ("event", "event_name", "event_title", "conference", "met_at", "trade_show"),
    "event_date": ("event_date", "date_of_event", "event_start", "event_day", "scanned_at", "scan_date", "met_on"),
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
    "occurred_at": ("submitted_at", "submittedat", "created_at", "timestamp", "date", "created", "updated_at"),
}

#: A bracketed name's parts: PHP-style form names, Mailchimp's "data[merges][FNAME]".
_BRACKETS = re.compile(r"\[([^\[\]]+)\]")
#: Where camel case starts a word: "companyName".
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
#: "e_mail_1_value" -> "e_mail", "organization_1_name" -> "organization_name" (Google Contacts' CSV); "e_mail_2_address"
#: -> "e_mail_address" (Outlook's). Only a slot between words: "phone_1_type" -> "phone_type", which is no field.
_SLOT = re.compile(r"^([a-z]+(?:_[a-z]+)*)_\d+(?:_value$)?")
_BY_ALIAS = {alias: canonical for canonical, aliases in _ALIASES.items() for alias in aliases}
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
    """``Your-E-Mail``, ``your_email``, ``E-Mail Address`` → comparable snake case (accents folded)."""
    folded = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "_", folded).strip("_")


@lru_cache(maxsize=4096)
def canonical_field(key: str) -> str | None:
    """The canonical name of a source's field name, or None when leadpipe does not know it."""
    norm = normalize_key(key)
    slotless = _SLOT.sub(r"\1", norm)  # an address book's numbered slots: "E-mail 1 - Value", "Address 1 - City"
    camel = normalize_key(_CAMEL.sub("_", key))  # "companyName", "mobilePhone": JSON's camel case
    nested = normalize_key(brackets[-1]) if (brackets := _BRACKETS.findall(key)) else norm  # "data[merges][FNAME]"
    custom = norm.removesuffix("_c") if key.lower().endswith("__c") else norm  # Salesforce's "Last_Service__c"
    candidates = (norm, re.sub(r"_\d+$", "", norm), slotless, camel, nested, custom)
    for candidate in dict.fromkeys(candidates):  # CF7's "tel-123"
        if candidate in _BY_ALIAS:
            return _BY_ALIAS[candidate]
        for prefix in _PREFIXES:
            if candidate.startswith(prefix) and (rest := candidate.removeprefix(prefix)) in _BY_ALIAS:
                return _BY_ALIAS[rest]
    return None


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
    """Canonical name → value; when several fields mean the same (Phone, Mobile) the first non-empty one wins."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        name = canonical_field(key)
        if name is not None and name not in out and text_of(value) is not None:
            out[name] = value
    return out


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


_CONSENT = re.compile(
    r"consent|gdpr|opt_?in|newsletter|subscribe|marketing|communications|further_contact|agree|accept"
)
_NOT_CONSENT = re.compile(r"privacy|terms|tos|conditions|policy")


@lru_cache(maxsize=4096)
def is_consent_field(key: str) -> bool:
    """A checkbox asking for further contact; "I have read the privacy notice" is acknowledgement, not consent."""
    norm = normalize_key(key)
    return bool(_CONSENT.search(norm)) and not _NOT_CONSENT.search(norm)


def flatten(pairs: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return list(pairs.items())
