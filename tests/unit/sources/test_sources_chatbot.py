"""Chatbot: Drift-style conversation webhooks, Intercom's and LiveChat's."""

from __future__ import annotations

import json
from typing import Any

import pytest
from source_payloads import PEPPER, ctx_for, payload

from pipeline import normalize
from pipeline.models.common import InteractionKind, Purpose
from pipeline.sources import NothingToTake, SourceError, chatbot


def parse(name: str):  # type: ignore[no-untyped-def]
    raw, content_type = payload("chatbot", name)
    return chatbot.parse(raw, ctx_for("chatbot", raw, content_type))


def test_drift_conversation_with_transcript() -> None:
    [event] = parse("drift_conversation.json")
    person = event.person
    assert person.email == "m.rossi@studio-rossi.example.it"
    assert person.phone == "+390612345678"
    assert person.skype_id == "live:marco.rossi_77"
    assert person.position == "Founder" and person.country_code == "IT"
    assert event.interaction.kind is InteractionKind.CHAT
    assert [u.author for u in event.interaction.transcript] == ["bot", "person", "agent"]
    assert event.interaction.transcript[1].text == "We need a mobile app for our architecture studio."  # HTML stripped
    assert event.interaction.transcript[2].text == "Happy to help & set up a call!"
    assert event.interaction.message == event.interaction.transcript[1].text
    assert event.provenance.bot_id == "1177"
    assert [c.purpose for c in event.consents] == [Purpose.FURTHER_CONTACT]
    assert event.consents[0].method == "chat_answer"


def test_drift_contact_identified() -> None:
    [event] = parse("drift_contact_identified.json")
    assert event.person.email == "LISA.SCHMIDT@firma.example"
    assert event.person.skype_id == "lisa.schmidt.firma"
    assert event.person.linkedin_url == "https://www.linkedin.com/in/lisaschmidt"
    assert event.consents == ()


def test_conversation_without_identity_is_refused_with_the_field() -> None:
    with pytest.raises(SourceError) as err:
        parse("drift_no_identity.json")
    assert err.value.reason == "no_identity"
    assert err.value.field == "data.contact.attributes.email"


@pytest.mark.parametrize(
    "where",
    [
        lambda data: data["attributes"].update(visitor_id="drift-visitor-9"),
        lambda data: data.update(anonymousId="drift-visitor-9"),
    ],
)
def test_the_visitor_s_cookie_id_links_the_chat_to_the_visitor_s_history(where: Any) -> None:
    document = json.loads(payload("chatbot", "drift_contact_identified.json")[0])
    where(document["data"])
    raw = json.dumps(document).encode()
    [event] = chatbot.parse(raw, ctx_for("chatbot", raw, "application/json"))
    assert event.provenance.visitor_key == normalize.visitor_key(PEPPER, "drift-visitor-9")
    assert event.subject_key == normalize.subject_key(PEPPER, email="lisa.schmidt@firma.example")


def test_intercom_conversation_person_from_the_user_who_wrote_and_the_parts_as_transcript() -> None:
    """In Intercom a ``user`` is the person (in Drift an agent); parts without a body (an assignment) carry nothing."""
    [event] = parse("intercom_conversation.json")
    person = event.person
    assert (person.first_name, person.last_name, person.email) == ("Sofia", "Andersson", "sofia@tandklinik.example.se")
    assert [(t.author, t.text) for t in event.interaction.transcript] == [
        ("person", "Hi, do you build booking systems for dental clinics?"),
        ("agent", "We do! May I ask how many clinics?"),
        ("person", "Three, in Stockholm."),
    ]
    assert event.interaction.message == "Hi, do you build booking systems for dental clinics?"
    assert event.interaction.page_url == "https://www.example.com/services/healthcare"
    assert event.occurred_at.isoformat() == "2024-06-05T12:20:00+00:00"


def test_intercom_contact_notification() -> None:
    raw = (
        b'{"type": "notification_event", "topic": "contact.lead.created", "app_id": "a1", "data": {"item": '
        b'{"type": "contact", "role": "lead", "email": "lead@example.de", "phone": "030 1234567", "name": "Eva Weber",'
        b' "created_at": 1717590000, "location": {"city": "Berlin", "country": "Germany"}}}}'
    )
    [event] = chatbot.parse(raw, ctx_for("chatbot", raw, "application/json"))
    assert (event.person.first_name, event.person.email, event.person.phone) == (
        "Eva",
        "lead@example.de",
        "+49301234567",
    )


def test_livechat_chat_customer_and_session_fields() -> None:
    [event] = parse("livechat_incoming_chat.json")
    person = event.person
    assert (person.first_name, person.last_name) == ("Kenji", "Watanabe")
    assert (person.phone, person.company) == ("+81312345678", "Watanabe Trading")
    assert [t.author for t in event.interaction.transcript] == ["person", "agent"]  # the system message is not said
    assert event.interaction.page_url == "https://www.example.com/pricing"


def test_an_intercom_conversation_without_an_identified_author_names_the_field() -> None:
    raw = (
        b'{"type": "notification_event", "topic": "conversation.user.created", "data": {"item": {"type": '
        b'"conversation", "source": {"body": "<p>hi</p>", "author": {"type": "lead", "id": "x"}}}}}'
    )
    with pytest.raises(SourceError) as err:
        chatbot.parse(raw, ctx_for("chatbot", raw, "application/json"))
    assert err.value.problems[0].field == "data.item.source.author.email"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tawk_chat_start.json", ("Ana", "García", "ana@example.es", None, "Hi, do you ship to Spain?")),
        ("tawk_ticket_create.json", ("Ana", "García", "ana@example.es", None, "Send me pricing please")),
        ("manychat_contact.json", ("Ana", "García", "ana@example.es", "+34600123456", "I want a demo")),
        ("landbot_customer.json", ("Ana", "García", "ana@example.es", "+34600123456", "Need a quote")),
    ],
)
def test_chat_tools_as_they_send(name: str, expected: tuple[str | None, ...]) -> None:
    """tawk.to's chat and ticket webhooks (the visitor, the requester), ManyChat's full contact data and Landbot's
    customer: each was refused no_identity before."""
    [event] = parse(name)
    person = event.person
    got = (person.first_name, person.last_name, person.email, person.phone, event.interaction.message)
    assert got == expected
    assert all(t.author == "person" for t in event.interaction.transcript)


def _chat(body: dict[str, Any]):  # type: ignore[no-untyped-def]
    raw = json.dumps(body).encode()
    [event] = chatbot.parse(raw, ctx_for("chatbot", raw, "application/json"))
    return event


def test_a_chat_service_s_visitor_object_with_its_contact_attributes() -> None:
    """Brevo's chat webhook names the person as ``visitor`` with Brevo's contact attributes (``EMAIL``, ``SMS``);
    its one ``message`` or its ``messages`` are the words, each by its ``type``: all rejected ``no_identity`` before."""
    started = _chat(
        {
            "eventName": "conversationStarted",
            "message": {"type": "visitor", "text": "Hi, I need a quote", "createdAt": 1717600000000},
            "visitor": {
                "id": "v1",
                "attributes": {"EMAIL": "jane@example.com", "FIRSTNAME": "Jane", "SMS": "+14155552671"},
            },
        }
    )
    assert (started.person.email, started.person.first_name, started.person.phone) == (
        "jane@example.com", "Jane", "+14155552671"
    )  # fmt: skip
    assert started.interaction.message == "Hi, I need a quote"
    transcript = _chat(
        {
            "eventName": "conversationTranscript",
            "messages": [{"type": "visitor", "text": "Hello"}, {"type": "agent", "text": "How can I help?"}],
            "visitor": {"attributes": {"EMAIL": "jane@example.com"}},
        }
    )
    assert [(t.author, t.text) for t in transcript.interaction.transcript] == [
        ("person", "Hello"), ("agent", "How can I help?")
    ]  # fmt: skip


def test_zoho_salesiq_s_visitor_in_the_event_s_entity() -> None:
    event = _chat(
        {
            "event_type": "conversation.created",
            "entity": {"visitor": {"name": "Jane Doe", "email": "jane@example.com", "phone": "+14155552671"}},
        }
    )
    assert (event.person.first_name, event.person.last_name, event.person.email) == ("Jane", "Doe", "jane@example.com")


def test_a_visitor_without_an_address_or_number_is_still_no_identity() -> None:
    raw = json.dumps({"visitor": {"name": "Jane", "attributes": {"FIRSTNAME": "Jane"}}}).encode()
    with pytest.raises(SourceError) as err:
        chatbot.parse(raw, ctx_for("chatbot", raw, "application/json"))
    assert err.value.problems[0].reason == "no_identity"


def test_an_agent_named_as_user_or_sender_is_no_lead() -> None:
    raw = json.dumps({"sender": {"email": "agent@ourcompany.example"}, "user": {"email": "agent@ourcompany.example"}})
    with pytest.raises(SourceError) as err:
        chatbot.parse(raw.encode(), ctx_for("chatbot", raw.encode(), "application/json"))
    assert err.value.problems[0].reason == "no_identity"


def _ignored(body: dict[str, Any]) -> str:
    raw = json.dumps(body).encode()
    with pytest.raises(NothingToTake) as taken:
        chatbot.parse(raw, ctx_for("chatbot", raw, "application/json"))
    return taken.value.reason


@pytest.mark.parametrize(
    "attributes",
    [
        {"unsubscribed": True},
        {"unsubscribed_from_emails": "yes"},
        {"email_unsubscribed": True},
        {"marketing_opt_out": "yes"},
        {"doNotContact": True},
        {"subscribed": "2024-06-05T12:20:00+00:00"},  # ManyChat: when the person subscribed to the bot, no consent
    ],
)
def test_an_opt_out_or_a_date_is_no_consent(attributes: dict[str, Any]) -> None:
    """Drift's ``unsubscribed: true`` and ManyChat's ``subscribed`` date became a granted further-contact consent."""
    event = _chat({"type": "contact_identified", "data": {"attributes": {"email": "ola@example.no", **attributes}}})
    assert event.consents == ()
    assert _chat({"data": {"attributes": {"email": "ola@example.no", "marketing_opt_in": True}}}).consents != ()


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("contact.deleted", "intercom_contact_change"),
        ("contact.archived", "intercom_contact_change"),
        ("contact.tag.created", "intercom_contact_change"),
        ("contact.unsubscribed", "intercom_unsubscribe"),
    ],
)
def test_an_intercom_contact_notice_other_than_a_new_contact_is_no_lead(topic: str, reason: str) -> None:
    """A deleted, archived or unsubscribed Intercom contact became a chat lead."""
    item = {"type": "contact", "role": "user", "email": "ola@example.no", "name": "Ola Nordmann"}
    assert _ignored({"type": "notification_event", "topic": topic, "data": {"item": item}}) == reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (  # LiveChat: a chat closed; one event of a chat, an agent's message
            {"action": "chat_deactivated", "organization_id": "o", "payload": {"chat_id": "C", "user_id": "a@x.ex"}},
            "chat_status",
        ),
        (
            {"action": "incoming_event", "organization_id": "o", "payload": {"chat_id": "C", "event": {
                "type": "message", "text": "hi", "author_id": "agent@ourco.example"}}},
            "chat_event",
        ),
        (  # Drift: an agent's (a Drift user's) message; a conversation's status
            {"orgId": 1, "type": "new_message", "data": {"body": "<p>Hi</p>", "author": {"id": 5, "type": "user"}}},
            "agent_message",
        ),
        ({"orgId": 1, "type": "conversation_status_updated", "data": {"conversationId": 1, "status": "closed"}},
         "chat_status"),
        (  # Intercom: a conversation an agent started
            {"type": "notification_event", "topic": "conversation.admin.single.created", "data": {"item": {
                "type": "conversation", "source": {"body": "<p>Hi from sales</p>", "author": {
                    "type": "admin", "email": "anna@ourco.example"}}}}},
            "agent_message",
        ),
    ],
)  # fmt: skip
def test_chat_notices_that_name_no_person_are_ignored_not_dead_lettered(body: dict[str, Any], reason: str) -> None:
    assert _ignored(body) == reason


def test_a_drift_message_the_person_wrote_is_still_read() -> None:
    raw = json.dumps({"type": "new_message", "data": {"author": {"type": "contact"}, "body": "hi"}}).encode()
    with pytest.raises(SourceError) as err:  # no contact in it: refused as before, not ignored
        chatbot.parse(raw, ctx_for("chatbot", raw, "application/json"))
    assert err.value.reason == "no_identity"


def test_manychat_s_whatsapp_subscriber_is_read_by_its_whatsapp_phone() -> None:
    event = _chat({"id": "1", "first_name": "Martín", "whatsapp_phone": "+5491123456789", "last_input_text": "Hola"})
    assert (event.person.first_name, event.person.phone) == ("Martín", "+5491123456789")


@pytest.mark.parametrize(
    "body",
    [
        {"email": "ana@example.es", "last_input_text": "hola", "last_interaction": "2024-06-05T12:20:00+00:00"},
        {"event": "session:set_email", "timestamp": 1717590000000, "data": {"visitor": {"email": "ana@example.es"}}},
        {"visitor": {"email": "ana@example.es"}, "messages": [{"type": "visitor", "text": "hi",
                                                             "createdAt": 1717590000000}]},
    ],
)  # fmt: skip
def test_a_chat_s_own_time_is_its_time_not_the_receipt(body: dict[str, Any]) -> None:
    """ManyChat's ``last_interaction``, Crisp's ``timestamp`` and Brevo's dated messages: the receipt time before."""
    assert _chat(body).occurred_at.isoformat() == "2024-06-05T12:20:00+00:00"
