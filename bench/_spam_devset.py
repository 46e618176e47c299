"""leadpipe's own labelled spam development set: hand-written form, chatbot, messenger and e-mail spam and ham,
expanded into variants by a seeded generator (same seed -> same set).

What it is: ~90 hand-written templates (every sentence written for this set; none taken from a public corpus),
slots filled from word lists, sentences shuffled and optionally dropped, greetings, sign-offs, typos and case
noise added. E-mail items are raw RFC 822 messages (plain and HTML, newsletters with List-* headers and
unsubscribe footers among the ham). Each item has a time: ``older`` items come first; the ``newer`` part has spam
campaigns that never appear in the older part (``NEW_CAMPAIGNS``), so learning from older decisions is tested on
spam it has not seen the like of.

What it is not: real traffic. Variants of one template resemble each other far more than real messages do, so a
classifier that learns templates looks better here than it will on real mail. SpamAssassin's public corpus is the
acceptance set and is never used here.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from pipeline.models.common import Channel, InteractionKind
from pipeline.models.contact import ContactEvent, Interaction, Person, Provenance

FIRST = [
    "Ana",
    "Ben",
    "Chloe",
    "Dmitri",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kasia",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pedro",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
    "Umar",
    "Vera",
    "Wei",
    "Yusuf",
    "Zoe",
]
LAST = [
    "Garcia",
    "Novak",
    "Smith",
    "Ivanova",
    "Okafor",
    "Schmidt",
    "Rossi",
    "Tanaka",
    "Dubois",
    "Kowalski",
    "Nielsen",
    "Haddad",
    "Larsen",
    "Moreau",
    "Silva",
    "Brennan",
    "Fischer",
    "Costa",
    "Andersson",
    "Patel",
]
COMPANIES = [
    "Northwind Logistics",
    "Bluefin Analytics",
    "Kestrel Health",
    "Orbis Retail",
    "Lumen Energy",
    "Harbor Insurance",
    "Pinecrest University",
    "Atlas Manufacturing",
    "Vela Travel",
    "Quarry Foods",
    "Meridian Bank",
    "Copperleaf Media",
    "Tundra Mobility",
    "Solace Pharma",
    "Granite Legal",
]
DOMAINS = [
    "northwind.example",
    "bluefin.example",
    "kestrel-health.example",
    "orbis.example",
    "lumen.example",
    "harbor-ins.example",
    "pinecrest.edu.example",
    "atlas-mfg.example",
    "vela.example",
    "quarry.example",
]
FREEMAIL = ["gmail.com", "outlook.com", "yahoo.com", "mail.example", "proton.example"]
SPAM_DOMAINS = [
    "seo-rank-pro.example",
    "best-offers24.example",
    "crypto-gains.example",
    "fastloan.example",
    "pharma-direct.example",
    "top-backlinks.example",
    "winner-claims.example",
    "growth-hackers.example",
    "lead-lists.example",
    "replica-shop.example",
    "bit.ly",
    "tinyurl.com",
]
PRODUCTS = [
    "data platform",
    "analytics suite",
    "CRM integration",
    "reporting module",
    "API",
    "mobile SDK",
    "enterprise plan",
    "onboarding service",
    "data warehouse connector",
    "dashboard builder",
]
TOPICS = [
    "pricing",
    "a demo",
    "the security whitepaper",
    "SSO support",
    "the SLA",
    "data residency in the EU",
    "an invoice",
    "our renewal",
    "a partnership",
    "the API rate limits",
    "GDPR and the DPA",
    "a pilot",
]
AMOUNTS = ["$4,500,000", "USD 2.5 million", "EUR 1,200,000", "$850,000", "GBP 3,000,000"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]

# ---- ham: what people write to a B2B company ------------------------------------------------------------------
HAM_FORM = [
    [
        "Hello, we are evaluating your {product} for {company}.",
        "Could you send us information about {topic}?",
        "We have about {n} users in three countries.",
        "A call {day} afternoon would work for me.",
    ],
    [
        "Hi team, I'd like to request {topic} for our {product} project.",
        "We currently use spreadsheets and a home-grown tool.",
        "Is there a trial we could run with our own data?",
    ],
    [
        "Good morning, I am the IT lead at {company}.",
        "Before we can sign we need answers about {topic}.",
        "Please also confirm whether the {product} supports single sign-on with Azure AD.",
    ],
    [
        "We met at the trade fair last week and you mentioned {topic}.",
        "Can you share the slides and a quote for {n} seats?",
        "Thanks, {first}",
    ],
    [
        "Our contract ends next month and I want to discuss {topic}.",
        "We would like to add the {product}.",
        "Who is our account manager now?",
    ],
    [
        "I have a question about {topic}.",
        "Our legal team asks where the data is stored and who the subprocessors are.",
        "Could you send the current list?",
    ],
    [
        "Hi, I'm a student at Pinecrest writing a thesis on data pipelines.",
        "Would someone have 20 minutes for a short interview about {topic}?",
        "I can adapt to your schedule.",
    ],
    ["Please call me back about {topic}, my number is in the form.", "Best time is {day} morning."],
    ["We need a quote for the {product}, {n} users, annual billing.", "Procurement needs it by {day}."],
    [
        "Your {product} stopped syncing after yesterday's update.",
        "Error message says the token expired but we renewed it.",
        "Can support take a look? Ticket reference in the subject.",
    ],
    [
        "We're a marketing agency and our clients ask about SEO reports from your {product}.",
        "Does the export include page-level metrics?",
        "A link to the documentation would be great.",
    ],
    ["Hello, I would like to unsubscribe from the newsletter but keep the product updates.", "Is that possible?"],
    [
        "Interested in a partnership: we resell analytics tools in the Nordics.",
        "Could we set up a call about {topic} and margins?",
        "Regards, {first} {last}, {company}",
    ],
]
HAM_CHAT = [
    ["hi", "how much is the {product}?", "for about {n} people"],
    ["Hello, can I talk to someone from sales about {topic}?"],
    ["do you support {topic}?", "we're on the enterprise plan"],
    ["I can't log in since this morning", "it says my account is locked"],
    ["Is there a discount for universities?", "we're a research group of {n}"],
    ["what's the difference between the team and enterprise plan?", "mainly interested in {topic}"],
    ["Hi! I booked a demo for {day} but need to move it", "is thursday possible?"],
]
HAM_MESSENGER = [
    ["Hi, this is {first} from {company}, please call me back about {topic}"],
    ["Thanks for the call yesterday, sending the documents {day}"],
    ["Can we move our meeting to {day}? Something came up"],
    ["Got the invoice, our finance team will pay this week"],
]
HAM_EMAIL = [
    (
        "Question about {topic}",
        [
            "Dear sales team,",
            "we are reviewing vendors for a {product} and would like to understand {topic}.",
            "Our company has {n} employees; the rollout would start next quarter.",
            "Kind regards,\n{first} {last}\n{company}",
        ],
    ),
    (
        "Re: our meeting on {day}",
        [
            "Hi {first2},",
            "thanks again for the demo. As discussed, attached you find our requirements list.",
            "Could you come back to us with {topic} by the end of next week?",
            "Best,\n{first}",
        ],
    ),
    (
        "Invoice {n}-2024 query",
        [
            "Hello,",
            "the invoice we received lists {n} seats but we only have 40 active users.",
            "Can you check and send a corrected invoice?",
            "Thanks,\n{first} {last}\nAccounts payable",
        ],
    ),
    (
        "Security questionnaire",
        [
            "Hi,",
            "our security team sent the attached questionnaire about {topic}.",
            "Please fill it in by {day}; we cannot proceed with procurement before.",
            "Regards, {first}",
        ],
    ),
    (
        "Partnership proposal",
        [
            "Hello,",
            "I lead partnerships at {company}. We integrate with several "
            "analytics vendors and think a connector to your {product} would help both our customers.",
            "Would you be open to a call?",
            "Best regards,\n{first} {last}",
        ],
    ),
]
NEWSLETTER = [  # ham that looks like bulk mail: links, footers, List-* headers
    (
        "{company} monthly: what's new in {month}",
        [
            "This month: three new connectors, faster dashboards and our guide to {topic}.",
            "Read the release notes: https://{domain}/blog/release-{n}",
            "Webinar on {day}: https://{domain}/events/webinar-{n}",
            "Customer story: https://{domain}/stories/{n}",
            "You receive this because you subscribed at {domain}. Unsubscribe: https://{domain}/unsubscribe?u={n} | "
            "Manage preferences: https://{domain}/preferences",
        ],
    ),
    (
        "[users-list] Digest, Vol {n}",
        [
            "Today's topics:",
            "1. Re: connector timeouts (https://{domain}/t/{n})",
            "2. Re: exporting to parquet (https://{domain}/t/{n2})",
            "3. Meetup in Berlin (https://{domain}/t/{n3})",
            "_______________________________________________\nusers-list mailing list\nhttps://{domain}/mailman/listinfo/"
            "users-list\nTo unsubscribe, click here: https://{domain}/mailman/options/users-list",
        ],
    ),
]

# ---- spam: what arrives through the same channels -------------------------------------------------------------
SPAM_FORM = [
    [
        "Hi, I visited your website {site} and noticed it is not ranking on the first page of Google.",
        "We can get you to the top 3 for your main keywords within 30 days.",
        "Reply with your phone number for a free SEO audit.",
        "Regards, {first} | SEO Consultant",
    ],
    [
        "Boost your domain authority with {n} high-quality backlinks from DA 90+ sites.",
        "Guaranteed results or your money back.",
        "Order now: https://{spamdomain}/backlinks?ref={n}",
    ],
    [
        "Hello, I am a web designer. Your website looks outdated and loses customers.",
        "I can redesign it for only $299 with mobile optimization.",
        "Check my portfolio https://{spamdomain}/portfolio",
    ],
    [
        "Would you like more leads? We have a verified database of {n} decision makers with emails and phone numbers.",
        "Special price this week only.",
        "Visit https://{spamdomain}/lists",
    ],
    [
        "Dear business owner, get a business loan of up to $500,000 approved in 24 hours.",
        "No credit check, no collateral needed.",
        "Apply now at https://{spamdomain}/apply",
    ],
    [
        "Invest $250 and earn $5,000 per week with our automated crypto trading bot.",
        "Thousands of members are already financially free.",
        "Join here https://{spamdomain}/join?id={n}",
    ],
    [
        "I want to offer you a guest post on our high traffic blog.",
        "Dofollow link, permanent, only $49.",
        "Pay by PayPal or crypto.",
    ],
    [
        "Your website has critical security vulnerabilities.",
        "Our scan found {n} issues. Click here to see the report: https://{spamdomain}/report/{n}",
        "Fix them before hackers do!",
    ],
    [
        "We can increase your YouTube subscribers and Instagram followers. 10k real followers for $19.",
        "https://{spamdomain}/followers",
    ],
    [
        "Hi, do you need a mobile app? Our offshore team builds apps at $15/hour.",
        "100+ happy clients.",
        "WhatsApp me for a free quote.",
    ],
]
SPAM_CHAT = [
    ["hello dear", "i want to make business with you", "please send your whatsapp"],
    ["CHEAP SEO SERVICES!!! FIRST PAGE GOOGLE GUARANTEED", "https://{spamdomain}"],
    ["earn money from home 500$ per day", "click https://{spamdomain}/job"],
    ["hot singles in your area want to meet you https://{spamdomain}/meet"],
    ["Buy followers likes views cheap https://{spamdomain} https://{spamdomain2}"],
]
SPAM_MESSENGER = [
    ["Congratulations! You've been selected for a $1000 gift card. Claim: https://{spamdomain}/claim"],
    ["Your parcel could not be delivered. Pay the customs fee here: https://{spamdomain}/track/{n}"],
    ["Investment opportunity 300% returns guaranteed, contact me now"],
]
SPAM_EMAIL = [
    (
        "URGENT: Your account will be suspended",
        [
            "Dear customer,",
            "we detected unusual activity on your account.",
            "Verify your identity within 24 hours or your account will be permanently closed:",
            "https://{spamdomain}/secure/login?id={n}",
            "Security Department",
        ],
    ),
    (
        "Congratulations, you won {amount}!",
        [
            "Dear Winner,",
            "your email address was selected in our international lottery draw and has won {amount}.",
            "To claim your prize send your full name, address and phone number to the claims agent.",
            "Act now, this offer expires in 48 hours.",
        ],
    ),
    (
        "Business proposal - strictly confidential",
        [
            "Dear friend,",
            "I am a banker and I have a proposal about {amount} left by a deceased client with no next of kin.",
            "You will receive 40% for your assistance.",
            "Please reply with your private telephone number.",
        ],
    ),
    (
        "Cheap meds online - 80% off",
        [
            "Viagra, Cialis and more without prescription.",
            "Discreet shipping worldwide.",
            "Order here: https://{spamdomain}/shop",
            "To unsubscribe click here",
        ],
    ),
    (
        "Invoice #{n} overdue",
        [
            "Please find the overdue invoice for your review.",
            "Payment must be made today to avoid legal action.",
            "Download invoice: https://{spamdomain}/invoice/{n}.zip",
        ],
    ),
    (
        "Re: your website",
        [
            "Hi,",
            "I noticed {site} is missing many opportunities in search.",
            "We are an SEO agency with 10 years of experience and can bring you 10x more traffic.",
            "Can I send you a free proposal?",
            "Thanks, {first}",
        ],
    ),
    (
        "Make $10,000 a month from home",
        [
            "Tired of your 9 to 5? Our proven system shows you how to make money online.",
            "No experience required. Limited spots available!",
            "Start now: https://{spamdomain}/start",
            "Click here to be removed from our list.",
        ],
    ),
    (
        "I know your password",
        [
            "I hacked your device and recorded you.",
            "Send {amount} in Bitcoin to the wallet below within 48 hours or I share the video with your contacts.",
            "Wallet: 1BoatSLRHtKNngkdXEeobR76b53LETtpyT",
        ],
    ),
]
#: Campaigns that appear only in the newer part of the set (the spam of next month).
NEW_CAMPAIGNS_FORM = [
    [
        "Our AI agents can answer all your customer emails automatically.",
        "Save 90% of support costs, setup in 5 minutes.",
        "Book a demo: https://{spamdomain}/ai-agent",
    ],
    [
        "Get your company listed in the Global Business Directory 2025.",
        "Listing fee only $99, verified badge included.",
        "Register: https://{spamdomain}/directory",
    ],
    ["We buy old domains and websites for cash.", "Send me the list of domains you own and your price."],
]
NEW_CAMPAIGNS_EMAIL = [
    (
        "Action required: storage full",
        [
            "Your mailbox storage is 99% full.",
            "Incoming messages will be blocked.",
            "Upgrade for free now: https://{spamdomain}/mailbox/upgrade?u={n}",
        ],
    ),
    (
        "Exclusive presale: new token launching",
        [
            "Be early in the next 100x coin.",
            "Presale price $0.001, listing price $0.10.",
            "Buy now: https://{spamdomain}/presale",
        ],
    ),
]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October"]
GREETINGS = ["", "Hi, ", "Hello, ", "Dear team, ", "Good day, "]
SIGNOFFS = ["", "Thanks", "Best regards", "Cheers", "Regards"]


@dataclass(frozen=True)
class DevItem:
    """One labelled message: the event the adapter would produce, and for e-mail the raw message as received."""

    event: ContactEvent
    label: str  # "spam" or "ham"
    raw: bytes | None
    template: str
    newer: bool


def _fill(rng: random.Random, text: str) -> str:
    values = {
        "product": rng.choice(PRODUCTS),
        "topic": rng.choice(TOPICS),
        "company": rng.choice(COMPANIES),
        "n": str(rng.randint(3, 9000)),
        "n2": str(rng.randint(3, 9000)),
        "n3": str(rng.randint(3, 9000)),
        "day": rng.choice(WEEKDAYS),
        "first": rng.choice(FIRST),
        "first2": rng.choice(FIRST),
        "last": rng.choice(LAST),
        "domain": rng.choice(DOMAINS),
        "spamdomain": rng.choice(SPAM_DOMAINS),
        "spamdomain2": rng.choice(SPAM_DOMAINS),
        "amount": rng.choice(AMOUNTS),
        "month": rng.choice(MONTHS),
        "site": rng.choice(DOMAINS),
    }
    return text.format(**values)


def _noise(rng: random.Random, text: str, upper: bool = False) -> str:
    """Typos, case and spacing as people (and spammers) write."""
    words = text.split(" ")
    for _ in range(rng.randint(0, 2)):
        at = rng.randrange(len(words))
        word = words[at]
        if len(word) > 3:
            cut = rng.randrange(1, len(word) - 1)
            words[at] = word[:cut] + word[cut + 1 :]  # a dropped letter
    text = " ".join(words)
    if upper and rng.random() < 0.2:
        text = text.upper()
    elif rng.random() < 0.15:
        text = text.lower()
    return text


def _compose(rng: random.Random, sentences: list[str], spam: bool) -> str:
    chosen = [s for i, s in enumerate(sentences) if i == 0 or rng.random() > 0.2]
    if len(chosen) > 2 and rng.random() < 0.3:
        middle = chosen[1:-1]
        rng.shuffle(middle)
        chosen = [chosen[0], *middle, chosen[-1]]
    body = " ".join(_fill(rng, s) for s in chosen)
    body = rng.choice(GREETINGS) + body
    sign = rng.choice(SIGNOFFS)
    if sign:
        body += f"\n\n{sign}"
    return _noise(rng, body, upper=spam)


def _person(rng: random.Random, spam: bool) -> dict[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    if spam:
        domain = rng.choice(SPAM_DOMAINS + FREEMAIL)
        local = rng.choice([f"{first}.{last}", f"info{rng.randint(1, 999)}", f"seo.{first}", f"{first}{last}88"])
    else:
        domain = rng.choice(DOMAINS + FREEMAIL[:2])
        local = f"{first}.{last}"
    return {"first_name": first, "last_name": last, "email": f"{local}@{domain}".lower()}


def _raw_email(
    rng: random.Random,
    person: dict[str, str],
    subject: str,
    body: str,
    at: datetime,
    *,
    html: bool,
    newsletter: bool,
    event_id: uuid.UUID,
) -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = f"{person['first_name']} {person['last_name']} <{person['email']}>"
    message["To"] = "sales@leadpipe-customer.example"
    message["Subject"] = subject
    message["Date"] = format_datetime(at)
    message["Message-ID"] = f"<{event_id.hex}@{person['email'].rsplit('@', 1)[1]}>"
    received_ip = f"198.51.100.{rng.randint(1, 254)}"
    message["Received"] = (
        f"from mail.{person['email'].rsplit('@', 1)[1]} ([{received_ip}]) by mx.leadpipe-customer.example "
        f"with ESMTPS id {event_id.hex[:12]}; {format_datetime(at)}"
    )
    if newsletter:
        domain = person["email"].rsplit("@", 1)[1]
        message["List-Id"] = f"<news.{domain}>"
        message["List-Unsubscribe"] = f"<https://{domain}/unsubscribe>"
        message["Precedence"] = "bulk"
    if html:
        message.set_content(body)
        paragraphs = "".join(f"<p>{line}</p>" for line in body.split("\n") if line)
        message.add_alternative(f"<html><body>{paragraphs}</body></html>", subtype="html")
    else:
        message.set_content(body)
    return message.as_bytes()


def build_devset(seed: int = 14, per_group: int = 160, start: datetime | None = None) -> list[DevItem]:
    """The whole set in time order. ``per_group`` variants of each (channel, label) group (six groups of ham, six
    of spam, ~3,800 items at the default); the last 30 % of each group's times form the newer part."""
    rng = random.Random(seed)
    start = start or datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
    span = timedelta(days=180)
    items: list[DevItem] = []
    groups: list[tuple[Channel, str, list[object], list[object]]] = [
        (Channel.WEB_FORM, "ham", list(HAM_FORM), []),
        (Channel.CHATBOT, "ham", list(HAM_CHAT), []),
        (Channel.MESSENGER, "ham", list(HAM_MESSENGER), []),
        (Channel.EMAIL, "ham", list(HAM_EMAIL), []),
        (Channel.EMAIL, "newsletter", list(NEWSLETTER), []),
        (Channel.WEB_FORM, "spam", list(SPAM_FORM), list(NEW_CAMPAIGNS_FORM)),
        (Channel.CHATBOT, "spam", list(SPAM_CHAT), []),
        (Channel.MESSENGER, "spam", list(SPAM_MESSENGER), []),
        (Channel.EMAIL, "spam", list(SPAM_EMAIL), list(NEW_CAMPAIGNS_EMAIL)),
    ]
    weights = {Channel.WEB_FORM: 2, Channel.EMAIL: 2, Channel.CHATBOT: 1, Channel.MESSENGER: 1}
    for channel, kind, templates, new_templates in groups:
        count = per_group * weights[channel] // (2 if kind == "newsletter" or channel is Channel.EMAIL else 1)
        for index in range(count):
            fraction = (index + rng.random()) / count
            newer = fraction >= 0.7
            pool = templates
            if newer and new_templates and rng.random() < 0.4:
                pool = new_templates
            template = rng.choice(pool)
            template_id = (
                f"{channel.value}:{kind}:{(new_templates if pool is new_templates else templates).index(template)}"
            )
            if pool is new_templates:
                template_id += ":new"
            spam = kind == "spam"
            label = "spam" if spam else "ham"
            at = start + span * fraction + timedelta(seconds=rng.randint(0, 3600))
            person = _person(rng, spam)
            event_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            raw = None
            subject = None
            if channel is Channel.EMAIL:
                subject_template, sentences = template  # type: ignore[misc]
                subject = _fill(rng, subject_template)
                body = "\n\n".join(_fill(rng, s) for s in sentences)
                if spam or kind == "newsletter":
                    body = _noise(rng, body, upper=False) if spam else body
                raw = _raw_email(
                    rng,
                    person,
                    subject,
                    body,
                    at,
                    html=(spam and rng.random() < 0.5) or kind == "newsletter",
                    newsletter=kind == "newsletter",
                    event_id=event_id,
                )
                message = body
                interaction_kind = InteractionKind.EMAIL
            else:
                message = _compose(rng, list(template), spam)  # type: ignore[arg-type]
                interaction_kind = {
                    Channel.WEB_FORM: InteractionKind.CONTACT_US,
                    Channel.CHATBOT: InteractionKind.CHAT,
                    Channel.MESSENGER: InteractionKind.MESSAGE,
                }[channel]
            ip = f"203.0.113.{rng.randint(1, 254)}"
            event = ContactEvent(
                event_id=event_id,
                channel=channel,
                occurred_at=at,
                received_at=at,
                subject_key=f"sk_{uuid.UUID(int=rng.getrandbits(128)).hex}",
                person=Person(**person, company=rng.choice(COMPANIES) if not spam and rng.random() < 0.6 else None),
                interaction=Interaction(kind=interaction_kind, subject=subject, message=message[:50_000]),
                provenance=Provenance(source_id=f"devset-{channel.value}", ip=ip),
            )
            items.append(DevItem(event, label, raw, template_id, newer))
    items.sort(key=lambda item: item.event.received_at)
    return items


__all__ = ["DevItem", "build_devset"]
