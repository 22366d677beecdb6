"""What an SAE ID (and a KME or operator name) may be: checked by the KME's API and by the scenario schema.

>>> valid_sae_id("hospital-a.ward_3"), valid_sae_id("a|b"), valid_sae_id("x" * 65)
(True, False, False)
"""

from __future__ import annotations

import re

SAE_ID_RULE = "1 to 64 characters A-Z a-z 0-9 . _ - starting with a letter or digit"
SAE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_SAE_ID = re.compile(SAE_ID_PATTERN)


def valid_sae_id(sae_id) -> bool:
    """Whether ``sae_id`` follows :data:`SAE_ID_RULE` (so no separator of any naming scheme gets in)."""
    return isinstance(sae_id, str) and _SAE_ID.fullmatch(sae_id) is not None
