"""Sinks: where accepted events are written (internal CRM, HubSpot). They write what they are given, never decide."""

from pipeline.sinks.base import BatchingSink, Outcome, RecordResult, SinkBackpressureError

__all__ = ["BatchingSink", "Outcome", "RecordResult", "SinkBackpressureError"]
