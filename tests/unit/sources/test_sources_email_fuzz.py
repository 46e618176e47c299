"""Property tests of the e-mail source over generated MIME trees (issue 17).

Trees of text, HTML and binary parts, multiparts of every subtype, attached and forwarded messages nested in each
other and digests, serialised by hand so that they can be broken the way real mail is: missing, empty or
mismatched boundaries, truncation, encoded words with odd or lying charsets, raw 8-bit headers, odd senders.

1. Whatever the tree: a valid event, or a typed, explained ``SourceError``; never another exception or an empty
   success.
2. For an intact tree sent by a valid sender: every text a mail reader shows (the inline text parts of mixed
   multiparts, digests and attached messages) is in the event, and every binary part is named.
"""

from __future__ import annotations

import base64
import quopri
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from source_payloads import ctx_for

from pipeline.models.contact import ContactEvent
from pipeline.sources import SourceError
from pipeline.sources import email as email_source

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CHARSETS = ["utf-8", "iso-8859-1", "windows-1252", "koi8-r", "shift_jis", "utf-16", "x-unknown", "utf\x008", ""]
ENCODINGS = ["7bit", "8bit", "base64", "quoted-printable", "x-bogus"]
SENDERS = [
    "Ana Garcia <ana.garcia@example.com>",
    "ana.garcia@example.com (Ana Garcia)",
    "ana.garcia@example.com (=?utf-8?q?Ana_Garc=C3=ADa?=)",
    "=?iso-8859-1?q?Fran=E7ois?= <f@example.fr>",
    "=?x-unknown?b?SGFucw==?= <h@example.at>",
    "=?utf-8?b?broken====?= <b@example.com>",
    '"Books@Books"@example.com',
    "IT <it@corp.local>",
    "not an address",
    "<>",
    "",
    "(((((a@example.com",
    "Jürgen <j@example.de>",
]
WORDS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


@dataclass
class Node:
    """A serialised part and what a reader must show of it (when the tree is intact)."""

    headers: list[str]
    body: bytes
    shown: set[str] = field(default_factory=set)  # markers of text a reader shows
    named: set[str] = field(default_factory=set)  # names of parts it does not read


def _encode(text: str, charset: str, encoding: str) -> bytes:
    try:
        data = text.encode(charset or "us-ascii", "replace")
    except (LookupError, ValueError):
        data = text.encode("utf-8")
    if encoding == "base64":
        return base64.encodebytes(data)
    if encoding == "quoted-printable":
        return quopri.encodestring(data)
    return data


@st.composite
def text_leaf(draw: st.DrawFn, counter: list[int]) -> Node:
    counter[0] += 1
    marker = f"MARK{counter[0]}X"
    subtype = draw(st.sampled_from(["plain", "html", "enriched"]))
    charset = draw(st.sampled_from(CHARSETS))
    encoding = draw(st.sampled_from(ENCODINGS))
    words = draw(WORDS)
    body = f"<p>{marker} {words}</p>" if subtype == "html" else f"{marker} {words}"
    headers = [f'Content-Type: text/{subtype}; charset="{charset}"', f"Content-Transfer-Encoding: {encoding}"]
    safe = charset in ("utf-8", "iso-8859-1", "windows-1252", "koi8-r") and encoding != "x-bogus"
    return Node(headers, _encode(body, charset, encoding), shown={marker} if safe and subtype != "enriched" else set())


@st.composite
def binary_leaf(draw: st.DrawFn, counter: list[int]) -> Node:
    counter[0] += 1
    name = f"file{counter[0]}.pdf"
    ctype = draw(st.sampled_from(["application/pdf", "image/png", "application/octet-stream", "text/calendar"]))
    disposition = draw(st.sampled_from(["attachment", "inline"]))
    headers = [
        f'Content-Type: {ctype}; name="{name}"',
        f'Content-Disposition: {disposition}; filename="{name}"',
        "Content-Transfer-Encoding: base64",
    ]
    return Node(headers, base64.encodebytes(draw(st.binary(max_size=30))), named={name})


def _message_headers(draw: st.DrawFn, sender: str) -> list[str]:
    headers = [f"From: {sender}"] if sender else []
    headers.append("Subject: " + draw(st.sampled_from(["hi", "=?utf-8?q?Gr=C3=BC=C3=9Fe?=", "=?bad?x?y?=", ""])))
    headers += draw(st.lists(st.sampled_from(["Date: not a date", "List-Id: <l.example>", "Reply-To: r@example.org"])))
    return headers


@st.composite
def tree(draw: st.DrawFn, counter: list[int], depth: int = 0) -> Node:
    kinds = ["text", "binary"] + (["multipart", "message"] if depth < 4 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "text":
        return draw(text_leaf(counter))
    if kind == "binary":
        return draw(binary_leaf(counter))
    if kind == "message":
        inner = draw(tree(counter, depth + 1))
        headers = _message_headers(draw, "Bob <bob@example.net>") + inner.headers
        body = "\r\n".join(headers).encode("utf-8") + b"\r\n\r\n" + inner.body
        return Node(["Content-Type: message/rfc822"], body, inner.shown, inner.named)
    subtype = draw(st.sampled_from(["mixed", "alternative", "related", "digest", "report", "signed", "x-odd"]))
    children = draw(st.lists(tree(counter, depth + 1), min_size=1, max_size=4))
    boundary = f"b{depth}-{counter[0]}'()+_,-./:=?"
    body = b"preamble\r\n"
    for child in children:
        body += f"--{boundary}\r\n".encode() + "\r\n".join(child.headers).encode() + b"\r\n\r\n" + child.body + b"\r\n"
    body += f"--{boundary}--\r\nepilogue\r\n".encode()
    shown: set[str] = set()
    named: set[str] = set()
    if subtype in ("mixed", "digest", "report", "x-odd"):
        for child in children:
            shown |= child.shown
            named |= child.named
    if subtype == "digest":  # a digest's parts default to message/rfc822: headerless children are not readable text
        shown, named = set(), set()
    return Node([f'Content-Type: multipart/{subtype}; boundary="{boundary}"'], body, shown, named)


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, Node, str]:
    counter = [0]
    root = draw(tree(counter))
    sender = draw(st.sampled_from(SENDERS))
    headers = [*_message_headers(draw, sender), "MIME-Version: 1.0", *root.headers]
    raw = "\r\n".join(headers).encode("utf-8") + b"\r\n\r\n" + root.body
    return raw, root, sender


def check(raw: bytes) -> list[ContactEvent] | None:
    try:
        events = email_source.parse(raw, ctx_for("email", raw, "message/rfc822"))
    except SourceError as exc:
        assert exc.problems and all(p.reason and p.message for p in exc.problems)
        return None
    assert events, "an empty success is a silent drop"
    for event in events:
        assert event.person.email
        assert ContactEvent.model_validate_json(event.model_dump_json()) == event
    return events


def _everything(event: ContactEvent) -> str:
    interaction = event.interaction
    return "\n".join([interaction.message or "", *(t.text for t in interaction.transcript)])


@FUZZ
@given(generated=messages())
def test_an_intact_tree_keeps_every_text_a_reader_shows(generated: tuple[bytes, Node, str]) -> None:
    raw, root, sender = generated
    events = check(raw)
    if sender not in SENDERS[:5]:
        return  # the sender alone may be refused; the invariant above is what holds for them
    assert events is not None, "a valid sender's intact message must parse"
    [event] = events
    seen = _everything(event)
    for marker in root.shown:
        assert marker in seen, f"{marker} lost"
    for name in root.named:
        assert name in event.interaction.attachments_ignored, f"{name} not named"


@FUZZ
@given(
    generated=messages(),
    cut=st.floats(0, 1),
    breakage=st.sampled_from(["truncate", "drop_boundary", "mismatch_boundary", "empty_boundary", "noise", "none"]),
    noise=st.binary(min_size=1, max_size=6),
)
def test_a_broken_tree_is_parsed_or_refused_with_a_reason(
    generated: tuple[bytes, Node, str], cut: float, breakage: str, noise: bytes
) -> None:
    raw, _root, _sender = generated
    if breakage == "truncate":
        raw = raw[: int(len(raw) * cut)]
    elif breakage == "drop_boundary":
        raw = raw.replace(b'; boundary="', b'; x-was="', 1)
    elif breakage == "mismatch_boundary":
        raw = raw.replace(b'; boundary="', b'; boundary="zz', 1)
    elif breakage == "empty_boundary":
        raw = raw.replace(b'; boundary="', b'; boundary=""; x="', 1)
    elif breakage == "noise":
        at = int(len(raw) * cut)
        raw = raw[:at] + noise + raw[at + len(noise) :]
    check(raw)
