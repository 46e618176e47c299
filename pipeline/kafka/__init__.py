"""Kafka at the edge: the local broker launcher, topics as code, and producer helpers."""
