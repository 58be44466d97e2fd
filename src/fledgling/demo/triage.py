"""The `ticket-triage` task: classify a helpdesk ticket into a strict JSON object.

The agent sends each incoming ticket with a `response_format` JSON Schema (strict): enums for
category and priority, a nested customer object, a tags array, a boolean and a free-text summary.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any, TypedDict

from fledgling.demo import entities as ent
from fledgling.demo.phrasing import noisy
from fledgling.demo.scripted_call import ScriptedCall, assistant_text, compact

TASK = "ticket-triage"

CATEGORIES = ("billing", "shipping", "returns", "technical", "account", "product_question", "other")
PRIORITIES = ("low", "normal", "high", "urgent")
TIERS = ("free", "plus", "business", "enterprise")

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": list(CATEGORIES)},
        "priority": {"type": "string", "enum": list(PRIORITIES)},
        "customer": {"type": "object",
                     "properties": {"tier": {"type": "string", "enum": list(TIERS)},
                                    "account_id": {"type": ["string", "null"]}},
                     "required": ["tier", "account_id"], "additionalProperties": False},
        "tags": {"type": "array", "items": {"type": "string"}},
        "needs_human": {"type": "boolean"},
        "summary": {"type": "string"},
    },
    "required": ["category", "priority", "customer", "tags", "needs_human", "summary"],
    "additionalProperties": False,
}
RESPONSE_FORMAT: dict[str, Any] = {"type": "json_schema",
                                   "json_schema": {"name": "ticket_triage", "strict": True, "schema": SCHEMA}}

SYSTEM_PROMPT = """\
You triage incoming helpdesk tickets for Northwind Outfitters. For each ticket, return one JSON \
object that matches the schema, nothing else.

- category: billing (charges, invoices, VAT), shipping (delivery, tracking, couriers), returns \
(return labels, refunds for returned goods), technical (app or website errors, login problems), \
account (account data, security, deletion), product_question (questions before or after buying \
about a product), other (everything else, including praise and job or partnership requests).
- priority: urgent for security incidents, safety hazards, legal threats and outages blocking \
many customers; high when the customer is blocked, waiting on money, or it is a repeat contact; \
normal by default; low for feedback, praise and questions without time pressure. A request \
marked urgent by the customer goes up one level, never above urgent.
- customer.tier: from the Plan line (free, plus, business, enterprise); free when no plan is \
given. customer.account_id: the ACC- id if the ticket shows one, else null.
- tags: short lowercase snake_case labels: the topic (e.g. double_charge, late_delivery, \
login), plus repeat_contact, legal, security, vip (enterprise tier) when they apply.
- needs_human: true for legal threats, security incidents, enterprise tier tickets of high or \
urgent priority, and anything that needs a judgement call on money above 500.
- summary: one neutral sentence for the agent queue, at most 25 words.
"""

# (category, customer subject, body, base priority, tags, needs_human, summary)
TEMPLATES: tuple[tuple[str, str, str, str, tuple[str, ...], bool, str], ...] = (
    ("billing", "charged twice", "Hi, I was charged twice for order {oid} ({amount} each). Please refund one of them.",
     "high", ("double_charge",), False, "Customer was charged twice for order {oid} and wants one charge refunded."),
    ("billing", "wrong invoice",
     "The invoice for {oid} has the wrong company name and VAT number. I need a corrected one for our accounting.",
     "normal", ("invoice",), False, "Customer needs a corrected invoice (company name, VAT number) for order {oid}."),
    ("billing", "charge after cancelling",
     "Why was my card charged {amount} after I cancelled {oid}?? I want this money back.",
     "high", ("unexpected_charge",), False, "Customer was charged {amount} after cancelling order {oid}."),
    ("billing", "bulk refund",
     "Our finance team found overcharges on 14 orders totalling {big_amount}. Please review and refund.",
     "high", ("overcharge", "bulk"), True,
     "Business customer reports overcharges on 14 orders totalling {big_amount}."),
    ("shipping", "not delivered",
     "Tracking says {oid} was delivered yesterday but there is nothing at my door or with the neighbours.",
     "high", ("missing_parcel",), False, "Order {oid} is marked delivered but the customer did not receive it."),
    ("shipping", "tracking stuck", "The tracking for {oid} hasn't updated in 6 days. Is it lost?",
     "normal", ("late_delivery",), False, "Tracking for order {oid} has not updated in 6 days."),
    ("shipping", "wrong address",
     "I made a typo in the address for {oid}, it should go to {city}. Can you fix it before it ships?",
     "high", ("address_change",), False,
     "Customer needs the delivery address of order {oid} corrected to {city} before shipping."),
    ("shipping", "damaged box", "The courier left my parcel in the rain and the {product} box is soaked. Order {oid}.",
     "normal", ("damaged_in_transit",), False,
     "Parcel for order {oid} arrived wet; the {product} packaging is damaged."),
    ("returns", "return label", "The return label for {oid} gives an error when I try to print it.",
     "normal", ("return_label",), False, "Customer cannot print the return label for order {oid}."),
    ("returns", "refund not received", "I sent back the {product} three weeks ago and still no refund. Order {oid}.",
     "high", ("refund_delay",), False,
     "Refund for the returned {product} (order {oid}) has not arrived after three weeks."),
    ("returns", "how to return", "How do I return the {product}? It doesn't fit.",
     "low", ("return_howto",), False, "Customer asks how to return the {product}."),
    ("technical", "app crash", "Your app crashes every time I open My Orders. iPhone 15, latest version.",
     "normal", ("app_crash",), False, "The iOS app crashes when the customer opens My Orders."),
    ("technical", "checkout error",
     "Checkout fails with error 500 for me and my colleagues since this morning, we can't order anything.",
     "urgent", ("checkout", "outage"), True, "Checkout returns error 500 for several users since this morning."),
    ("technical", "can't log in", "The password reset email never arrives, I've tried 4 times.",
     "high", ("login",), False, "Customer cannot log in because password reset emails do not arrive."),
    ("account", "delete my data", "Please delete my account and all my personal data (GDPR).",
     "normal", ("data_deletion",), True, "Customer requests deletion of their account and personal data under GDPR."),
    ("account", "hacked", "Someone changed my email address and placed an order I didn't make ({oid}).",
     "urgent", ("account_takeover", "security"), True,
     "Possible account takeover: email changed and unauthorised order {oid} placed."),
    ("account", "change email", "Can you change the email on my account to {email}?",
     "low", ("email_change",), False, "Customer wants the account email changed to {email}."),
    ("product_question", "compatibility", "Does the {product} work with Android phones?",
     "low", ("compatibility",), False, "Customer asks whether the {product} works with Android phones."),
    ("product_question", "warranty", "Is the {product} covered by warranty if it breaks after a year?",
     "low", ("warranty",), False, "Customer asks about warranty coverage for the {product} after one year."),
    ("product_question", "bulk discount", "We want to buy 50 of the {product} for our team, is there a discount?",
     "normal", ("bulk_quote",), False, "Customer asks for a bulk discount on 50 units of the {product}."),
    ("other", "thank you", "Just wanted to say the {product} is great and delivery was super fast!",
     "low", ("praise",), False, "Customer praises the {product} and the fast delivery."),
    ("other", "partnership", "We run a hiking blog and would love to partner with you on the {product}.",
     "low", ("partnership",), False, "A blogger proposes a partnership around the {product}."),
)

URGENT_CUES = (" This is urgent!", " Please handle ASAP.", " URGENT, need this today.")
REPEAT_CUES = (" This is the third time I'm writing about this.", " I already contacted you twice and nobody answered.")
LEGAL_CUES = (" If this is not resolved I will contact my lawyer.",
              " I'm going to file a complaint with consumer protection.")
SIGNOFFS = ("Thanks,\n{name}", "Best regards,\n{name}", "{name}", "--\n{name}\nSent from my phone", "Cheers, {first}")


def _bump(priority: str) -> str:
    return PRIORITIES[min(PRIORITIES.index(priority) + 1, len(PRIORITIES) - 1)]


class _Values(TypedDict):
    """What a ticket template's placeholders are filled with."""

    oid: str
    product: str
    city: str
    email: str
    amount: str
    big_amount: str


class TriageTicket:
    """One incoming ticket: the request the triage step sends and the right classification."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def exchanges(self) -> Iterator[ScriptedCall]:
        rng = self.rng
        cust = ent.customer(rng)
        category, subject, body, priority, template_tags, needs_human, summary = rng.choice(TEMPLATES)
        prod = ent.product(rng)
        values: _Values = {"oid": ent.order_id(rng), "product": prod.name, "city": ent.customer(rng).city,
                           "email": ent.customer(rng).email,
                           "amount": f"{ent.money(rng.uniform(15, 400)):.2f} {cust.currency}",
                           "big_amount": f"{rng.randint(600, 9000):,} {cust.currency}"}
        tags = list(template_tags)
        plan = rng.choices(TIERS, (5, 3, 2, 1))[0] if rng.random() < 0.75 else None
        tier = plan or "free"
        account = f"ACC-{rng.randint(10000, 99999)}" if rng.random() < 0.6 else None
        text = body
        if rng.random() < 0.15:
            text += rng.choice(URGENT_CUES)
            priority = _bump(priority)
        if rng.random() < 0.1:
            text += rng.choice(REPEAT_CUES)
            tags.append("repeat_contact")
            priority = max(priority, "high", key=PRIORITIES.index)
        if rng.random() < 0.04:
            text += rng.choice(LEGAL_CUES)
            tags.append("legal")
            needs_human = True
        if tier == "enterprise":
            tags.append("vip")
            needs_human = needs_human or priority in ("high", "urgent")
        body_text = noisy(rng, text, typo_rate=0.02, **values)
        header = [f"Ticket #{rng.randint(100000, 999999)} via {rng.choice(('email', 'web form', 'chat', 'app'))}",
                  f"From: {cust.name} <{cust.email}>"]
        plan_line = ([f"Plan: {plan.capitalize()}"] if plan else []) + ([f"Account: {account}"] if account else [])
        if plan_line:
            header.append(" · ".join(plan_line))
        header.append(f"Subject: {noisy(rng, subject, typo_rate=0.0, chatty=False)}")
        signoff = rng.choice(SIGNOFFS).format(name=cust.name, first=cust.first_name)
        ticket = "\n".join(header) + "\n\n" + body_text + "\n\n" + signoff
        truth = {"category": category, "priority": priority,
                 "customer": {"tier": tier, "account_id": account}, "tags": tags,
                 "needs_human": needs_human, "summary": summary.format(**values)}
        messages = [{"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": ticket}]
        yield ScriptedCall(messages, assistant_text(compact(truth)), category, 0, "json",
                           {"ticket_priority": priority})
