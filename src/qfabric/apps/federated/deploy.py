"""The aggregator's side on Flower's deployment runtime (a SuperLink, one SuperNode per organisation,
``flwr run``): :class:`~qfabric.apps.federated.strategy.SecureFedAvg` configured from the run config, for a
ServerApp the user writes (``examples/flower-hospitals/hospitals/server.py``)::

    with secure_fedavg(context.run_config) as strategy:
        strategy.start(grid, ArrayRecord(initial), num_rounds=..., evaluate_fn=...)

Run config (``[tool.flwr.app.config]``, or ``flwr run --run-config``): ``qfabric-aggregator``,
``qfabric-kme-url``, ``qfabric-cert``, ``qfabric-key``, ``qfabric-ca`` (the aggregator's SAE and its KME);
optional ``policy`` (hybrid), ``fallback`` (pq-only), ``clip-norm`` (1.0), ``noise-multiplier`` (0: no
differential privacy), ``min-clients`` (2), ``keys-per-request`` (1), ``weight-cap-examples`` (1000: FedAvg
weights min(examples / cap, 1) without DP).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from qfabric.apps.federated.strategy import Protection, SecureFedAvg
from qfabric.apps.federated.wire import TimedKme
from qfabric.errors import QfabricError
from qfabric.kms.client import SaeClient
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
                                min_clients=int(cfg.get("min-clients", 2)))
        yield SecureFedAvg(protection, **fedavg)
    finally:
        kme.close()
