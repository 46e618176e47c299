"""Web forms: Contact Form 7 (urlencoded and multipart), HubSpot forms, Gravity webhooks."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from source_payloads import PEPPER, ctx_for, payload

from pipeline import normalize
from pipeline.importer import split_records
from pipeline.models.common import InteractionKind, Purpose
from pipeline.sources import NothingToTake, SourceError, formdata, web_form


def parse(name: str):  # type: ignore[no-untyped-def]
    raw, content_type = payload("web_form", name)
    return web_form.parse(raw, ctx_for("web_form", raw, content_type))


def test_cf7_contact_us_post() -> None:
    [event] = parse("cf7_contact_us.txt")
    person = event.person
    assert (person.first_name, person.last_name) == ("Jürgen", "Müller")
    assert person.email == "Juergen.Mueller@example.de"
    assert person.phone == "+49301234567"  # no prefix: Germany from the location
    assert person.country_code == "DE"
    assert person.company == "Müller Maschinenbau GmbH"
    assert event.interaction.kind is InteractionKind.CONTACT_US
    assert event.interaction.message is not None and "modernise our ERP" in event.interaction.message
    assert "\r" not in event.interaction.message
    assert event.interaction.honeypot is None  # present but empty: a human
    assert event.provenance.form_id == "1234"
    assert event.subject_key == normalize.subject_key(PEPPER, email="juergen.mueller@example.de")
    # the ticked marketing checkbox is the further-contact consent; the reCAPTCHA token is not kept anywhere
    [consent] = event.consents
    assert consent.purpose is Purpose.FURTHER_CONTACT and consent.method == "checkbox" and consent.granted
    assert "03AFcWeA" not in event.model_dump_json()


def test_filled_honeypot_is_kept_for_the_spam_stage_and_unticked_box_is_no_consent() -> None:
    [event] = parse("cf7_spam_honeypot.txt")
    assert event.interaction.honeypot == "http://cheap-links.example"
    assert event.consents == ()


def test_cf7_multipart_expert_request_with_upload() -> None:
    [event] = parse("cf7_expert_request.multipart")
    assert event.interaction.kind is InteractionKind.EXPERT_REQUEST
    assert (event.person.first_name, event.person.last_name) == ("Ana María", "García López")
    assert event.person.phone == "+34912345678"
    assert event.person.position == "CTO"
    assert event.interaction.attachments_ignored == ("project brief.pdf",)
    assert event.interaction.message is not None and "budget: 50k-100k EUR" in event.interaction.message
    [consent] = event.consents
    assert consent.wording == "I agree to be contacted about other services"


def test_hubspot_demo_request() -> None:
    [event] = parse("hubspot_demo_request.json")
    assert event.interaction.kind is InteractionKind.DEMO_REQUEST
    assert event.person.phone == "+447400123456"  # UK mobile without prefix, country field United Kingdom
    assert event.person.linkedin_url == "https://www.linkedin.com/in/priya-raman-42"
    assert event.provenance.ip == "203.0.113.45"
    assert event.occurred_at.isoformat() == "2024-06-05T15:06:40+00:00"
    # only the communication the person ticked; consentToProcess is not further-contact consent
    assert [c.wording for c in event.consents] == ["I agree to receive other communications from Example Inc."]


def test_gravity_white_paper_with_labels() -> None:
    [event] = parse("gravity_white_paper.json")
    assert event.interaction.kind is InteractionKind.WHITE_PAPER
    assert event.person.email == "chen.wei@startup.example.sg"
    assert event.person.phone == "+6561234567"
    assert event.consents == ()  # opt-in left empty
    assert event.interaction.message == "How did you hear about us?: LinkedIn ad"


def test_every_bad_field_is_named() -> None:
    with pytest.raises(SourceError) as err:
        parse("hubspot_invalid_fields.json")
    assert {(p.field, p.reason) for p in err.value.problems} == {("email", "invalid_email"), ("phone", "invalid_phone")}
    assert "tom@@example" not in err.value.explain()


def test_retried_post_gets_the_same_event_id_and_a_changed_one_does_not() -> None:
    raw, content_type = payload("web_form", "cf7_contact_us.txt")
    first = web_form.parse(raw, ctx_for("web_form", raw, content_type))[0]
    again = web_form.parse(raw, ctx_for("web_form", raw, content_type))[0]
    other = web_form.parse(raw + b"&x=1", ctx_for("web_form", raw + b"&x=1", content_type))[0]
    assert first.event_id == again.event_id != other.event_id


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"your-name": "No Contact"}, "no_identity"),
        ({"your-email": "a@b.example", "age": "fifteen"}, "invalid_age"),
        ({"your-email": "a@b.example", "skype": "!!"}, "invalid_skype_id"),
    ],
)
def test_rejections_are_typed(fields: dict[str, str], reason: str) -> None:
    raw = urlencode(fields).encode()
    with pytest.raises(SourceError) as err:
        web_form.parse(raw, ctx_for("web_form", raw, "application/x-www-form-urlencoded"))
    assert err.value.reason == reason


def test_age_and_birth_date_are_extracted() -> None:
    raw = urlencode({"email": "teen@example.com", "age": "15", "date-of-birth": "2009-01-02"}).encode()
    [event] = web_form.parse(raw, ctx_for("web_form", raw, "application/x-www-form-urlencoded"))
    assert event.person.stated_age == 15
    assert str(event.person.birth_date) == "2009-01-02"


def test_malformed_json_is_a_malformed_rejection() -> None:
    raw = b'{"fields": [ {"name": "email", '
    with pytest.raises(SourceError) as err:
        web_form.parse(raw, ctx_for("web_form", raw, "application/json"))
    assert err.value.reason == "malformed_json" and err.value.malformed
    assert "line 1" in err.value.message


def test_repeated_fields_merge_into_one_list_in_order() -> None:
    raw = b"email=a%40example.com&interest[]=x&interest[]=y&interest=z&topic=t"
    [event] = web_form.parse(raw, ctx_for("web_form", raw, "application/x-www-form-urlencoded"))
    pairs = web_form._merge([("i[]", "x"), ("i", ["a", "b"]), ("i[]", "y"), ("j", "1")])
    assert pairs == [("i", ["x", ["a", "b"], "y"]), ("j", "1")]
    assert web_form._merge([("i", ["a", "b"]), ("i", "c")]) == [("i", ["a", "b", "c"])]
    assert event.person.email == "a@example.com"


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"email=a%40example.com" + b"&a=b" * formdata.MAX_FIELDS, "application/x-www-form-urlencoded"),
        (
            b'{"email": "a@example.com", "fields": ['
            + b",".join([b'{"name": "a", "value": "b"}'] * (formdata.MAX_FIELDS + 1))
            + b"]}",
            "application/json",
        ),
        (
            b'{"email": "a@example.com", ' + b", ".join(b'"f%d": 1' % i for i in range(formdata.MAX_FIELDS)) + b"}",
            "application/json",
        ),
        (
            b"".join(
                b'--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n' for _ in range(formdata.MAX_FIELDS + 1)
            )
            + b"--XX--\r\n",
            "multipart/form-data; boundary=XX",
        ),
    ],
    ids=["urlencoded", "json-fields", "json-flat", "multipart"],
)
def test_too_many_fields_is_a_typed_rejection(raw: bytes, content_type: str) -> None:
    with pytest.raises(SourceError) as err:
        web_form.parse(raw, ctx_for("web_form", raw, content_type))
    assert err.value.reason == "too_many_fields" and not err.value.malformed


def test_the_field_limit_is_inclusive() -> None:
    raw = b"email=a%40example.com" + b"&a=b" * (formdata.MAX_FIELDS - 1)
    [event] = web_form.parse(raw, ctx_for("web_form", raw, "application/x-www-form-urlencoded"))
    assert event.person.email == "a@example.com"


def test_hubspot_s_visitor_cookie_links_the_form_to_the_visitor_s_history() -> None:
    [event] = parse("hubspot_demo_request.json")
    assert event.provenance.visitor_key == normalize.visitor_key(PEPPER, "f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6")
    assert "f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6" not in event.model_dump_json()


@pytest.mark.parametrize("name", ["anonymous_id", "ajs_anonymous_id", "hutk", "visitor_id"])
def test_a_hidden_visitor_id_field_links_the_form_and_is_no_message_line(name: str) -> None:
    raw = urlencode({"your-email": "ann@example.com", "your-message": "Call me", name: "cookie-123"}).encode()
    [event] = web_form.parse(raw, ctx_for("web_form", raw, "application/x-www-form-urlencoded"))
    assert event.provenance.visitor_key == normalize.visitor_key(PEPPER, "cookie-123")
    assert event.subject_key == normalize.subject_key(PEPPER, email="ann@example.com")
    assert "cookie-123" not in event.model_dump_json()


def test_a_form_with_a_bad_visitor_id_is_kept_unlinked_with_a_note() -> None:
    raw = urlencode({"your-email": "ann@example.com", "anonymous_id": "not one"}).encode()
    [event] = web_form.parse(raw, ctx_for("web_form", raw, "application/x-www-form-urlencoded"))
    assert event.provenance.visitor_key is None and event.provenance.notes == ("visitor_id_invalid",)


def test_a_content_type_parsed_once_is_shared_read_only() -> None:
    """``parse_content_type`` keeps its answers per header: one caller must not change what the next one reads."""
    from pipeline.sources.base import parse_content_type

    media, params = parse_content_type("Text/CSV; Charset=ISO-8859-1")
    assert (media, dict(params)) == ("text/csv", {"charset": "ISO-8859-1"})
    with pytest.raises(TypeError):
        params["charset"] = "utf-8"  # type: ignore[index]
    assert parse_content_type("Text/CSV; Charset=ISO-8859-1")[1]["charset"] == "ISO-8859-1"
    assert parse_content_type("") == ("application/octet-stream", {})


def test_typeform_answers_are_read_by_ref_wording_or_type() -> None:
    """Typeform's refs are generated ids unless the form's author names them: the question's wording ("What's
    your first name?") or the answer's type (e-mail, phone) says which field it is; other answers are message lines."""
    [event] = parse("typeform_demo_request.json")
    person = event.person
    assert (person.first_name, person.last_name) == ("Kwame", "Mensah")
    assert (person.email, person.phone) == ("kwame@example.com.gh", "+233302123456")
    assert event.interaction.kind is InteractionKind.DEMO_REQUEST  # from the form's title
    assert event.provenance.form_id == "Abc123"
    assert event.occurred_at.isoformat() == "2024-06-01T09:02:11+00:00"
    assert event.interaction.message == "Team size: 11-50\nutm_source: linkedin"  # the upload is not contact data
    assert event.provenance.visitor_key is not None  # the hidden hutk field
    [consent] = event.consents  # a yes to the marketing question, worded as it was asked
    assert consent.purpose is Purpose.FURTHER_CONTACT and consent.wording == "May we send you marketing e-mails?"


def test_typeform_no_to_a_consent_question_is_no_consent() -> None:
    raw, content_type = payload("web_form", "typeform_demo_request.json")
    refused = raw.replace(b'"boolean": true', b'"boolean": false')
    assert refused != raw
    [event] = web_form.parse(refused, ctx_for("web_form", refused, content_type))
    assert event.consents == ()


def test_elementor_fields_are_read_by_id_or_title_with_the_page_and_ip() -> None:
    [event] = parse("elementor_contact.json")
    assert (event.person.first_name, event.person.last_name, event.person.email) == (
        "Grace",
        "Hopper",
        "grace@example.com",
    )
    assert event.interaction.message == "Demo please"
    assert event.interaction.page_url == "https://example.com/contact/"
    assert (event.provenance.ip, event.provenance.form_id) == ("203.0.113.9", "a1b2c3")


def test_a_generated_field_id_beside_a_readable_title_is_read_by_the_title() -> None:
    body = (
        b'{"form": {"id": "f1"}, "fields": {"field_3a1b2c": {"id": "field_3a1b2c", "title": "Phone", "value": '
        b'"+44 20 7946 0958"}, "email": {"id": "email", "title": "Email", "value": "a@example.org"}}}'
    )
    [event] = web_form.parse(body, ctx_for("web_form", body, "application/json"))
    assert (event.person.phone, event.person.email) == ("+442079460958", "a@example.org")


def test_webflow_form_submission() -> None:
    [event] = parse("webflow_contact.json")
    assert (event.person.first_name, event.person.last_name) == ("Ada", "Lovelace")
    assert (event.person.email, event.person.phone) == ("ada@example.org", "+442079460958")
    assert event.interaction.subject == "Contact Form"
    assert event.provenance.form_id == "65429eadebe8a9f3a30f62d0"
    assert event.occurred_at.isoformat() == "2022-09-14T12:35:16.117000+00:00"


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        (  # Italian: "Nome" + "Cognome"; a national number in the country named in Italian
            {
                "Nome": "Mario",
                "Cognome": "Rossi",
                "Email": "mario@esempio.it",
                "Telefono": "06 1234 5678",
                "Azienda": "Rossi Srl",
                "Paese": "Italia",
                "Oggetto": "Preventivo",
                "Messaggio": "Buongiorno",
            },
            ("Mario", "Rossi", "mario@esempio.it", "+390612345678", "IT", "Rossi Srl", "Preventivo", "Buongiorno"),
        ),
        (  # French, accented field names, "Votre message"
            {
                "Prénom": "Zoë",
                "Nom": "Brontë",
                "Courriel": "zoe@exemple.fr",
                "Téléphone": "01 23 45 67 89",
                "Pays": "France",
                "Société": "Exemple SARL",
                "Objet": "Devis",
                "Votre message": "Bonjour",
            },
            ("Zoë", "Brontë", "zoe@exemple.fr", "+33123456789", "FR", "Exemple SARL", "Devis", "Bonjour"),
        ),
    ],
)
def test_a_form_is_read_by_field_names_in_its_own_language(form: dict[str, str], expected: tuple[str, ...]) -> None:
    body = urlencode(form).encode()
    [event] = web_form.parse(body, ctx_for("web_form", body, "application/x-www-form-urlencoded"))
    person, interaction = event.person, event.interaction
    assert (
        person.first_name,
        person.last_name,
        person.email,
        person.phone,
        person.country_code,
        person.company,
        interaction.subject,
        interaction.message,
    ) == expected


def test_elementor_s_plain_webhook_keeps_the_person_the_request_fields_out_of_the_message() -> None:
    """Elementor Pro's default webhook: labels as keys, the site's own date format ("May 15, 2024", no zone: read as
    written), the sender's IP and browser. The IP and browser go to the provenance, not into the message text; a
    date leadpipe does not read leaves the receipt time and a note instead of losing the lead."""
    body = urlencode(
        {
            "Name": "Grace Hopper",
            "Email": "grace@example.com",
            "Message": "Demo please",
            "Date": "May 15, 2024",
            "Page URL": "https://example.com/contact/",
            "User Agent": "Mozilla/5.0",
            "Remote IP": "203.0.113.9",
            "Powered by": "Elementor",
            "form_id": "a1b2c3",
            "form_name": "New Form",
        }
    ).encode()
    ctx = ctx_for("web_form", body, "application/x-www-form-urlencoded")
    [event] = web_form.parse(body, ctx)
    assert (event.person.first_name, event.person.email) == ("Grace", "grace@example.com")
    assert event.interaction.message == "Demo please"
    assert (event.provenance.ip, event.provenance.user_agent) == ("203.0.113.9", "Mozilla/5.0")
    assert (event.provenance.form_id, event.interaction.subject) == ("a1b2c3", "New Form")
    assert event.provenance.notes == ()
    assert event.occurred_at.isoformat() == "2024-05-15T00:00:00+00:00"
    unread = body.replace(b"May+15%2C+2024", b"yesterday")
    [event] = web_form.parse(unread, ctx_for("web_form", unread, "application/x-www-form-urlencoded"))
    assert event.provenance.notes == (web_form.SUBMITTED_AT_INVALID,)
    assert event.occurred_at == ctx.received_at


def test_jotform_answers_are_read_from_its_raw_request() -> None:
    """Jotform posts every answer in ``rawRequest`` (JSON, ``q<n>_<name>``, composite name, phone and address
    objects) and again as ``pretty`` text; the answers are read once, the form's machinery and ``pretty`` not at all."""
    [event] = parse("jotform_contact.multipart")
    person = event.person
    assert (person.first_name, person.last_name, person.email) == ("John", "Smith", "john@example.com")
    assert (person.phone, person.country_code, person.location) == ("+14155550132", "US", "San Francisco")
    assert person.company_address == "500 Market St, 94105, San Francisco, CA"
    assert event.interaction.message == "Hello, I need a quote"  # the long-text question, named typeA by Jotform
    assert (event.interaction.subject, event.provenance.form_id, event.provenance.ip) == (
        "Contact Us",
        "230000000000000",
        "203.0.113.9",
    )


def test_a_jotform_raw_request_that_is_not_json_is_malformed() -> None:
    body = urlencode({"formID": "1", "rawRequest": "{not json"}).encode()
    with pytest.raises(SourceError) as err:
        web_form.parse(body, ctx_for("web_form", body, "application/x-www-form-urlencoded"))
    assert (err.value.problems[0].reason, err.value.field) == ("malformed_form", "rawRequest")


def test_hubspot_workflow_contact_webhook_reads_the_person_and_the_latest_form() -> None:
    """HubSpot's "send a webhook" workflow action posts the contact: its properties as ``{"value": ...}`` (HubSpot's
    own dozens, analytics source, lifecycle stage, IP city, are not a message) and its form submissions."""
    [event] = parse("hubspot_workflow_contact.json")
    person = event.person
    assert (person.first_name, person.last_name, person.email) == ("Brian", "Halligan", "bh@hubspot.example")
    assert (person.phone, person.company) == ("+16175550100", "HubSpot")
    assert event.interaction.message == "Interested in a demo"
    assert event.interaction.kind is InteractionKind.DEMO_REQUEST  # the latest submission's form
    assert (event.provenance.form_id, event.interaction.page_url) == (
        "7c7b0d31-8a6f-4a1f-9b34-3b5d2a1e6f8c",
        "https://example.com/demo",
    )
    assert event.occurred_at.isoformat() == "2024-06-05T12:20:00+00:00"


def test_anti_spam_machinery_is_neither_message_nor_lost() -> None:
    """Cloudflare Turnstile's and Akismet's check fields are the form's machinery, not lines of the message;
    Netlify Forms' ``bot-field`` and Akismet's ``ak_hp_textarea`` are honeypots, kept for the spam rule."""
    body = urlencode(
        {
            "your-name": "Ana Garcia",
            "your-email": "ana@example.com",
            "your-message": "Hello",
            "cf-turnstile-response": "0.AbCdEf123",
            "ak_js": "1717590000",
            "ak_hp_textarea": "",
        }
    ).encode()
    [event] = web_form.parse(body, ctx_for("web_form", body, "application/x-www-form-urlencoded"))
    assert event.interaction.message == "Hello" and event.interaction.honeypot is None
    for honeypot in ("bot-field", "ak_hp_textarea"):
        spam = urlencode({"email": "bot@example.com", "message": "Buy", honeypot: "http://spam.example"}).encode()
        [caught] = web_form.parse(spam, ctx_for("web_form", spam, "application/x-www-form-urlencoded"))
        assert (caught.interaction.honeypot, caught.interaction.message) == ("http://spam.example", "Buy")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tally_contact.json", ("Ana", None, "ana@example.es", None, None)),
        ("wix_contact.json", ("Ana", None, "ana@example.es", None, None)),
        ("facebook_lead_ad.json", ("Ana", "García", "ana@example.es", "+34600123456", None)),
        ("calendly_invitee_created.json", ("Ana", "García", "ana@example.es", "+34600123456", "Empresa SL")),
        ("google_forms_apps_script.json", ("Ana", "García", "ana@example.es", None, None)),
        ("netlify_contact.json", ("Ana", "García", "ana@example.es", None, None)),
        ("zoho_contact.json", ("Ana", "García", "ana@example.es", "+34600123456", None)),
        ("mailchimp_subscribe.txt", ("Ana", "García", "ana@example.es", "+34600123456", None)),
    ],
)
def test_form_tools_webhooks_as_they_send_them(name: str, expected: tuple[str | None, ...]) -> None:
    """Tally and Wix (fields listed in ``data``), a Facebook lead ad's ``field_data``, a Calendly booking (its
    questions' answers), a Google Form's Apps Script trigger, Netlify (each field sent twice), Zoho (a name object),
    Mailchimp's subscription (``data[merges][FNAME]``): each was refused ``no_identity`` or ``invalid_email`` before."""
    [event] = parse(name)
    person = event.person
    assert (person.first_name, person.last_name, person.email, person.phone, person.company) == expected


def test_what_the_form_tools_send_besides_the_fields_is_read_or_left_out() -> None:
    [tally] = parse("tally_contact.json")
    assert tally.interaction.message == "What do you need?: A quote for 50 seats"
    assert [c.wording for c in tally.consents] == ["I agree to receive marketing emails"]  # its label, ticked
    assert tally.occurred_at.isoformat() == "2024-06-05T10:00:00+00:00"
    [calendly] = parse("calendly_invitee_created.json")
    assert calendly.interaction.message == (
        "Please share anything that will help prepare for our meeting.: We need a demo"
    )  # the booking's links and time zone are not message lines
    [netlify] = parse("netlify_contact.json")
    assert netlify.interaction.message == "Call me"  # not "summary: <strong>Ana</strong> Call me"
    assert netlify.interaction.page_url == "https://example.com/contact"
    assert (netlify.provenance.ip, netlify.provenance.user_agent) == ("1.2.3.4", "Mozilla")
    [mailchimp] = parse("mailchimp_subscribe.txt")
    assert mailchimp.provenance.ip == "10.20.10.30" and mailchimp.provenance.form_id == "a6b5da1054"
    assert mailchimp.interaction.message is None  # Mailchimp's ids are not the person's words


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (
            b'{"event": "invitee.canceled", "payload": {"email": "ana@example.es"}}',
            "application/json",
            "booking_canceled",
        ),
        (
            b"type=unsubscribe&data%5Blist_id%5D=a6b5da1054&data%5Bemail%5D=ana%40example.es&data%5Baction%5D=unsub",
            "application/x-www-form-urlencoded",
            "mailchimp_unsubscribe",
        ),
        (  # an unknown type is counted under a code, never under the payload's own text
            b"type=jane%40example.com&data%5Blist_id%5D=a6b5da1054&data%5Bemail%5D=jane%40example.com",
            "application/x-www-form-urlencoded",
            "mailchimp_event",
        ),
    ],
)
def test_a_cancellation_or_an_unsubscribe_is_no_new_contact(body: bytes, content_type: str, reason: str) -> None:
    """Never a lead: leadpipe must not add again a person who unsubscribed or called a booking off."""
    with pytest.raises(NothingToTake) as taken:
        web_form.parse(body, ctx_for("web_form", body, content_type))
    assert taken.value.reason == reason


def test_form_tools_exports_record_by_record() -> None:
    """HubSpot's form submissions export (``results`` of ``values``) and Typeform's responses export (``items`` of
    ``answers``), split by ``leadpipe import`` into one record each."""
    hubspot = {
        "results": [
            {
                "submittedAt": 1717581600000,
                "values": [
                    {"name": "email", "value": "ana@example.es"},
                    {"name": "firstname", "value": "Ana"},
                    {"name": "message", "value": "Call me"},
                ],
                "pageUrl": "https://example.com/contact",
            }
        ],
        "paging": {"next": {"after": "x"}},
    }
    typeform = {
        "total_items": 1,
        "items": [
            {
                "landing_id": "l1",
                "token": "t1",
                "submitted_at": "2024-06-05T10:00:00Z",
                "answers": [
                    {"field": {"id": "f1", "type": "short_text", "ref": "first_name"}, "type": "text", "text": "Ana"},
                    {"field": {"id": "f2", "type": "email", "ref": "x"}, "type": "email", "email": "ana@example.es"},
                ],
            }
        ],
    }
    found = []
    for export in (hubspot, typeform):
        [record] = split_records(json.dumps(export).encode(), "json")
        [event] = web_form.parse(record.raw, ctx_for("web_form", record.raw, record.content_type))
        found.append((record.where, event.person.first_name, event.person.email, event.occurred_at.isoformat()))
    assert found == [
        ("results[0]", "Ana", "ana@example.es", "2024-06-05T10:00:00+00:00"),
        ("items[0]", "Ana", "ana@example.es", "2024-06-05T10:00:00+00:00"),
    ]


def test_wufoo_fields_by_their_structure() -> None:
    """Wufoo posts ``Field1``, ``Field2`` ... with a ``FieldStructure`` naming them: a name's parts by their labels,
    its bookkeeping (entry id, handshake key) never in the message."""
    [event] = parse("wufoo_contact.txt")
    assert (event.person.first_name, event.person.last_name, event.person.email) == ("Ana", "García", "ana@example.es")
    assert event.interaction.message == "Call me"
    assert event.provenance.ip == "1.2.3.4"
    assert event.occurred_at.isoformat() == "2024-06-05T10:00:00+00:00"


@pytest.mark.parametrize(
    "payload",
    [
        {
            "object": "page",
            "entry": [{"id": "1", "time": 1717581600, "changes": [{"field": "leadgen", "value": {"leadgen_id": "9"}}]}],
        },
        [{"objectId": 1246965, "subscriptionType": "contact.creation", "portalId": 62515, "occurredAt": 1717581600000}],
    ],
)
def test_a_webhook_that_only_names_the_lead_says_what_to_send(payload: object) -> None:
    """Meta's leadgen webhook and HubSpot's subscription events carry ids, not people: refused, saying what to send
    (before: ``no_identity`` and ``unexpected_shape``, which named no fix)."""
    raw = json.dumps(payload).encode()
    with pytest.raises(SourceError) as err:
        web_form.parse(raw, ctx_for("web_form", raw, "application/json"))
    assert err.value.reason == "unexpanded_webhook" and "send" in err.value.message


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (  # a Russian form (Tilda, Bitrix): its fields named in Russian
            {"Имя": "Анна", "Фамилия": "Кузнецова", "Электронная почта": "anna@example.ru",
             "Телефон": "+7 916 123-45-67", "Компания": "Яндекс", "Сообщение": "Хотим демо"},
            ("Анна", "Кузнецова", "anna@example.ru", "+79161234567", "Яндекс", "Хотим демо"),
        ),
        (  # a Japanese one
            {"お名前": "山田 太郎", "メールアドレス": "taro@example.co.jp", "電話番号": "+81 90-1234-5678",
             "会社名": "株式会社テスト", "お問い合わせ内容": "資料をください"},
            ("太郎", "山田", "taro@example.co.jp", "+819012345678", "株式会社テスト", "資料をください"),
        ),
        (  # a Turkish one, its dotted and cedilla letters folded like French accents
            {"Adı Soyadı": "Ayşe Yılmaz", "E-posta": "ayse@example.com.tr", "Telefon": "+90 532 123 45 67",
             "Şirket": "Koç Holding", "Mesaj": "Teklif istiyorum"},
            ("Ayşe", "Yılmaz", "ayse@example.com.tr", "+905321234567", "Koç Holding", "Teklif istiyorum"),
        ),
        (  # an Arabic one
            {"الاسم": "محمد العلي", "البريد الإلكتروني": "m@example.sa", "رقم الجوال": "+966 50 123 4567",
             "الشركة": "أرامكو", "الرسالة": "نريد عرضا"},
            ("محمد", "العلي", "m@example.sa", "+966501234567", "أرامكو", "نريد عرضا"),
        ),
    ],
)  # fmt: skip
def test_a_form_whose_fields_are_named_in_another_script(fields: dict[str, str], expected: tuple[str, ...]) -> None:
    """Field names in Cyrillic, Japanese or Arabic were folded to nothing (an ASCII-only key): every one unknown, the
    person's address and phone lines of the message and the form rejected ``no_identity``."""
    raw = json.dumps(fields).encode()
    [event] = web_form.parse(raw, ctx_for("web_form", raw, "application/json"))
    person = event.person
    got = (person.first_name, person.last_name, person.email, person.phone, person.company)
    assert (*got, event.interaction.message) == expected


@pytest.mark.parametrize(
    ("form_name", "kind"),
    [
        ("Demo anfordern", InteractionKind.DEMO_REQUEST),
        ("Demande de démo", InteractionKind.DEMO_REQUEST),
        ("Запросить демо", InteractionKind.DEMO_REQUEST),
        ("免费演示", InteractionKind.DEMO_REQUEST),
        ("Whitepaper herunterladen", InteractionKind.WHITE_PAPER),
        ("Télécharger le livre blanc", InteractionKind.WHITE_PAPER),
        ("資料ダウンロード", InteractionKind.WHITE_PAPER),
        ("Angebot anfordern", InteractionKind.EXPERT_REQUEST),
        ("Demande de devis", InteractionKind.EXPERT_REQUEST),
        ("Presupuesto sin compromiso", InteractionKind.EXPERT_REQUEST),
        ("見積もり依頼", InteractionKind.EXPERT_REQUEST),
        ("Kontaktformular", InteractionKind.CONTACT_US),
        ("Demolition works", InteractionKind.CONTACT_US),  # no demo: the form's default
    ],
)
def test_a_form_s_kind_is_read_from_its_name_in_other_languages(form_name: str, kind: InteractionKind) -> None:
    """The kind decides the purpose and legal basis (a demo request's is not a quote's): a German "Angebot anfordern"
    or a French "Demande de démo" were contact forms before."""
    raw = json.dumps({"form": {"name": form_name}, "email": "ana@example.com"}).encode()
    [event] = web_form.parse(raw, ctx_for("web_form", raw, "application/json"))
    assert event.interaction.kind is kind


@pytest.mark.parametrize(
    ("label", "consent"),
    [
        ("Einwilligung Marketing", True),
        ("Ja, ich bin einverstanden, dass Sie mich zu weiteren Leistungen kontaktieren", True),
        ("J'accepte de recevoir des offres", True),
        ("Acepto recibir comunicaciones comerciales", True),
        ("Согласие на рассылку", True),
        ("メールマガジンの配信に同意する", True),
        ("마케팅 정보 수신 동의", True),
        ("Ich habe die Datenschutzerklärung gelesen und bin einverstanden", False),  # an acknowledgement
        ("J'accepte la politique de confidentialité", False),
        ("Согласие на обработку персональных данных", False),
        ("Tagblatt Newsletter", True),  # "agb" inside a word is no terms and conditions
        ("個人情報の取り扱いに同意する", False),
        ("Unsubscribe from the newsletter", False),  # an opt-out ticked is a refusal, never a consent
        ("marketing_opt_out", False),
        ("Newsletter abbestellen", False),
    ],
)
def test_a_consent_checkbox_named_in_another_language(label: str, consent: bool) -> None:
    """A ticked box asking for further contact is the consent it words; one acknowledging the privacy notice or the
    processing of personal data is none (it was no consent either way before: its name was not read)."""
    raw = json.dumps({"email": "ana@example.com", label: "on"}).encode()
    [event] = web_form.parse(raw, ctx_for("web_form", raw, "application/json"))
    assert [c.purpose for c in event.consents] == ([Purpose.FURTHER_CONTACT] if consent else [])
    if consent:  # a sentence is what the person agreed to; a field's name is no wording
        worded = len(label.split()) >= 4 or label in ("メールマガジンの配信に同意する", "마케팅 정보 수신 동의")
        assert event.consents[0].wording == (label if worded else None)


@pytest.mark.parametrize(
    ("value", "consent"),
    [("нет", False), ("Nee", False), ("não", False), ("いいえ", False), ("Hayır", False), ("да", True), ("Sí", True)],
)
def test_a_consent_box_answered_in_another_language(value: str, consent: bool) -> None:
    """A Russian form's "нет" for a box left unticked was read as ticked (only English, German and French noes were
    known): a consent the person never gave. A yes is a tick, not the consent's wording."""
    raw = json.dumps({"email": "ana@example.com", "marketing_consent": value}).encode()
    [event] = web_form.parse(raw, ctx_for("web_form", raw, "application/json"))
    assert [(c.purpose, c.wording) for c in event.consents] == ([(Purpose.FURTHER_CONTACT, None)] if consent else [])


@pytest.mark.parametrize(
    ("value", "consent"),
    [
        ("No thanks", False),
        ("No, gracias", False),
        ("Non merci", False),
        ("Nee, bedankt", False),
        ("Nej tack", False),
        ("I do not agree", False),
        ("I don't want emails", False),
        ("Ich möchte keinen Newsletter", False),
        ("Je ne veux pas", False),
        ("Yes please", True),
        ("Yes, no spam", True),
        ("I agree to receive news and offers; my data will not be shared", True),
        ("Non-binding offers welcome", True),
        ("2024-06-05T12:20:00+00:00", False),  # a date says when, not whether: no checkbox posts one
        ("05.06.2024", False),
    ],
)
def test_a_no_written_as_a_sentence_is_no_consent(value: str, consent: bool) -> None:
    """A consent box answered "No thanks" or "I do not agree" was read as ticked: a consent the person refused."""
    raw = json.dumps({"email": "ana@example.com", "newsletter": value}).encode()
    [event] = web_form.parse(raw, ctx_for("web_form", raw, "application/json"))
    assert [c.purpose for c in event.consents] == ([Purpose.FURTHER_CONTACT] if consent else [])


@pytest.mark.parametrize(("bracket", "age"), [("25-34", 25), ("65+", 65), ("13-17", 13), ("Under 18", 0)])
def test_a_form_s_age_bracket_is_its_youngest_age_not_a_rejection(bracket: str, age: int) -> None:
    """A form asking for an age range ("25-34") was rejected whole (``invalid_age``, fatal): the lead was lost to the
    dead-letter topic. The youngest age of the bracket decides whether the person may be a child."""
    raw = json.dumps({"email": "ana@example.com", "age": bracket}).encode()
    [event] = web_form.parse(raw, ctx_for("web_form", raw, "application/json"))
    assert event.person.stated_age == age


def test_unbounce_s_webhook_reads_the_fields_of_its_data_json() -> None:
    """Unbounce posts the form's fields as a JSON object of lists in one form field, ``data.json``: every field was
    unknown and the lead rejected ``no_identity``."""
    posted = {
        "first_name": ["Jane"],
        "last_name": ["Doe"],
        "email": ["jane@example.com"],
        "phone_number": ["+1 415 555 2671"],
        "ip_address": ["203.0.113.5"],
        "date_submitted": ["2024-06-05"],
        "page_uuid": ["8a1e"],
        "interests": ["Pricing", "Integrations"],
    }
    outer = {"data.json": json.dumps(posted), "data.xml": "<x/>", "page_id": "8a1e", "page_name": "Demo landing",
             "page_url": "https://example.com/demo", "variant": "a"}  # fmt: skip
    raw = urlencode(outer).encode()
    [event] = web_form.parse(raw, ctx_for("web_form", raw, "application/x-www-form-urlencoded"))
    person = event.person
    assert (person.first_name, person.last_name, person.email, person.phone) == (
        "Jane", "Doe", "jane@example.com", "+14155552671"
    )  # fmt: skip
    assert (event.interaction.kind, event.interaction.subject) == (InteractionKind.DEMO_REQUEST, "Demo landing")
    assert event.interaction.page_url == "https://example.com/demo" and event.provenance.ip == "203.0.113.5"
    assert event.interaction.message == "interests: Pricing, Integrations"  # the page's bookkeeping is no message


def test_a_field_named_by_a_number_that_holds_an_address_is_the_e_mail() -> None:
    """Gravity Forms' webhook names fields by their number ("2"): with no field named as an e-mail, the first whose
    whole value is an address is the person's; a value that only mentions one is not."""
    raw = json.dumps({"form_id": "1", "1.3": "Jane", "2": "jane@example.com", "4": "mail bob@example.com"}).encode()
    [event] = web_form.parse(raw, ctx_for("web_form", raw, "application/json"))
    assert event.person.email == "jane@example.com"
    assert event.interaction.message == "1.3: Jane\n4: mail bob@example.com"
    raw = json.dumps({"4": "mail bob@example.com"}).encode()
    with pytest.raises(SourceError) as err:
        web_form.parse(raw, ctx_for("web_form", raw, "application/json"))
    assert err.value.problems[0].reason == "no_identity"


def test_salesforce_web_to_lead_s_own_fields_are_no_message_lines() -> None:
    fields = {"oid": "00D5e000000abcd", "retURL": "https://example.com/thanks", "first_name": "Jane",
              "email": "jane@example.com", "description": "Need pricing", "debug": "0",
              "debugEmail": "admin@example.com", "recordType": "0125e000000XyZ",
              "00N5e00000AbCdE": "Enterprise"}  # fmt: skip
    raw = urlencode(fields).encode()
    [event] = web_form.parse(raw, ctx_for("web_form", raw, "application/x-www-form-urlencoded"))
    assert event.interaction.message == "Need pricing\n00N5e00000AbCdE: Enterprise"  # a custom field stays


@pytest.mark.parametrize(
    ("country", "country_code", "location"),
    [("+49", "DE", None), ("0049", "DE", None), ("49", "DE", None), ("+1", None, None), ("Germany", "DE", "Germany")],
)
def test_a_country_code_picker_s_dialling_code_gives_the_phone_its_country(
    country: str, country_code: str | None, location: str | None
) -> None:
    """A form's country-code picker posts "+49" as the country: the national number was refused (or dropped beside
    an e-mail) and the location read "+49". One country's code is the country; "+1" (the US, Canada, ...) only the
    number's region, which gives the same E.164 number."""
    number = "(212) 736-5000" if country == "+1" else "0171 1234567"
    raw = json.dumps({"name": "Max Mustermann", "country_code": country, "phone": number}).encode()
    [event] = web_form.parse(raw, ctx_for("web_form", raw, "application/json"))
    assert event.person.phone == ("+12127365000" if country == "+1" else "+491711234567")
    assert (event.person.country_code, event.person.location) == (country_code, location)


@pytest.mark.parametrize(
    ("fields", "location", "phone"),
    [
        ({"city": "Austin", "state": "TX", "phone": "(512) 555-0123"}, "Austin, TX", "+15125550123"),
        ({"city": "Toronto", "province": "ON", "phone": "(416) 555-0199"}, "Toronto, ON", "+14165550199"),
        ({"state": "California", "phone": "(415) 555-2671"}, "California", "+14155552671"),
        ({"city": "Austin, TX", "state": "TX"}, "Austin, TX", None),
    ],
)
def test_a_separate_state_field_completes_the_location_and_gives_the_country(
    fields: dict[str, str], location: str, phone: str | None
) -> None:
    """HubSpot, Salesforce and Marketo forms ask the state apart from the city: it was a message line, the country
    unknown, and a national number (most of North America's) dropped as invalid."""
    raw = json.dumps({"email": "jane@example.com", **fields}).encode()
    [event] = web_form.parse(raw, ctx_for("web_form", raw, "application/json"))
    assert (event.person.location, event.person.phone) == (location, phone)
