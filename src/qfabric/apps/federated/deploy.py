"""The aggregator's side on Flower's deployment runtime (a SuperLink, one SuperNode per organisation,
``flwr run``): :class:`~qfabric.apps.federated.strategy.SecureFedAvg` configured from the run config, for a
ServerApp the user writes (``examples/flower-hospitals/hospitals/server.py``)::

    with secure_fedavg(context.run_config) as strategy:
        strategy.start(PollingGrid(grid), ArrayRecord(initial), num_rounds=..., evaluate_fn=...)

Run config (``[tool.flwr.app.config]``, or ``flwr run --run-config``): ``qfabric-aggregator``,
``qfabric-kme-url``, ``qfabric-cert``, ``qfabric-key``, ``qfabric-ca`` (the aggregator's SAE and its KME);
optional ``policy`` (hybrid), ``fallback`` (pq-only), ``clip-norm`` (1.0), ``noise-multiplier`` (0: no
differential privacy), ``min-clients`` (2), ``keys-per-request`` (1), ``session-rounds`` (10: rounds one
ML-KEM + X25519 key agreement keys, see :mod:`~qfabric.apps.federated.sessions`), ``weight-cap-examples`` (1000:
FedAvg weights min(examples / cap, 1) without DP), ``double-masking`` (false: self-masks whose seeds the
organisations share, one more message a round, see :mod:`~qfabric.apps.federated.secagg`), ``seed-threshold``
(0: a majority of each organisation's peers).

:class:`PollingGrid` asks the SuperLink for replies every 0.3 s instead of Flower 1.41's fixed 3 s.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from qfabric.apps.federated.strategy import Protection, SecureFedAvg
from qfabric.apps.federated.wire import TimedKme
from qfabric.errors import QfabricError
from qfabric.kms.client import SaeClient
from qfabric.kms.identity import SaeIdentity
from qfabric.kms.policy import Policy

REQUIRED = ("qfabric-aggregator", "qfabric-kme-url", "qfabric-cert", "qfabric-key", "qfabric-ca")


@contextlib.contextmanager
def secure_fedavg(run_config: Mapping, **fedavg) -> Iterator[SecureFedAvg]:
    """SecureFedAvg for the aggregator named in ``run_config``, its KME connection closed at the end.

    >>> with secure_fedavg({"qfabric-aggregator": "aggregator"}) as s:  # doctest: +ELLIPSIS
    ...     pass
    Traceback (most recent call last):
    qfabric.errors.QfabricError: the run config has no qfabric-kme-url, qfabric-cert, qfabric-key, qfabric-ca: ...
    """
    cfg = run_config
    missing = [k for k in REQUIRED if not cfg.get(k)]
    if missing:
        raise QfabricError(f"the run config has no {', '.join(missing)}: the aggregator needs its SAE identity and "
                           "its KME (flwr run --run-config 'qfabric-kme-url=\"https://...\" qfabric-cert=...')")
    kme = SaeClient(str(cfg["qfabric-kme-url"]), str(cfg["qfabric-cert"]), str(cfg["qfabric-key"]),
                    str(cfg["qfabric-ca"]))
    try:
        policy = Policy(mode=str(cfg.get("policy", "hybrid")), fallback=str(cfg.get("fallback", "pq-only")))
        protection = Protection(str(cfg["qfabric-aggregator"]),
                                TimedKme(kme, keys_per_request=int(cfg.get("keys-per-request", 1))), policy,
                                clip_norm=float(cfg.get("clip-norm", 1.0)),
                                noise_multiplier=float(cfg.get("noise-multiplier", 0.0)),
                                weight_cap_examples=float(cfg.get("weight-cap-examples", 1000.0)),
                                min_clients=int(cfg.get("min-clients", 2)),
                                session_rounds=int(cfg.get("session-rounds", 10)),
                                double_masking=_flag(cfg, "double-masking"),
                                seed_threshold=int(cfg["seed-threshold"]) if cfg.get("seed-threshold") else None,
                                identity=SaeIdentity.load(str(cfg["qfabric-cert"]), str(cfg["qfabric-key"]),
                                                          str(cfg["qfabric-ca"])))
        yield SecureFedAvg(protection, **fedavg)
    finally:
        kme.close()


def _flag(run_config: Mapping, key: str) -> bool:
    """A boolean of the run config (TOML ``true``/``false``; the same words as text), False when absent.

    >>> _flag({"double-masking": True}, "double-masking"), _flag({"x": "false"}, "x"), _flag({}, "x")
    (True, False, False)
    """
    value = run_config.get(key, False)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise QfabricError(f"run config {key} = {value!r}: expected true or false")
    return value


class PollingGrid(Grid):
    """A ServerApp's grid whose ``send_and_receive`` asks for replies every ``interval_s`` (Flower 1.41's
    deployment grid waits 3 s between asks, so every round waited up to 3 s after the last reply); everything
    else is the wrapped grid's.

    Asking more often than every 0.3 s does not pay: a SuperNode announces its reply to the SuperLink, then
    uploads the reply's parts (0.05-0.2 s here), and an ask that falls in between makes Flower's grid wait 1 s
    before it fetches the missing parts again (``PULL_INITIAL_BACKOFF`` in ``flwr.supercore.constant``). In the
    deployments measured that delayed the next round by ~1 s in 7 of 25 exchanges at 0.1 s, 5 of 21 at 0.3 s
    and 4 of 21 at 0.5 s, while the median round time did not move (the SuperNode that replied last sleeps 3 s
    before asking for its next message, which hides the server's own time).

    >>> PollingGrid(None, interval_s=0)
    Traceback (most recent call last):
    qfabric.errors.QfabricError: interval_s must be positive, got 0
    """

    def __init__(self, grid: Grid, interval_s: float = 0.3):
        if not interval_s > 0:
            raise QfabricError(f"interval_s must be positive, got {interval_s}")
        self.grid, self.interval_s = grid, interval_s

    def set_run(self, run) -> None:
        self.grid.set_run(run)

    @property
    def run(self):
        return self.grid.run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return self.grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self.grid.get_node_ids()

    def get_nodes(self):
        return self.grid.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """Push ``messages``, then pull their replies until all have come or ``timeout`` seconds have passed."""
        waiting = set(self.push_messages(messages))
        end = time.monotonic() + timeout if timeout is not None else None
        replies: list[Message] = []
        while waiting:
            got = list(self.pull_messages(waiting))
            replies.extend(got)
            waiting -= {m.metadata.reply_to_message_id for m in got}
            if not waiting or (end is not None and time.monotonic() >= end):
                break
            time.sleep(self.interval_s if end is None else max(0.0, min(self.interval_s, end - time.monotonic())))
        return replies
