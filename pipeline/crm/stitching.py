"""Stitching: which person an anonymous website visitor's history belongs to (pure; the shared-device rule).

A link is one event that identified a person on a visitor's device (a form, a chat or an ``identify`` that carried
the visitor's cookie id). The CRM keeps, per (visitor, person), the earliest such event (``earliest``); whom the
visitor's history is shown with follows from all the links of that visitor (``attribute``), so the result depends
on which events exist, never on the order they arrived in, and a redelivered event changes nothing:

- one person identified on the device: the whole history is theirs (before and after they identified, as Segment's
  identify/alias, HubSpot's ``hutk`` and Snowplow's user stitching do);
- several people did (a shared device): the history belongs to the FIRST person who identified on it (by the time
  of the identifying event), up to the moment another person first identified on it; what the device did from then
  on is nobody's and stays the anonymous visitor's. Attributing one person's browsing to another (and handing it
  out in the other's access export) would be a disclosure; leaving it anonymous loses nothing the law asks for.

Erasure is wider on purpose (one data key per visitor): erasing any person who identified on a device erases the
device's whole history, since any of it may be theirs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Link:
    """An event that identified ``subject_key`` on the device of ``visitor_key``, and when it happened."""

    visitor_key: str
    subject_key: str
    linked_at: datetime
    event_id: UUID

    @property
    def order(self) -> tuple[datetime, UUID, str]:
        """Earlier first; the event id (then the person) breaks ties, so every reader picks the same link."""
        return (self.linked_at, self.event_id, self.subject_key)


def earliest(stored: Link | None, new: Link) -> Link:
    """The link a (visitor, person) pair keeps: the earlier of the stored one and a new one."""
    if stored is None:
        return new
    if (stored.visitor_key, stored.subject_key) != (new.visitor_key, new.subject_key):
        raise ValueError("links of different visitor/person pairs")
    return new if new.order < stored.order else stored


@dataclass(frozen=True, slots=True)
class Attribution:
    """Whose a visitor's history is: ``owner``'s from the start up to ``until`` (None: all of it)."""

    visitor_key: str
    owner: Link
    shared_by: Link | None = None
    """The first link of another person: from its time on the device is shared and its history nobody's."""

    @property
    def until(self) -> datetime | None:
        return None if self.shared_by is None else self.shared_by.linked_at

    def covers(self, occurred_at: datetime) -> bool:
        """Whether an anonymous event of the visitor at ``occurred_at`` is the owner's."""
        until = self.until
        return until is None or occurred_at < until


def attribute(links: Iterable[Link]) -> Attribution | None:
    """The attribution of one visitor's history from its links (any order, duplicates allowed); None without any."""
    ordered = sorted(links, key=lambda link: link.order)
    if not ordered:
        return None
    owner = ordered[0]
    if any(link.visitor_key != owner.visitor_key for link in ordered):
        raise ValueError("links of different visitors")
    shared_by = next((link for link in ordered if link.subject_key != owner.subject_key), None)
    return Attribution(owner.visitor_key, owner, shared_by)
