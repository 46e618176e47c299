"""The internal CRM: schema, repository (writes, reads, rights effects), sink, CLI and read-only HTTP router."""
