"""A Flower ``Grid`` whose SuperNodes live in this process: one ClientApp per organisation, each with its
own ``Context`` (node config, persistent state), and every message crossing in Flower's protobuf wire
format, so nothing is shared by reference and the bytes on the wire are counted.

Flower's own simulation runtime needs Ray; this grid runs the same ``ServerApp`` / ``ClientApp`` objects
sequentially, deterministically, on loopback only (the KME calls inside the apps are real HTTPS).

>>> from flwr.app import RecordDict, Message, MetricRecord
>>> from flwr.clientapp import ClientApp
>>> app = ClientApp()
>>> @app.query()
... def ping(msg, context):
...     return Message(RecordDict({"m": MetricRecord({"node": context.node_config["partition-id"]})}), reply_to=msg)
>>> grid = LocalGrid(app, [{"partition-id": 0}, {"partition-id": 1}])
>>> replies = grid.send_and_receive([Message(RecordDict(), dst_node_id=n, message_type="query")
...                                  for n in grid.get_node_ids()])
>>> sorted(r.content["m"]["node"] for r in replies)
[0, 1]
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import uuid4

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage  # pylint: disable=no-name-in-module
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from qfabric.apps.federated.wire import RECORD, STEP, TRAIN

FIRST_NODE_ID = 1001


def _is_training(message: Message) -> bool:
    """A train message that trains (not one of qfabric's other protocol steps, which travel as train too)."""
    if message.metadata.message_type.split(".")[0] != "train":
        return False
    return RECORD not in message.content or message.content[RECORD].get(STEP, TRAIN) == TRAIN


def _wire(message: Message) -> bytes:
    return message_to_proto(message).SerializeToString()


def _unwire(data: bytes) -> Message:
    proto = ProtoMessage()
    proto.ParseFromString(data)
    return message_from_proto(proto)


@dataclass
class WireStats:
    messages: int = 0
    bytes_to_nodes: int = 0
    bytes_from_nodes: int = 0
    client_seconds: float = 0.0
    by_type: dict[str, int] = field(default_factory=dict)


class LocalGrid(Grid):
    """Nodes ``FIRST_NODE_ID, FIRST_NODE_ID + 1, ...`` with the given node configs. Chaos: ``offline`` nodes
    never answer; ``silent_in_training`` nodes answer queries but not ``train`` (a crash while training)."""

    def __init__(self, client_app: ClientApp, node_configs: list[dict], run_config: dict | None = None,
                 run_id: int = 1):
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = run_id, SUPERLINK_NODE_ID, 0
        self.client_app = client_app
        self._run = Run.create_empty(run_id)
        self.contexts = {
            FIRST_NODE_ID + i: Context(run_id=run_id, node_id=FIRST_NODE_ID + i, node_config=dict(cfg),
                                       state=RecordDict(), run_config=dict(run_config or {}))
            for i, cfg in enumerate(node_configs)
        }
        self.offline: set[int] = set()
        self.silent_in_training: set[int] = set()
        self.stats = WireStats()
        self._replies: dict[str, bytes] = {}

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return Message(content, dst_node_id=dst_node_id, message_type=message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def _deliver(self, data: bytes) -> bytes | None:
        message = _unwire(data)
        node = message.metadata.dst_node_id
        if node not in self.contexts:
            raise ValueError(f"no node {node} in this grid")
        if node in self.offline or (node in self.silent_in_training and _is_training(message)):
            return None
        t0 = time.perf_counter()
        try:
            reply = self.client_app(message, self.contexts[node])
        except Exception as ex:  # a ClientApp failure becomes an error reply, as on a SuperNode
            reason = f"{type(ex).__name__}: {ex}"
            if not str(ex):
                reason += " " + traceback.format_exc(limit=2)
            reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=message)
        self.stats.client_seconds += time.perf_counter() - t0
        reply.metadata.__dict__["_message_id"] = str(uuid4())
        return _wire(reply)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = str(uuid4())
            data = _wire(message)
            self.stats.messages += 1
            self.stats.bytes_to_nodes += len(data)
            kind = message.metadata.message_type
            if RECORD in message.content:  # qfabric's protocol steps all travel as train messages
                kind += f" ({message.content[RECORD].get(STEP, TRAIN)})"
            self.stats.by_type[kind] = self.stats.by_type.get(kind, 0) + 1
            reply = self._deliver(data)
            if reply is not None:
                self.stats.bytes_from_nodes += len(reply)
                self._replies[message.metadata.message_id] = reply
            ids.append(message.metadata.message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [_unwire(self._replies.pop(i)) for i in message_ids if i in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """Deliver and answer every message now; an offline node's message gets no reply (as after a timeout)."""
        return self.pull_messages(self.push_messages(messages))
