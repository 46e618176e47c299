"""Sealing of personal data with per-subject keys, and the key store whose key destruction is erasure."""

from pipeline.crypto.keystore import KeyStore, SqlKeyStore, SubjectKey
from pipeline.crypto.sealing import KeyDestroyedError, Sealer, record_scope, subject_scope

__all__ = ["KeyDestroyedError", "KeyStore", "Sealer", "SqlKeyStore", "SubjectKey", "record_scope", "subject_scope"]
