"""Each hospital's ClientApp: the training code of ``qfabric.apps.federated.hospital`` under qfabric's mod."""

from qfabric.apps.federated import hospital

app = hospital.protected_app
