"""Web forms (policy section 3): contact us, expert request, white-paper download, demo request.

Accepts what form tools actually send: a browser-style POST (``application/x-www-form-urlencoded`` or
``multipart/form-data``, as Contact Form 7 and Gravity Forms submit), a flat JSON object of fields (form-to-webhook
plugins), a ``fields`` list of ``{name|label, value}`` (HubSpot forms API, Gravity webhooks) with HubSpot's
``context`` and ``legalConsentOptions``, a HubSpot workflow's contact webhook (``vid``, ``properties``), a
``fields`` object of ``{id, title|label|name, value}`` (Elementor Pro, WPForms webhooks), Typeform's
``form_response`` (answers by type; a question is read by its ref or its wording: "What's your first name?"),
Webflow's ``form_submission`` trigger (``payload.data``), Jotform's webhook (its ``rawRequest`` answers), Tally's
and Wix's webhooks (``data.fields``, ``data.submissions``), a Facebook lead ad's ``field_data``, a Calendly booking
(``payload`` with ``questions_and_answers``), a Google Form's Apps Script trigger (``namedValues``), Netlify's form
webhook, Wufoo's (``Field1`` ... named by its ``FieldStructure``) and a Mailchimp audience webhook (a subscription;
an unsubscribe is no new contact); the exports of HubSpot's
form submissions (``values``) and Typeform's responses (``answers``) record by record.

A form may pass on the website visitor's cookie id (HubSpot's ``hutk`` / ``context.hutk``, a hidden
``anonymous_id`` or ``ajs_anonymous_id`` field, ...): it becomes ``provenance.visitor_key`` (an HMAC of it), which
links that visitor's anonymous browsing to the person who submitted the form.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import orjson

from pipeline.models.common import InteractionKind, Purpose
from pipeline.models.contact import Consent, ContactEvent
from pipeline.normalize import ADDRESS_IN_TEXT, clean_text
from pipeline.sources import fields, formdata
from pipeline.sources.base import (
    MAX_JSON_DEPTH,
    TICKED,
    NothingToTake,
    Problem,
    SourceContext,
    SourceError,
    array,
    build_person,
    checkbox_ticked,
    dig,
    interaction_kind,
    load_json,
    make_event,
    obj,
    parse_timestamp,
    require_object,
    text_of,
    too_deep,
    visitor_key_of,
)

CONTENT_TYPES = frozenset({"application/json", "application/x-www-form-urlencoded", "multipart/form-data"})

_INTERNAL = re.compile(
    r"^_|recaptcha|captcha|turnstile|^ak_js$|^hutk$|nonce|token|^submit$|^action$|^referer$|^page_?id$|^powered_?by$"
    # Salesforce Web-to-Lead's own fields: the org id, the page it returns to, its debug switches, the record type
    r"|^oid$|^returl$|^debug$|^debugemail$|^recordtype$",
    re.I,
)
_FORM_ID_KEYS = ("wpcf7", "formguid", "form_guid", "form_id", "formid", "gform_id", "gform_submit")
_FORM_NAME_KEYS = ("form_name", "form_title", "formname", "page_name", "pagename")
#: Fields a form plugin adds about the request (Elementor's "Remote IP" and "User Agent", a hidden ``ip_address``,
#: the form's id and name): kept in the provenance and the subject, never as lines of the message.
_IP_KEYS = ("ip_address", "remote_ip", "ip", "user_ip", "client_ip")
_USER_AGENT_KEYS = ("user_agent", "useragent")
_REQUEST_KEYS = frozenset((*_IP_KEYS, *_USER_AGENT_KEYS, *_FORM_ID_KEYS, *_FORM_NAME_KEYS))

#: The note of a form kept with its receipt time because the time it names is not one leadpipe reads (a site's own
#: format, "May 15, 2024"): the time a form was sent is not worth losing the person over.
SUBMITTED_AT_INVALID = "submitted_at_invalid"


def parse(raw: bytes, ctx: SourceContext) -> list[ContactEvent]:
    meta: dict[str, Any] = {}
    attachments: list[str] = []
    if ctx.content_type == "application/json":
        data = load_json(raw, ctx.charset)
        _refuse_notifications(data)
        pairs = _json_pairs(require_object(data), meta)
    elif ctx.content_type == "multipart/form-data":
        pairs = formdata.multipart_pairs(raw, ctx.params.get("boundary"), attachments)
    else:
        pairs = formdata.urlencoded_pairs(raw, ctx.charset)
    if (request := next((v for k, v in pairs if k == "rawRequest"), None)) is not None:
        pairs = _jotform_pairs(request, pairs, meta)
    if any(k == "data[list_id]" for k, _ in pairs):
        pairs = _mailchimp_pairs(pairs, meta)
    if (structure := next((v for k, v in pairs if k == "FieldStructure"), None)) is not None:
        pairs = _wufoo_pairs(structure, pairs, meta)
    if (posted := next((v for k, v in pairs if k == "data.json"), None)) is not None:
        pairs = _unbounce_pairs(posted, pairs, meta)
    return [_event(pairs, meta, attachments, ctx)]


def _posted_json(value: Any, field: str, what: str, *, reason: str = "unexpected_shape", empty: str = "") -> Any:
    """A JSON document a form tool posts as one field of its form post (Unbounce's ``data.json``, Wufoo's
    ``FieldStructure``, Jotform's ``rawRequest``), or a ``SourceError`` naming the field."""
    try:
        data = orjson.loads(text_of(value) or empty)
    except orjson.JSONDecodeError:
        raise SourceError(reason, field, f"{what} is not JSON") from None
    if too_deep(data):  # the readers below recurse
        raise SourceError(reason, field, f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
    return data


#: What Unbounce posts about the page and the submission beside its ``data.json``, and inside it.
_UNBOUNCE_UNREAD = frozenset(
    {"data.json", "data.xml", "page_id", "page_uuid", "variant", "time_submitted", "date_submitted", "page_url"}
)


def _unbounce_pairs(posted: Any, pairs: list[tuple[str, Any]], meta: dict[str, Any]) -> list[tuple[str, Any]]:
    """Unbounce's landing-page webhook: a form post whose ``data.json`` holds the fields, each a list of its values
    (``{"email": ["jane@example.com"]}``), beside the page's id, URL and name."""
    fields_posted = obj(_posted_json(posted, "data.json", "Unbounce's data.json"))
    outer = dict(pairs)
    meta["form_name"] = text_of(outer.get("page_name"))
    meta["form_id"] = text_of(outer.get("page_id"))
    meta["context"] = {"pageUri": outer.get("page_url") or _listed_value({"value": fields_posted.get("page_url")})}
    named = [(k, _listed_value({"value": v})) for k, v in fields_posted.items() if k not in _UNBOUNCE_UNREAD]
    return [*named, *((k, v) for k, v in pairs if k not in _UNBOUNCE_UNREAD and k not in ("page_name",))]


#: Wufoo's field types that say what a field holds whatever its title.
_WUFOO_TYPES = {"email": "email", "phone": "phone", "url": "page_url"}
#: What Wufoo posts besides the fields: its own bookkeeping (the handshake key is its shared secret).
_WUFOO_UNREAD = frozenset({"FieldStructure", "FormStructure", "EntryId", "CreatedBy", "DateCreated", "HandshakeKey"})


def _wufoo_pairs(structure: Any, pairs: list[tuple[str, Any]], meta: dict[str, Any]) -> list[tuple[str, Any]]:
    """Wufoo's webhook (``Field1`` ... with ``FieldStructure``): each field by its title (a name's parts as "Name
    First", "Name Last"), an e-mail or phone field by its type; Wufoo's bookkeeping left out, its ``IP`` kept as the
    sender's."""
    described = _posted_json(structure, "FieldStructure", "Wufoo's field structure")
    names: dict[str, str] = {}
    for field in array(obj(described).get("Fields")):
        title = text_of(obj(field).get("Title")) or ""
        kind = _WUFOO_TYPES.get(text_of(obj(field).get("Type")) or "")
        for sub in array(obj(field).get("SubFields")):
            if (sub_id := text_of(obj(sub).get("ID"))) is not None:
                names[sub_id] = f"{title} {text_of(obj(sub).get('Label')) or ''}".strip()
        if (field_id := text_of(obj(field).get("ID"))) is not None and field_id not in names:
            names[field_id] = kind or title or field_id
    meta["submitted_at"] = next((v for k, v in pairs if k == "DateCreated"), None)
    return [(names.get(k, k), v) for k, v in pairs if k not in _WUFOO_UNREAD]


#: Mailchimp's audience events that are no new contact, by the codes their receipts are counted under.
_MAILCHIMP_EVENTS = frozenset({"unsubscribe", "cleaned", "upemail", "campaign"})


def _mailchimp_pairs(pairs: list[tuple[str, Any]], meta: dict[str, Any]) -> list[tuple[str, Any]]:
    """A Mailchimp audience webhook (``type``, ``data[email]``, ``data[merges][FNAME]``): a subscription or a
    profile update is the person's fields; an unsubscribe, a cleaned address, an e-mail change or a campaign is no
    new contact (leadpipe never re-adds a person who unsubscribed; a withdrawal of consent is the DPO's right)."""
    kind = next((text_of(v) for k, v in pairs if k == "type"), None)
    if kind not in ("subscribe", "profile"):
        code = kind if kind in _MAILCHIMP_EVENTS else "event"  # a code, never the payload's own text
        raise NothingToTake(f"mailchimp_{code}", f"Mailchimp's {code} event: no new contact in it")
    meta["submitted_at"] = next((v for k, v in pairs if k == "fired_at"), None)
    meta["form_id"] = next((text_of(v) for k, v in pairs if k == "data[list_id]"), None)
    unread = {"type", "fired_at", "data[id]", "data[list_id]", "data[web_id]", "data[email_type]", "data[ip_opt]"}
    return [(k.replace("data[ip_signup]", "ip"), v) for k, v in pairs if k not in unread]


#: A Mailchimp member's status that is no new contact, by the code its audience webhook's event is counted under.
_MAILCHIMP_GONE = {"unsubscribed": "unsubscribe", "cleaned": "cleaned", "archived": "archived"}


def _mailchimp_member_pairs(data: dict[str, Any], meta: dict[str, Any]) -> list[tuple[str, Any]]:
    """A member of a Mailchimp audience as its API exports it (``GET /lists/{id}/members``: ``email_address``,
    ``status``, ``merge_fields``), one record each through ``leadpipe import``.

    An unsubscribed, cleaned (bounced) or archived member is no new contact: answered as the webhook answers its
    unsubscribe, per member. A subscribed member is a consent only where Mailchimp records the opt-in
    (``timestamp_opt``: when the subscriber confirmed it), as ``import`` (recorded in another system); a pending or
    transactional one gave none. ``consents_to_one_to_one_messaging`` is Mailchimp's default on every member, no
    choice anyone made, and is not read; nor is the rest of Mailchimp's bookkeeping (stats, tags, rating).
    """
    status = text_of(data.get("status"))
    if (code := _MAILCHIMP_GONE.get(status or "")) is not None:
        raise NothingToTake(f"mailchimp_{code}", f"a Mailchimp member with status {code}: no new contact in it")
    meta["form_id"] = text_of(data.get("list_id"))
    meta["submitted_at"] = text_of(data.get("timestamp_signup")) or text_of(data.get("timestamp_opt"))
    opted_in = parse_timestamp(text_of(data.get("timestamp_opt")), "timestamp_opt", [])
    if status == "subscribed" and opted_in is not None:
        meta["consents"] = [Consent(purpose=Purpose.FURTHER_CONTACT, granted=True, given_at=opted_in, method="import")]
    merged = [(key, value) for key, value in obj(data.get("merge_fields")).items() if _scalar(value)]
    return [
        ("email", data.get("email_address")),
        ("full_name", data.get("full_name")),
        *merged,
        ("ip", data.get("ip_signup")),
    ]


def _refuse_notifications(data: Any) -> None:
    """Webhooks that only name a lead by its id, each refused with what to send instead: Meta's ``leadgen`` change
    (the lead's ``field_data`` is read from the Graph API) and HubSpot's subscription events (``objectId``)."""
    changes = [c for e in array(obj(data).get("entry")) for c in array(obj(e).get("changes"))]
    if obj(data).get("object") == "page" and any(obj(c).get("field") == "leadgen" for c in changes):
        raise SourceError(
            "unexpanded_webhook",
            "entry",
            "a Facebook lead ad's webhook only names the lead (leadgen_id); send the lead as the Graph API gives it "
            "(GET /<leadgen_id>: field_data)",
        )
    if isinstance(data, list) and data and all(isinstance(e, dict) and "subscriptionType" in e for e in data):
        raise SourceError(
            "unexpanded_webhook",
            None,
            "HubSpot's subscription events only name the contact (objectId); send it from a workflow's webhook action "
            "or the contact as the CRM API gives it",
        )


def _json_pairs(data: dict[str, Any], meta: dict[str, Any]) -> list[tuple[str, Any]]:
    pairs = _json_fields(data, meta)
    if len(pairs) > formdata.MAX_FIELDS:
        raise formdata.too_many(len(pairs))
    return pairs


def _json_fields(data: dict[str, Any], meta: dict[str, Any]) -> list[tuple[str, Any]]:
    if isinstance(response := data.get("form_response"), dict):
        return _typeform_pairs(response, meta)
    if isinstance(data.get("answers"), list) and "landing_id" in data:  # a response of Typeform's responses API
        return _typeform_pairs(data, meta)
    if data.get("triggerType") == "form_submission" and isinstance(payload := data.get("payload"), dict):
        meta["form_id"] = text_of(payload.get("formId")) or text_of(payload.get("id"))
        meta["form_name"] = text_of(payload.get("name"))
        meta["submitted_at"] = payload.get("submittedAt")
        return list(obj(payload.get("data")).items())
    if isinstance(data.get("properties"), dict) and "vid" in data:  # a HubSpot workflow's contact webhook
        return _hubspot_contact_pairs(data, meta)
    if isinstance(data.get("merge_fields"), dict) and "email_address" in data and "status" in data:
        return _mailchimp_member_pairs(data, meta)  # a member of Mailchimp's audience, as its API exports it
    meta["context"] = obj(data.get("context")) or _elementor_context(obj(data.get("meta")))
    meta["legal"] = obj(data.get("legalConsentOptions"))
    form = obj(data.get("form"))
    meta["form_id"] = text_of(form.get("id")) or text_of(data.get("formGuid")) or text_of(data.get("formId"))
    meta["form_name"] = text_of(form.get("title")) or text_of(form.get("name"))
    meta["submitted_at"] = data.get("submittedAt", data.get("submitted_at"))
    if isinstance(listed := data.get("fields"), list):
        return _listed(listed, "fields")
    if isinstance(listed := data.get("values"), list):  # a submission of HubSpot's form submissions API
        meta["submitted_at"] = meta["submitted_at"] or data.get("submittedAt")
        meta["context"] = meta["context"] or {"pageUri": data.get("pageUrl")}
        return _listed(listed, "values")
    if data.get("event") == "invitee.canceled":  # Calendly: the booking of a lead taken before, called off
        raise NothingToTake("booking_canceled", "Calendly's cancellation of a booking: no new contact in it")
    for outer, container in (("data", obj(data.get("data"))), ("payload", obj(data.get("payload")))):
        for name in _FIELD_LISTS:  # Tally's data.fields, Wix's data.submissions, Calendly's payload's answers
            if isinstance(listed := container.get(name), list):
                meta["form_id"] = meta["form_id"] or text_of(container.get("formId"))
                meta["form_name"] = meta["form_name"] or text_of(container.get("formName"))
                meta["submitted_at"] = container.get("createdAt") or container.get("submissionTime")
                named = [(k, v) for k, v in container.items() if _scalar(v) and fields.canonical_field(k) is not None]
                return [*named, *_listed(listed, f"{outer}.{name}")]
    if isinstance(listed := data.get("field_data"), list):  # a Facebook (Meta) lead ad's lead, as its API gives it
        meta["form_id"] = meta["form_id"] or text_of(data.get("form_id"))
        meta["submitted_at"] = meta["submitted_at"] or data.get("created_time")
        return _listed(listed, "field_data")
    if isinstance(named_values := data.get("namedValues"), dict):  # a Google Form's Apps Script trigger (e.namedValues)
        return list(named_values.items())
    if isinstance(data.get("human_fields"), dict) and isinstance(data.get("data"), dict):  # Netlify's form webhook
        meta["form_name"] = meta["form_name"] or text_of(data.get("form_name"))
        meta["submitted_at"] = meta["submitted_at"] or data.get("created_at")
        return list(data["data"].items())  # its top level repeats them (name, email, body, summary in HTML)
    for wrapper in ("data", "submission", "entry", "fields", "posted_data"):
        if isinstance(data.get(wrapper), dict):
            inner = fields.flattened(_described_fields(data[wrapper]))
            return [*inner, *((k, v) for k, v in data.items() if k != wrapper and _scalar(v))]
    return fields.flattened(list(data.items()))


#: Lists of fields that describe themselves, inside a ``data`` or ``payload`` object.
_FIELD_LISTS = ("fields", "submissions", "questions_and_answers")


def _listed(listed: list[Any], path: str) -> list[tuple[str, Any]]:
    """A list of fields that describe themselves as (name, value) pairs: ``{name|label|title|question|key|id,
    value|values|answer}`` (HubSpot's forms API, Gravity, Tally, Wix, a Facebook lead's ``field_data``, Calendly's
    questions); a choice given by its option's id (Tally) is read as the option's text."""
    if len(listed) > formdata.MAX_FIELDS:
        raise formdata.too_many(len(listed))
    pairs: list[tuple[str, Any]] = []
    for position, item in enumerate(listed):
        if not isinstance(item, dict):
            raise SourceError("unexpected_shape", f"{path}[{position}]", "each field must be an object")
        names = ("name", "label", "title", "question", "key", "id")
        key = _field_key(*(item.get(name) for name in names))
        if key is None:
            raise SourceError("unexpected_shape", f"{path}[{position}]", "a field has neither a name nor a label")
        pairs.append((key, _listed_value(item)))
    return pairs


def _listed_value(item: dict[str, Any]) -> Any:
    value = item.get("value", item.get("values", item.get("answer")))
    options = {text_of(o.get("id")): o.get("text") for o in array(item.get("options")) if isinstance(o, dict)}
    if options:
        if isinstance(value, list):
            return [options.get(text_of(v), v) for v in value]
        return options.get(text_of(value), value)
    if isinstance(value, list) and len(value) == 1:  # a lead ad's "values": ["..."]
        return value[0]
    return value


def _field_key(*names: Any) -> str | None:
    """The first of a field's names (its id, name, label, question) that leadpipe reads, else the first one given:
    a form builder's generated id (``field_3a1b2c``) beside the label "Phone" is read as the phone."""
    given = [text for name in names if (text := text_of(name)) is not None]
    for name in given:
        if _readable(name):
            return name
    for name in given:  # a question: "What's your first name?", "Your e-mail"
        norm = fields.normalize_key(name)
        if "your_" in norm and fields.canonical_field(norm.rpartition("your_")[2]) is not None:
            return norm.rpartition("your_")[2]
    return given[0] if given else None


def _readable(name: str) -> bool:
    return (
        fields.canonical_field(name) is not None
        or fields.is_consent_field(name)
        or fields.is_honeypot(name)
        or _internal(name)
    )


#: Elementor Pro's webhook ``meta`` entries as the HubSpot ``context`` keys the event reads page, IP and browser from.
_ELEMENTOR_CONTEXT = {"page_url": "pageUri", "remote_ip": "ipAddress", "user_agent": "userAgent"}


def _elementor_context(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        key: entry.get("value") for name, key in _ELEMENTOR_CONTEXT.items() if isinstance(entry := meta.get(name), dict)
    }


def _described_fields(wrapped: dict[str, Any]) -> list[tuple[str, Any]]:
    """A ``fields`` object whose entries describe themselves (``{"id", "title", "value"}``: Elementor Pro, WPForms)
    as (name, value) pairs; plain values pass as they are."""
    pairs: list[tuple[str, Any]] = []
    for key, value in wrapped.items():
        if isinstance(value, dict) and ("value" in value or "raw_value" in value):
            name = _field_key(key, value.get("id"), value.get("name"), value.get("label"), value.get("title")) or key
            pairs.append((name, value.get("value", value.get("raw_value"))))
        else:
            pairs.append((key, value))
    return pairs


def _hubspot_contact_pairs(data: dict[str, Any], meta: dict[str, Any]) -> list[tuple[str, Any]]:
    """A HubSpot workflow's "send a webhook" with the contact (``vid``, ``properties`` of ``{"value": ...}``): the
    properties leadpipe reads (HubSpot's own dozens, ``hs_analytics_source``, ``lifecyclestage``, ..., are not the
    person's message), the latest form submission's id, title, page and time as the form's."""
    submissions = [item for item in array(data.get("form-submissions")) if isinstance(item, dict)]
    latest: dict[str, Any] = max(submissions, key=_submitted, default={})
    meta["form_id"] = text_of(latest.get("form-id"))
    meta["form_name"] = text_of(latest.get("title"))
    meta["submitted_at"] = latest.get("timestamp")
    meta["context"] = {"pageUri": latest.get("page-url")}
    return [(key, value) for key, value in _described_fields(data["properties"]) if _readable(key)]


def _submitted(submission: dict[str, Any]) -> float:
    stamp = submission.get("timestamp")
    return float(stamp) if isinstance(stamp, int | float) and not isinstance(stamp, bool) else 0.0


#: A Jotform question's key in ``rawRequest``: ``q<number>_<field name>``.
_JOTFORM_QUESTION = re.compile(r"q\d+_(.+)")
#: The names Jotform gives a long-text question unless its author renames it: the message.
_JOTFORM_LONG_TEXT = re.compile(r"typeA\d*")


def _jotform_pairs(request: Any, pairs: list[tuple[str, Any]], meta: dict[str, Any]) -> list[tuple[str, Any]]:
    """Jotform's webhook: its answers are in ``rawRequest`` (JSON), one ``q<n>_<name>`` per question, composite
    answers as objects (a name's ``first``/``last``, a phone's ``full`` or ``area``/``phone``, an address's lines,
    city and country); ``pretty`` repeats every answer as text and is left out. Its ``formID``, ``formTitle`` and
    ``ip`` are read as the form's and the sender's."""
    answers = obj(_posted_json(request, "rawRequest", "Jotform's rawRequest", reason="malformed_form", empty="{}"))
    posted = dict(pairs)
    meta["form_id"] = text_of(posted.get("formID"))
    meta["form_name"] = text_of(posted.get("formTitle"))
    read: list[tuple[str, Any]] = [("ip_address", posted.get("ip"))]
    for key, value in answers.items():
        if (question := _JOTFORM_QUESTION.fullmatch(key)) is None:
            continue  # the form's machinery: slug, event_id, timers, trackers
        name = "message" if _JOTFORM_LONG_TEXT.fullmatch(question.group(1)) else question.group(1)
        if not isinstance(value, dict):
            read.append((name, value))
        elif "first" in value or "last" in value:
            read += [("first_name", " ".join(filter(None, (text_of(value.get(k)) for k in ("first", "middle")))))]
            read += [("last_name", value.get("last"))]
        elif "full" in value or "phone" in value:
            read.append((name, text_of(value.get("full")) or " ".join(filter(None, map(text_of, value.values())))))
        elif "addr_line1" in value or "city" in value:
            lines = (text_of(value.get(k)) for k in ("addr_line1", "addr_line2", "postal", "city", "state"))
            read += [("address", ", ".join(filter(None, lines))), ("city", value.get("city"))]
            read += [("country", value.get("country"))]
    return read


#: Where a Typeform answer keeps its value, by the answer's type.
_TYPEFORM_VALUES = {
    "text": "text",
    "email": "email",
    "phone_number": "phone_number",
    "url": "url",
    "number": "number",
    "date": "date",
    "boolean": "boolean",
}
#: Answer types that say which field they are, whatever the question's wording.
_TYPEFORM_TYPED = {"email": "email", "phone_number": "phone"}


def _typeform_pairs(response: dict[str, Any], meta: dict[str, Any]) -> list[tuple[str, Any]]:
    """Typeform's webhook: each answer by its question's ref (set by the form's author) or its wording, else by its
    type (an e-mail or phone answer); a yes/no answer to a consent question carries the question as its wording;
    the hidden fields (``hutk``, ``page_url``, UTM tags) as they are."""
    definition = obj(response.get("definition"))
    meta["form_id"] = text_of(response.get("form_id")) or text_of(definition.get("id"))
    meta["form_name"] = text_of(definition.get("title"))
    meta["submitted_at"] = response.get("submitted_at")
    questions = {
        text_of(item.get("id")): text_of(item.get("title"))
        for item in array(definition.get("fields"))
        if isinstance(item, dict)
    }
    answers = array(response.get("answers"))
    if len(answers) > formdata.MAX_FIELDS:
        raise formdata.too_many(len(answers))
    pairs: list[tuple[str, Any]] = []
    for position, answer in enumerate(answers):
        if not isinstance(answer, dict):
            raise SourceError("unexpected_shape", f"answers[{position}]", "each answer must be an object")
        kind = text_of(answer.get("type")) or ""
        field = obj(answer.get("field"))
        question = questions.get(text_of(field.get("id")))
        value: Any
        if kind == "choice":
            choice = obj(answer.get("choice"))
            value = choice.get("label", choice.get("other"))
        elif kind == "choices":
            choices = obj(answer.get("choices"))
            value = [*array(choices.get("labels")), *([choices["other"]] if choices.get("other") else [])]
        elif kind in _TYPEFORM_VALUES:
            value = answer.get(_TYPEFORM_VALUES[kind])
        else:
            continue  # a file upload or a payment: not contact data
        key = _field_key(field.get("ref"), question)
        if key is None or not _readable(key):
            key = _TYPEFORM_TYPED.get(kind) or question or key or f"answer {position + 1}"
        if kind == "boolean" and fields.is_consent_field(key):
            value = (question or key) if value is True else False  # the question is what the person agreed to
        pairs.append((key, value))
    pairs.extend(obj(response.get("hidden")).items())
    return pairs


def _scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _merge(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Repeated keys (checkbox groups, ``name[]``) become one list-valued field (a first value that is a list, from
    JSON, is extended). Linear: each value is appended once (copying the list per repeat made 100,000 take 6 s)."""
    merged: dict[str, list[Any]] = {}
    for key, value in pairs:
        merged.setdefault(key.removesuffix("[]"), []).append(value)
    return [(name, _group(values)) for name, values in merged.items()]


def _group(values: list[Any]) -> Any:
    """One field's values: the value, or a list of the different ones (a form tool that sends a field in two places,
    Netlify's ``data.email`` and ``email``, sent one address, not two)."""
    first, *rest = values
    if not rest:
        return first
    grouped = [*first, *rest] if isinstance(first, list) else values
    distinct = [v for i, v in enumerate(grouped) if v not in grouped[:i]] if len(grouped) <= 50 else grouped
    return distinct[0] if len(distinct) == 1 else distinct


def _event(
    pairs: list[tuple[str, Any]], meta: dict[str, Any], attachments: list[str], ctx: SourceContext
) -> ContactEvent:
    problems: list[Problem] = []
    pairs = _merge(pairs)
    by_norm = {fields.normalize_key(k): v for k, v in pairs}
    honeypot: str | None = None
    consents_wording: list[tuple[str, str | None]] = []
    known: list[tuple[str, Any]] = []
    extra_lines: list[str] = []
    visitor_field: tuple[str, Any] | None = None
    for key, value in pairs:
        if visitor_field is None and fields.canonical_field(key) == "visitor_id" and text_of(value) is not None:
            visitor_field = (key, value)  # before the internal fields are left out: HubSpot posts its cookie as hutk
            continue
        if fields.is_honeypot(key):
            honeypot = honeypot or text_of(value)
            continue
        if fields.is_consent_field(key):
            if checkbox_ticked(value):
                consents_wording.append((key, _wording(value) or _label_wording(key)))
            continue
        if _internal(key) or fields.normalize_key(key) in _REQUEST_KEYS:
            continue
        if fields.canonical_field(key) is not None:
            known.append((key, value))
        elif (text := text_of(value)) is not None:
            extra_lines.append(f"{key.strip()}: {text}")
    values = fields.collect(known)
    if "email" not in values and (found := _unnamed_address(extra_lines)) is not None:
        values["email"] = extra_lines.pop(found).partition(": ")[2]
    context = meta.get("context") or {}
    unread: list[Problem] = []
    occurred = parse_timestamp(meta.get("submitted_at") or values.get("occurred_at"), "submitted_at", unread)
    problems.extend(Problem(SUBMITTED_AT_INVALID, p.field, p.message, fatal=False) for p in unread)
    person, subject = build_person(values, ctx, problems)
    if visitor_field is None and text_of(context.get("hutk")) is not None:  # HubSpot forms API: context.hutk
        visitor_field = ("context.hutk", context.get("hutk"))
    visitor = None
    if visitor_field is not None:
        visitor = visitor_key_of(visitor_field[1], ctx, problems, visitor_field[0], fatal=False)

    message = text_of(values.get("message"))
    if extra_lines:
        message = "\n".join([*([message] if message else []), *extra_lines])
    form_id = meta.get("form_id") or next((text_of(by_norm[k]) for k in _FORM_ID_KEYS if k in by_norm), None)
    form_name = meta.get("form_name") or next((text_of(by_norm[k]) for k in _FORM_NAME_KEYS if k in by_norm), None)
    page_url = text_of(values.get("page_url")) or text_of(context.get("pageUri"))
    kind = interaction_kind(
        text_of(values.get("form_type")),
        form_name,
        text_of(context.get("pageName")),
        page_url,
        text_of(values.get("subject")),
        default=InteractionKind.CONTACT_US,
    )
    given_at = occurred or ctx.received_at
    consents = [
        Consent(
            purpose=Purpose.FURTHER_CONTACT, granted=True, given_at=given_at, method="checkbox", wording=clean(wording)
        )
        for _key, wording in consents_wording
    ]
    consents.extend(_hubspot_consents(meta.get("legal") or {}, given_at))
    consents.extend(meta.get("consents") or ())  # recorded by the system the form came from (a Mailchimp member)
    interaction = {
        "kind": kind,
        "subject": clean_text(text_of(values.get("subject")) or form_name, 1000),
        "message": clean_text(message, 50_000),
        "page_url": clean_text(page_url, 2000),
        "honeypot": clean_text(honeypot, 2000),
        "attachments_ignored": tuple(attachments),
    }
    provenance = {
        "form_id": clean_text(form_id, 200),
        "ip": clean_text(text_of(context.get("ipAddress")) or _first(by_norm, _IP_KEYS), 64),
        "user_agent": clean_text(text_of(context.get("userAgent")) or _first(by_norm, _USER_AGENT_KEYS), 1000),
        "visitor_key": visitor,
    }
    return make_event(
        ctx,
        0,
        (person, subject),
        interaction,
        provenance=provenance,
        consents=consents,
        occurred_at=occurred,
        problems=problems,
    )


def _unnamed_address(lines: list[str]) -> int | None:
    """Which of the fields leadpipe does not know by name holds the person's e-mail address, when no field is named
    as one: the first whose value is an address and nothing else (Gravity Forms' webhook names its fields by number,
    ``"2": "jane@example.com"``; a builder's generated id). None when there is no such field."""
    return next(
        (i for i, line in enumerate(lines) if ADDRESS_IN_TEXT.fullmatch(line.partition(": ")[2].strip())),
        None,
    )


def _first(by_norm: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((text for key in keys if (text := text_of(by_norm.get(key))) is not None), None)


@lru_cache(maxsize=4096)
def _internal(key: str) -> bool:
    """A field the form's machinery adds (captcha, nonce, submit button), not the person: kept per field name."""
    return bool(_INTERNAL.search(key) or _INTERNAL.search(fields.normalize_key(key)))


def clean(text: str | None) -> str | None:
    return clean_text(text, 2000)


def _wording(value: Any) -> str | None:
    """A checkbox that sends its label ("I agree to be contacted about other services") carries its own wording."""
    text = text_of(value)
    if text is None or text.lower() in TICKED:
        return None
    return text


def _label_wording(key: str) -> str | None:
    """A consent field named by its label ("I agree to receive marketing e-mails", as Tally, Wix and HubSpot's fields
    list send it; "メールマガジンの配信に同意する", eight or more CJK or Hangul characters) carries what the person
    agreed to; a field name (``acceptance-marketing``, ``同意``) does not."""
    text = key.strip()
    east_asian = sum(1 for c in text if "\u2e80" <= c <= "\ud7af")  # CJK and Hangul: a sentence without spaces
    return text if len(text.split()) >= 4 or east_asian >= 8 else None


def _hubspot_consents(legal: dict[str, Any], given_at: Any) -> list[Consent]:
    """HubSpot's ``legalConsentOptions.consent.communications``: one entry per subscription the person ticked."""
    out: list[Consent] = []
    communications = dig(legal, "consent", "communications")
    if not isinstance(communications, list):
        return out
    for item in communications:
        if isinstance(item, dict) and item.get("value") is True:
            out.append(
                Consent(
                    purpose=Purpose.FURTHER_CONTACT,
                    granted=True,
                    given_at=given_at,
                    method="checkbox",
                    wording=clean(text_of(item.get("text"))),
                )
            )
    return out
