"""Children (section 12) and suppression (section 9): who is dropped, who is kept and how."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from processor_events import NOW, build_event

from pipeline.models.common import Channel, InteractionKind, Purpose
from pipeline.models.contact import Consent, ContactEvent, Utterance
from pipeline.models.processing import DropReason
from pipeline.models.rights import SuppressionRecord, erased_event_tag
from pipeline.policy.model import load_policy
from pipeline.processors import ChainContext, Dropped, Failed, Passed, compile_policy, run_chain
from pipeline.processors.suppression import suppress_accepted


def _outcome(event: ContactEvent, ctx: ChainContext) -> object:
    return run_chain(event, ctx).outcome


# ---- children ---------------------------------------------------------------------------------------------------


_CTX = ChainContext(policy=compile_policy(load_policy()), now=NOW, pepper=b"p")


@settings(max_examples=40, deadline=None)
@given(age=st.integers(min_value=0, max_value=120))
def test_stated_age_under_16_is_dropped_16_and_over_kept(age: int) -> None:
    outcome = _outcome(build_event(person={"stated_age": age}), _CTX)
    if age < 16:
        assert outcome == Dropped(DropReason.CHILD, "children", "stated_age")
    else:
        assert isinstance(outcome, Passed)


def test_birth_date_is_counted_on_the_day_of_the_contact(make_ctx: Callable[..., ChainContext]) -> None:
    sixteenth = date(NOW.year - 16, NOW.month, NOW.day)
    assert isinstance(_outcome(build_event(person={"birth_date": sixteenth}), make_ctx()), Passed)
    day_later = sixteenth + timedelta(days=1)
    outcome = _outcome(build_event(person={"birth_date": day_later}), make_ctx())
    assert outcome == Dropped(DropReason.CHILD, "children", "birth_date")


@pytest.mark.parametrize(
    "text",
    [
        "Hi, I am 14 years old and want to learn coding",
        "I'm 15 yo, can I join?",
        "hello. I am only 12.",
        "my age is 13",
        "I turn 15 next month",
        "Hallo, ich bin 14 Jahre alt und möchte programmieren lernen",
        "Bonjour, j'ai 15 ans et je cherche un stage",
        "Hola, tengo 13 años.",
        "Ciao, ho 14 anni e vorrei informazioni",
        "Olá, tenho 15 anos",
        "Hoi, ik ben 12 jaar oud",
        "Cześć, mam 15 lat",
        "Здравствуйте, мне 14 лет",
        "こんにちは、私は15歳です",
        "你好\uff0c我今年14岁",  # a fullwidth comma
        "안녕하세요, 저는 15살입니다",
        "Merhaba, 14 yaşındayım",
    ],
)
def test_first_person_age_statements_under_16_drop(text: str, make_ctx: Callable[..., ChainContext]) -> None:
    outcome = _outcome(build_event(interaction={"message": text}), make_ctx())
    assert outcome == Dropped(DropReason.CHILD, "children", "age_statement")


@pytest.mark.parametrize(
    "text",
    [
        "I am 34 years old and lead a data team",
        "We build apps for kids aged 12 to 14",
        "Our team has 12 engineers",
        "I am 3 weeks into the project",
        "I'm 15 minutes late for the call",
        "Ich bin 30 Jahre alt und leite ein Team",
        "J'ai 12 ans d'expérience dans la logistique",  # years of something, in every language: no age
        "Tengo 10 años de experiencia en ventas",
        "Ho 15 anni di esperienza",
        "Tenho 12 anos de carreira",
        "Mam 10 lat doświadczenia",
        "Ich bin 24/7 erreichbar",
        "Мне 35 лет, я директор",
        "我们公司15岁了",  # "our company is 15": no first person
    ],
)
def test_other_numbers_are_not_ages(text: str, make_ctx: Callable[..., ChainContext]) -> None:
    assert isinstance(_outcome(build_event(interaction={"message": text}), make_ctx()), Passed)


def test_only_the_persons_own_turns_count(make_ctx: Callable[..., ChainContext]) -> None:
    bot = (Utterance(author="bot", text="Are you a student? Some are 14 years old"),)
    event = build_event(Channel.CHATBOT, interaction={"message": None, "transcript": bot})
    assert isinstance(_outcome(event, make_ctx()), Passed)
    own = (Utterance(author="person", text="yes, I am 14 years old"),)
    event = build_event(Channel.CHATBOT, interaction={"message": None, "transcript": own})
    assert isinstance(_outcome(event, make_ctx()), Dropped)


# ---- suppression ------------------------------------------------------------------------------------------------


def _state(event: ContactEvent, **flags: object) -> SuppressionRecord:
    return SuppressionRecord(
        subject_key=event.subject_key,
        updated_at=flags.pop("updated_at", NOW),  # type: ignore[arg-type]
        request_id=uuid.uuid4(),
        **flags,  # type: ignore[arg-type]
    )


def test_an_event_received_before_the_erasure_is_dropped(make_ctx: Callable[..., ChainContext]) -> None:
    event = build_event(received_at=NOW - timedelta(minutes=5))
    state = _state(event, erased=True, erased_at=NOW)
    assert _outcome(event, make_ctx(suppression=state)) == Dropped(DropReason.SUBJECT_ERASED, "suppression")


def test_a_submission_after_the_erasure_is_a_new_collection(make_ctx: Callable[..., ChainContext]) -> None:
    event = build_event(received_at=NOW + timedelta(minutes=5))
    state = _state(event, erased=True, erased_at=NOW)
    outcome = _outcome(event, make_ctx(suppression=state))
    assert isinstance(outcome, Passed)
    assert outcome.tagged.tags.marketing_allowed is True


def test_an_erased_event_replayed_after_the_erasure_is_still_dropped(make_ctx: Callable[..., ChainContext]) -> None:
    """A replay carries the erased event's id with a new receipt time: its tombstone drops it, a new event passes."""
    replayed = build_event(received_at=NOW + timedelta(minutes=5))
    state = _state(replayed, erased=True, erased_at=NOW, erased_events=(erased_event_tag(replayed.event_id),))
    assert _outcome(replayed, make_ctx(suppression=state)) == Dropped(DropReason.SUBJECT_ERASED, "suppression")
    fresh = build_event(received_at=NOW + timedelta(minutes=5))
    assert fresh.event_id != replayed.event_id
    assert isinstance(_outcome(fresh, make_ctx(suppression=state)), Passed)


def test_after_erasure_an_earlier_objection_still_holds(make_ctx: Callable[..., ChainContext]) -> None:
    event = build_event(received_at=NOW + timedelta(minutes=5))
    state = _state(event, erased=True, erased_at=NOW, marketing_objected=True)
    outcome = _outcome(event, make_ctx(suppression=state))
    assert isinstance(outcome, Passed)
    assert outcome.tagged.tags.marketing_allowed is False


def test_erased_at_missing_falls_back_to_updated_at(make_ctx: Callable[..., ChainContext]) -> None:
    event = build_event(received_at=NOW - timedelta(seconds=1))
    assert isinstance(_outcome(event, make_ctx(suppression=_state(event, erased=True))), Dropped)


def test_a_restricted_subject_is_dropped_from_processing(make_ctx: Callable[..., ChainContext]) -> None:
    event = build_event()
    outcome = _outcome(event, make_ctx(suppression=_state(event, restricted=True)))
    assert outcome == Dropped(DropReason.SUBJECT_RESTRICTED, "suppression")


def test_objection_keeps_the_event_without_marketing(make_ctx: Callable[..., ChainContext]) -> None:
    event = build_event(Channel.EVENT, InteractionKind.REGISTRATION)
    outcome = _outcome(event, make_ctx(suppression=_state(event, marketing_objected=True)))
    assert isinstance(outcome, Passed)
    assert outcome.tagged.tags.marketing_allowed is False
    assert Purpose.INFORMATION_OF_INTEREST not in {t.purpose for t in outcome.tagged.tags.purposes}


def test_a_state_of_another_subject_is_a_failure_not_a_silent_pass(make_ctx: Callable[..., ChainContext]) -> None:
    event = build_event()
    other = SuppressionRecord(subject_key="sk_someone_else_000", updated_at=NOW, request_id=uuid.uuid4())
    outcome = _outcome(event, make_ctx(suppression=other))
    assert isinstance(outcome, Failed)
    assert outcome.stage == "suppression"


# ---- the same rule again at the sinks (suppress_accepted) -------------------------------------------------------

_EVENTS: dict[str, dict[str, Any]] = {
    "web form": {},
    "event registration": {"channel": Channel.EVENT, "kind": InteractionKind.REGISTRATION},
    "consent to further contact": {
        "consents": (Consent(purpose=Purpose.FURTHER_CONTACT, granted=True, given_at=NOW, method="checkbox"),)
    },
    "consent imported": {
        "consents": (Consent(purpose=Purpose.FURTHER_CONTACT, granted=True, given_at=NOW, method="import"),)
    },
}


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(sorted(_EVENTS)),
    erased=st.booleans(),
    erased_minutes=st.integers(min_value=-10, max_value=10),
    restricted=st.booleans(),
    objected=st.booleans(),
    withdrawn=st.sets(st.sampled_from(list(Purpose)), max_size=3),
    withdrawn_minutes=st.integers(min_value=-10, max_value=10),
)
def test_the_sinks_recheck_answers_as_the_chain_would_have(
    kind: str,
    erased: bool,
    erased_minutes: int,
    restricted: bool,
    objected: bool,
    withdrawn: set[Purpose],
    withdrawn_minutes: int,
) -> None:
    """An event accepted before a right was exercised, checked again at the sink, ends as if the chain had known."""
    event = build_event(received_at=NOW, **_EVENTS[kind])
    accepted = _outcome(event, _CTX)
    assert isinstance(accepted, Passed)
    state = _state(
        event,
        erased=erased,
        erased_at=NOW + timedelta(minutes=erased_minutes) if erased else None,
        restricted=restricted,
        marketing_objected=objected,
        consent_withdrawn=tuple(sorted(withdrawn)),
        consent_withdrawn_at=dict.fromkeys(withdrawn, NOW + timedelta(minutes=withdrawn_minutes)),  # before/after
    )
    knowing = _outcome(event, ChainContext(policy=_CTX.policy, now=NOW, pepper=b"p", suppression=state))
    again = suppress_accepted(accepted.tagged, state, _CTX.policy.policy)
    if isinstance(knowing, Dropped):
        assert again == knowing.reason
    else:
        assert isinstance(knowing, Passed) and not isinstance(again, DropReason)
        assert again.tags.purposes == knowing.tagged.tags.purposes
        assert again.tags.marketing_allowed == knowing.tagged.tags.marketing_allowed
        assert again.event == event


def test_the_sinks_recheck_leaves_an_unaffected_event_as_it_is() -> None:
    event = build_event()
    accepted = _outcome(event, _CTX)
    assert isinstance(accepted, Passed)
    assert suppress_accepted(accepted.tagged, None, _CTX.policy.policy) is accepted.tagged
    lifted = _state(event, restricted=False)
    assert suppress_accepted(accepted.tagged, lifted, _CTX.policy.policy) is accepted.tagged


# ---- what the person asked under the key of their phone number (with_linked) --------------------------------------


def test_an_objection_restriction_or_withdrawal_made_under_the_phone_key_holds_for_the_person() -> None:
    """A caller objected under the key their number gave (no e-mail known then); their later form names the e-mail
    and that number: the objection is theirs (9.6), as a restriction (9.4) and a withdrawal (9.8) are. An erasure of
    what the phone's key held is not carried over (the form is a new collection)."""
    from pipeline.processors.suppression import with_linked

    event = build_event(Channel.WEB_FORM)
    phone = SuppressionRecord(
        subject_key="sk_phone",
        marketing_objected=True,
        consent_withdrawn=(Purpose.FURTHER_CONTACT,),
        consent_withdrawn_at={Purpose.FURTHER_CONTACT: NOW - timedelta(days=3)},
        erased=True,
        erased_at=NOW - timedelta(days=1),
        erased_events=(erased_event_tag(uuid.uuid4()),),
        updated_at=NOW - timedelta(days=1),
        request_id=uuid.uuid4(),
    )
    merged = with_linked(None, phone, event.subject_key)
    assert merged.subject_key == event.subject_key
    assert merged.marketing_objected and not merged.restricted and not merged.erased and not merged.erased_events
    assert merged.withdrawn_since(Purpose.FURTHER_CONTACT) == NOW - timedelta(days=3)
    passed = _outcome(event, ChainContext(policy=_CTX.policy, now=NOW, pepper=b"p", suppression=merged))
    assert isinstance(passed, Passed) and passed.tagged.tags.marketing_allowed is False
    own = _state(
        event, consent_withdrawn=(Purpose.FURTHER_CONTACT,), consent_withdrawn_at={Purpose.FURTHER_CONTACT: NOW}
    )
    restricted = phone.model_copy(update={"restricted": True, "marketing_objected": False})
    both = with_linked(own, restricted, event.subject_key)
    assert both.restricted and both.withdrawn_since(Purpose.FURTHER_CONTACT) == NOW  # the later withdrawal stands
    dropped = _outcome(event, ChainContext(policy=_CTX.policy, now=NOW, pepper=b"p", suppression=both))
    assert isinstance(dropped, Dropped) and dropped.reason is DropReason.SUBJECT_RESTRICTED
    quiet = phone.model_copy(update={"marketing_objected": False, "consent_withdrawn": (), "consent_withdrawn_at": {}})
    assert with_linked(own, quiet, event.subject_key) is own  # only an erasure there: nothing to add
