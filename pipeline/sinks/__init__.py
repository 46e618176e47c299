"""Sinks: where accepted events are written (internal CRM, HubSpot). They write what they are given, never decide."""

from pipeline.sinks.base import BatchingSink, RecordResult, SinkBackpressureError, WriteOutcome

__all__ = ["BatchingSink", "RecordResult", "SinkBackpressureError", "WriteOutcome"]
