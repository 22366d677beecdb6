"""The aggregator's ServerApp: SecureFedAvg with its SAE identity and KME from the run config."""

from qfabric.apps.federated import deploy

app = deploy.server_app
