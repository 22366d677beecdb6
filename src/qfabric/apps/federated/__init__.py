"""Federated learning protected by the quantum network: encrypted updates, QKD-keyed secure aggregation,
differential privacy. (The Flower integration that drives these is not built yet.)"""
