"""The hospitals on Flower's deployment runtime (qfabric apps)."""
