"""qfabric: design, simulate and operate quantum networks that secure collaborative AI.

The layers (see docs/ and DESIGN.md) are subpackages; each imports only the ones below it:
``states``, ``sim`` -> ``hardware`` -> ``link`` -> ``network`` -> ... -> ``observe`` -> ``scenario`` -> ``cli``.
"""

from qfabric.errors import QfabricError

__version__ = "0.1.0"
__all__ = ["QfabricError", "__version__"]
