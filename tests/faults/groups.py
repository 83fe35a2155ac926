"""What Kafka says about the workers' consumer groups: who holds which partitions, and how far
each group has committed. The fault tests wait on it (a takeover test must kill a worker that
holds partitions, in a group that is not mid-rebalance) and print it when they fail, so a
failure in CI says where the work stopped.

Why not the workers' logs: "deliver: assigned" is also logged for an empty assignment (the
first round of a cooperative rebalance gives the joining member nothing), and a test that
waited for that line killed its worker mid-rebalance on every run.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from app.kafka import client_config
from app.settings import Settings
from app.worker.attempts import deliver_group

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Group:
    name: str
    state: str  # e.g. "STABLE", "PREPARING_REBALANCE", "EMPTY"
    members: tuple[tuple[str, frozenset[tuple[str, int]]], ...]  # (member id, partitions)

    @property
    def settled(self) -> bool:
        """Stable, and every member holds at least one partition."""
        return self.state == "STABLE" and all(parts for _member, parts in self.members)


def worker_groups(settings: Settings) -> list[str]:
    """The match agent's group (Faust) and the attempt consumers' group."""
    return [settings.kafka.consumer_group, deliver_group(settings)]


def describe(settings: Settings, groups: list[str]) -> list[Group]:
    admin = AdminClient(client_config(settings))
    described = admin.describe_consumer_groups(groups, request_timeout=TIMEOUT_S)
    out = []
    for name in groups:
        group = described[name].result()
        members = tuple(
            sorted(
                (
                    member.member_id,
                    frozenset(
                        (tp.topic, tp.partition)
                        for tp in (member.assignment.topic_partitions if member.assignment else [])
                    ),
                )
                for member in group.members
            )
        )
        out.append(Group(name, group.state.name, members))
    return out


def settled(settings: Settings, members: int) -> bool:
    """Both worker groups stable with ``members`` members, each holding partitions."""
    try:
        groups = describe(settings, worker_groups(settings))
    except Exception:  # a group not known yet, or Kafka busy: not settled
        return False
    return all(g.settled and len(g.members) == members for g in groups)


def committed(settings: Settings, group: str) -> dict[tuple[str, int], int]:
    admin = AdminClient(client_config(settings))
    request = [ConsumerGroupTopicPartitions(group)]
    result = admin.list_consumer_group_offsets(request, request_timeout=TIMEOUT_S)[group].result()
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}


def high_watermarks(settings: Settings, topic: str) -> dict[tuple[str, int], int]:
    consumer = Consumer({**client_config(settings), "group.id": "watermarks-unused"})
    try:
        meta = consumer.list_topics(topic, timeout=TIMEOUT_S).topics[topic]
        return {
            (topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p), TIMEOUT_S)[1]
            for p in sorted(meta.partitions)
        }
    finally:
        consumer.close()


def _parts(parts: frozenset[tuple[str, int]]) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in sorted(parts)) or "nothing"


def report(settings: Settings, topics: dict[str, str]) -> str:
    """A readable account of the worker groups: state, members and their partitions, and
    per partition committed offset against the end of the log (``topics``: group -> topic).
    Never raises: it is printed when a test has already failed."""
    lines = []
    try:
        for group in describe(settings, list(topics)):
            lines.append(f"group {group.name}: {group.state}, {len(group.members)} member(s)")
            lines += [f"  {member}: {_parts(parts)}" for member, parts in group.members]
            done = committed(settings, group.name)
            ends = high_watermarks(settings, topics[group.name])
            behind = {tp: (done.get(tp, -1), end) for tp, end in ends.items()}
            lines.append(
                "  committed/end: "
                + ", ".join(f"[{p}] {c}/{e}" for (_t, p), (c, e) in sorted(behind.items()))
            )
    except Exception as exc:  # Kafka itself may be what failed
        lines.append(f"(groups not described: {exc!r})")
    return "\n".join(lines)
