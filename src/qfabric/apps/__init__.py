"""Workloads on top of the network: federated learning (and, later, QML and QRNG)."""
