"""Crisp's, Freshchat's and Sunshine Conversations' (Zendesk) webhooks: the person who wrote and their words; the
operator's, agent's or business's messages and the services' other events answered without a contact."""

from __future__ import annotations

import json
from typing import Any

import pytest
from source_payloads import PAYLOADS, ctx_for

from pipeline.models.contact import ContactEvent
from pipeline.sources import NothingToTake, SourceError, chatbot


def _body(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PAYLOADS / "chatbot" / name).read_bytes())
    return loaded


def _parse(body: dict[str, Any]) -> list[ContactEvent]:
    raw = json.dumps(body).encode()
    return chatbot.parse(raw, ctx_for("chatbot", raw, "application/json"))


def _ignored(body: dict[str, Any]) -> str:
    with pytest.raises(NothingToTake) as taken:
        _parse(body)
    return taken.value.reason


def test_crisp_s_visitor_message_is_the_visitor_s_words() -> None:
    """Refused before (``no_identity``): Crisp's ``data.user`` and ``data.content`` were not read."""
    [claire] = _parse(_body("crisp_message_send.json"))
    assert (claire.person.first_name, claire.person.last_name, claire.person.email) == (
        "Claire",
        "Martin",
        "claire.martin@example.fr",
    )
    assert claire.interaction.message is not None and claire.interaction.message.startswith("Bonjour")
    assert claire.occurred_at.isoformat() == "2024-06-05T12:20:00+00:00"
    assert claire.provenance.bot_id == "42286ab3-b29a-4fde-8538-da0ae501d825"


def test_crisp_s_anonymous_visitor_is_refused_saying_why() -> None:
    body = _body("crisp_message_send.json")
    body["data"].update(content="Hello, how much is it?", user={"nickname": "visitor38", "user_id": "session_1"})
    with pytest.raises(SourceError) as refused:
        _parse(body)
    assert refused.value.reason == "no_identity" and "session:set_email" in refused.value.message


def test_crisp_s_set_email_names_the_visitor() -> None:
    body = {
        "website_id": "42286ab3-b29a-4fde-8538-da0ae501d825",
        "event": "session:set_email",
        "data": {"website_id": "42286ab3", "session_id": "session_1", "email": "kaito.sato@example.jp"},
        "timestamp": 1717590000000,
    }
    [kaito] = _parse(body)
    assert (kaito.person.email, kaito.occurred_at.isoformat()) == ("kaito.sato@example.jp", "2024-06-05T12:20:00+00:00")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"event": "message:received"}, "agent_message"),
        ({"data": {"from": "operator"}}, "agent_message"),
        ({"event": "session:set_state"}, "chat_event"),
        ({"event": "message:updated"}, "chat_event"),
    ],
)
def test_crisp_s_operator_messages_and_other_events_name_no_contact(changes: dict[str, Any], reason: str) -> None:
    body = _body("crisp_message_send.json")
    body["data"].update(changes.pop("data", {}))
    assert _ignored({**body, **changes}) == reason


def test_freshchat_s_user_message_with_an_address() -> None:
    [priya] = _parse(_body("freshchat_message_create.json"))
    assert (priya.person.email, priya.occurred_at.isoformat()) == ("priya.shah@example.in", "2024-06-05T12:20:00+00:00")
    assert priya.interaction.message is not None and "pricing" in priya.interaction.message


@pytest.mark.parametrize(
    ("changes", "reason"),
    [({"action": "conversation_assignment"}, "chat_event"), ({"actor": {"actor_type": "agent"}}, "agent_message")],
)
def test_freshchat_s_agent_messages_and_notices_name_no_contact(changes: dict[str, Any], reason: str) -> None:
    body = _body("freshchat_message_create.json")
    if "actor" in changes:
        body["data"]["message"]["actor_type"] = "agent"
    assert _ignored({**body, **changes}) == reason


def test_sunshine_s_user_message_is_the_user_from_their_profile() -> None:
    """The business's reply in the same webhook is no contact, and not the person's words."""
    [mateus] = _parse(_body("sunshine_conversation_message.json"))
    assert (mateus.person.first_name, mateus.person.last_name, mateus.person.email) == (
        "Mateus",
        "Silva",
        "mateus.silva@example.com.br",
    )
    assert [turn.text for turn in mateus.interaction.transcript] == ["Olá, gostaria de uma demonstração do produto."]
    assert mateus.occurred_at.isoformat() == "2024-06-05T12:20:00.184000+00:00"


def test_sunshine_s_form_answer_gives_the_e_mail() -> None:
    body = _body("sunshine_conversation_message.json")
    message = body["events"][0]["payload"]["message"]
    message["author"] = {"userId": "u2", "displayName": "Web User 6e8a1a1e", "type": "user"}
    message["content"] = {
        "type": "formResponse",
        "fields": [
            {"type": "text", "name": "name", "label": "Your name", "text": "Olga Ivanova"},
            {"type": "email", "name": "email", "label": "Email", "email": "olga@example.pl"},
        ],
    }
    [olga] = _parse(body)
    assert (olga.person.email, olga.person.first_name) == ("olga@example.pl", None)
    assert olga.interaction.message == "Your name: Olga Ivanova\nEmail: olga@example.pl"


def test_sunshine_s_business_messages_and_other_events_name_no_contact() -> None:
    body = _body("sunshine_conversation_message.json")
    assert _ignored({**body, "events": body["events"][1:]}) == "agent_message"
    assert _ignored({**body, "events": [{"type": "conversation:read", "payload": {}}]}) == "chat_event"


def test_sunshine_s_webhook_of_two_users_is_two_contacts_and_an_anonymous_one_is_refused_saying_why() -> None:
    body = _body("sunshine_conversation_message.json")
    other = json.loads(json.dumps(body["events"][0]))
    other["payload"]["message"]["author"] = {
        "userId": "u3",
        "displayName": "Ngozi Okafor",
        "type": "user",
        "user": {"id": "u3", "profile": {"givenName": "Ngozi", "surname": "Okafor", "email": "ngozi@example.ng"}},
    }
    mateus, ngozi = _parse({**body, "events": [body["events"][0], other]})
    assert (mateus.person.email, ngozi.person.email) == ("mateus.silva@example.com.br", "ngozi@example.ng")
    assert mateus.event_id != ngozi.event_id
    del other["payload"]["message"]["author"]["user"]
    with pytest.raises(SourceError) as refused:
        _parse({**body, "events": [other]})
    assert refused.value.reason == "no_identity" and "Sunshine" in refused.value.message
