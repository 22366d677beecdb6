"""Hybrid quantum machine learning: a fidelity quantum kernel and a variational classifier, both scikit-learn
estimators, and the 'ad hoc' dataset of Havlicek et al. (2019).

    from qfabric.apps.qml import QuantumKernel, VariationalClassifier, ad_hoc_data

The kernel is plain numpy (:mod:`.featuremaps` computes every embedded state once); the classifier needs
PennyLane (the ``qml`` extra), imported only when it is fitted.
"""

from qfabric.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports("qfabric.apps.qml", {
    "kernel": ["QuantumKernel", "kernel_from_states"],
    "featuremaps": ["embed", "FEATURE_MAPS", "StateMemoryError"],
    "datasets": ["ad_hoc_data"],
    "vqc": ["VariationalClassifier"],
})
