"""A simulated quantum random number generator: a vacuum-homodyne entropy source with its min-entropy,
NIST SP 800-90B health tests that stop the output, Toeplitz extraction, SP 800-22 statistical tests, a numpy
``Generator``, and an HTTPS service with mutual TLS.

    from qfabric.apps.qrng import Qrng, generator
    Qrng(seed=1).random_bytes(32); generator(seed=1).normal(size=3)
"""

from qfabric.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports("qfabric.apps.qrng", {
    "stream": ["Qrng", "QrngGenerator", "bit_generator", "generator"],
    "health": ["HealthTests", "HealthTestFailure", "rct_cutoff", "apt_cutoff"],
    "source": ["HomodyneSource"],
    "sp800_22": ["sp800_22_report"],
})
