"""Ways in over HTTP: the ingest API for sources, and the app other areas hang their routers on."""
