"""Alembic migrations of the one database (CRM, key store, rights tracker); ``pipeline.db`` runs them from code.

Adding a table: put the model on ``pipeline.db.Base``, add its module to ``MODEL_MODULES`` (so autogenerate sees it),
then ``leadpipe db revision -m "..."`` (autogenerates against a scratch SQLite database at head; review the file) or
write the revision by hand. A revision must work on PostgreSQL and SQLite (``op.batch_alter_table`` for ALTERs).
A revision file is compact: a docstring that says why, then ``revision, down_revision = "00NN_name", "<previous>"``
(no Revision ID lines, no branch labels); columns, keys and indexes come from ``shapes`` (``at``, ``text``,
``subject_key``, ``cascade``, ``create_indexes`` ...) rather than written out again.

Nothing in the product imports this package but Alembic's ``env.py`` and ``leadpipe db`` (``cli``): it sits above
every module that defines tables.
"""

from __future__ import annotations

from types import ModuleType

from sqlalchemy import MetaData

from pipeline.crm import schema as crm_schema
from pipeline.crypto import keystore
from pipeline.db import Base
from pipeline.identity import tables as identity_tables
from pipeline.ingest import replay
from pipeline.rights import tracker
from pipeline.sinks import ledger

#: Every module that defines tables on ``pipeline.db.Base`` (imported here, so their tables are on its metadata).
MODEL_MODULES: tuple[ModuleType, ...] = (keystore, crm_schema, tracker, identity_tables, replay, ledger)

#: What migrations are compared against (autogenerate, and the test that the migrations match the models).
target_metadata: MetaData = Base.metadata

__all__ = ["MODEL_MODULES", "target_metadata"]
