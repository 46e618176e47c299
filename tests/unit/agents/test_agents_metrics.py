"""The worker's Prometheus metrics: what each agent records shows up in the exposition, and only codes do."""

from __future__ import annotations

from faust.types import TP
from prometheus_client.parser import text_string_to_metric_families

from pipeline.agents.faust_adapter import PartitionProgress
from pipeline.agents.metrics import WorkerMetrics
from pipeline.agents.processing import drop_reasons
from pipeline.agents.sender import Out
from pipeline.topics import DROPS_TOPIC


def samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, parsed back from the text ``/metrics`` serves."""
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_processing_batches_add_up_by_outcome_and_drop_reason() -> None:
    metrics = WorkerMetrics()
    metrics.observe_batch("processing", {"accepted": 7, "dropped": 2}, ["child", "subject_erased"], 0.02)
    metrics.observe_batch("processing", {"accepted": 1, "dead_letter": 1}, ["child"], 0.2)
    metrics.observe_batch("review", {"release": 1}, [], 0.001)
    got = samples(metrics)
    processing = ("agent", "processing")
    assert got[("leadpipe_processing_records_total", (processing, ("outcome", "accepted")))] == 8
    assert got[("leadpipe_processing_records_total", (processing, ("outcome", "dropped")))] == 2
    assert got[("leadpipe_processing_records_total", (processing, ("outcome", "dead_letter")))] == 1
    assert got[("leadpipe_processing_records_total", (("agent", "review"), ("outcome", "release")))] == 1
    assert got[("leadpipe_processing_drops_total", (("reason", "child"),))] == 2
    assert got[("leadpipe_processing_drops_total", (("reason", "subject_erased"),))] == 1
    assert got[("leadpipe_processing_batch_seconds_count", (processing,))] == 2
    assert got[("leadpipe_processing_batch_seconds_bucket", (processing, ("le", "0.025")))] == 1
    assert got[("leadpipe_processing_batch_seconds_count", (("agent", "review"),))] == 1


def test_drop_reasons_are_the_keys_of_drop_records_only() -> None:
    records = [
        Out("contacts.accepted", b"sk_1", b"{}"),
        Out(DROPS_TOPIC, b"child", b"{}"),
        Out("audit", None, b"{}"),
        Out(DROPS_TOPIC, b"subject_restricted", b"{}"),
    ]
    assert drop_reasons(records) == ["child", "subject_restricted"]


def test_sink_results_dead_letters_and_pauses_by_sink() -> None:
    metrics = WorkerMetrics()
    metrics.observe_sink("crm", ["done", "done", "not_applicable"], [])
    metrics.observe_sink("hubspot", ["failed"], ["hubspot_rejected"])
    metrics.sink_pauses.labels("hubspot").inc()
    got = samples(metrics)
    assert got[("leadpipe_sink_results_total", (("sink", "crm"), ("status", "done")))] == 2
    assert got[("leadpipe_sink_results_total", (("sink", "crm"), ("status", "not_applicable")))] == 1
    assert got[("leadpipe_sink_results_total", (("sink", "hubspot"), ("status", "failed")))] == 1
    assert got[("leadpipe_sink_dead_letters_total", (("reason", "hubspot_rejected"), ("sink", "hubspot")))] == 1
    assert got[("leadpipe_sink_pauses_total", (("sink", "hubspot"),))] == 1


def test_rights_gauges_are_read_on_each_scrape_and_a_failing_read_keeps_the_last_values() -> None:
    metrics = WorkerMetrics()
    assert not any(name.startswith("leadpipe_rights") for name, _ in samples(metrics))  # not tracked: not shown
    answers: list[tuple[dict[str, int], int] | Exception] = [
        ({"open": 3, "attention": 1}, 2),
        ({"open": 1}, 0),
        ConnectionError("database down"),
    ]

    def pending_counts() -> tuple[dict[str, int], int]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    metrics.track_rights(pending_counts)
    got = samples(metrics)
    assert got[("leadpipe_rights_requests", (("state", "open"),))] == 3
    assert got[("leadpipe_rights_requests", (("state", "attention"),))] == 1
    assert got[("leadpipe_rights_requests_overdue", ())] == 2
    got = samples(metrics)
    assert got[("leadpipe_rights_requests", (("state", "attention"),))] == 0  # a state that emptied reads 0
    assert got[("leadpipe_rights_requests_overdue", ())] == 0
    got = samples(metrics)  # the database is down: the scrape still answers, with the last values
    assert got[("leadpipe_rights_requests", (("state", "open"),))] == 1
    assert answers == []


def test_uncommitted_records_per_partition_replace_fausts_stall_warnings() -> None:
    metrics = WorkerMetrics()
    progress = {
        TP("contacts.accepted", 0): PartitionProgress(committed=90, consumed=100, end=100),
        TP("contacts.accepted", 1): PartitionProgress(committed=None, consumed=None, end=12),  # nothing committed yet
    }
    metrics.track_partitions(lambda: progress)
    label = (("partition", "0"), ("topic", "contacts.accepted"))
    got = samples(metrics)
    assert got[("leadpipe_worker_uncommitted_records", label)] == 10
    assert not any(
        name == "leadpipe_worker_uncommitted_records" and ("partition", "1") in labels for name, labels in got
    )
    progress[TP("contacts.accepted", 0)] = PartitionProgress(committed=100, consumed=100, end=100)
    assert samples(metrics)[("leadpipe_worker_uncommitted_records", label)] == 0
    progress.clear()  # revoked
    assert not any(name == "leadpipe_worker_uncommitted_records" for name, _ in samples(metrics))


def test_consumer_lag_gauge_follows_each_read() -> None:
    from pipeline.kafka.lag import PartitionLag

    reads = [
        [
            PartitionLag("lp", "contacts.normalized", 0, 5, 12, 7),
            PartitionLag("lp", "contacts.accepted", 1, None, 3, 3),
        ],
        [PartitionLag("lp", "contacts.normalized", 0, 12, 12, 0)],
    ]
    metrics = WorkerMetrics()
    metrics.track_lag(lambda: reads.pop(0))
    first = samples(metrics)
    normalized = (("group", "lp"), ("partition", "0"), ("topic", "contacts.normalized"))
    accepted = (("group", "lp"), ("partition", "1"), ("topic", "contacts.accepted"))
    assert first[("leadpipe_consumer_lag", normalized)] == 7
    assert first[("leadpipe_consumer_lag", accepted)] == 3
    second = samples(metrics)
    assert second[("leadpipe_consumer_lag", normalized)] == 0
    assert ("leadpipe_consumer_lag", accepted) not in second  # gone from the group: no stale value left behind


def test_processing_outcomes_by_channel_for_the_spam_share() -> None:
    metrics = WorkerMetrics()
    metrics.observe_batch(
        "processing",
        {"accepted": 3, "quarantined": 1, "dead_letter": 1},
        [],
        0.01,
        {("web_form", "accepted"): 2, ("web_form", "quarantined"): 1, ("email", "accepted"): 1},
    )
    got = samples(metrics)
    web, outcome = ("channel", "web_form"), "outcome"
    assert got[("leadpipe_processing_channel_outcomes_total", (web, (outcome, "quarantined")))] == 1
    assert got[("leadpipe_processing_channel_outcomes_total", (web, (outcome, "accepted")))] == 2
    assert got[("leadpipe_processing_channel_outcomes_total", (("channel", "email"), (outcome, "accepted")))] == 1
    assert not [k for k in got if k[0].startswith("leadpipe_processing_channel") and (outcome, "dead_letter") in k[1]]
