"""What a repeater network costs to build and run: a price table (documented defaults, overridden from YAML) and
the total cost of ownership of a design, per delivered pair and per secret key bit.

>>> prices = PriceTable()
>>> prices.site_capex(memory_qubits=8)      # one repeater site with 8 memory qubits
410000.0
>>> round(bbm92_bits_per_pair(0.95), 4)      # Werner pairs of fidelity 0.95: QBER 3.3 % in both bases
0.2892

The defaults are round figures of the right order for a metropolitan deployment in 2026, meant to be replaced by
a user's quotes, not vendor prices: a cryostat-class enclosure with its optics and control electronics per
repeater site, memory qubits, a heralding station (two superconducting detectors and their cryostat share, a
beam splitter, time tagging) and photon sources per elementary link, dark-fibre lease per km and year, a control
plane per site and year, and the site's running costs (power, cryogenics, maintenance). Capital costs are spread
over ``lifetime_years`` as an annuity at ``discount_rate``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import yaml

from qfabric.errors import QfabricError
from qfabric.qkd.theory import bbm92_rate

SECONDS_PER_YEAR = 365.25 * 24 * 3600


@dataclass(frozen=True)
class PriceTable:
    """Prices in one currency (the defaults: EUR). Override any field: ``PriceTable.from_yaml("prices.yaml")``."""

    repeater_site: float = 250_000.0  # enclosure, cryostat-class housing, optical table, control electronics
    memory_qubit: float = 20_000.0  # per memory qubit at a repeater or an end node
    heralding_station: float = 120_000.0  # per elementary link: two SNSPDs (cryostat share), beam splitter, tagger
    photon_sources: float = 30_000.0  # per elementary link: the emitters' excitation and frequency conversion
    fibre_lease_per_km_year: float = 1_500.0  # dark fibre, per km of route and year
    control_plane_per_site_year: float = 8_000.0  # classical controller, timing and monitoring, per station
    site_opex_per_year: float = 40_000.0  # power, cryogenics, maintenance of a repeater site
    lifetime_years: float = 7.0
    discount_rate: float = 0.05

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise QfabricError(f"prices.{f.name} = {value!r}: expected a non-negative number")
        if self.lifetime_years <= 0:
            raise QfabricError(f"prices.lifetime_years = {self.lifetime_years}: expected a positive number of years")

    @classmethod
    def from_yaml(cls, path: str | Path) -> PriceTable:
        """The defaults with the fields a YAML mapping names replaced; unknown fields are an error."""
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise QfabricError(f"{path}: cannot read a price table ({err})") from None
        known = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) - known:
            unknown = sorted(set(data) - known) if isinstance(data, dict) else data
            raise QfabricError(f"{path}: unknown price fields {unknown}; expected some of {sorted(known)}")
        return replace(cls(), **data)

    def site_capex(self, memory_qubits: int) -> float:
        return self.repeater_site + memory_qubits * self.memory_qubit

    def link_capex(self) -> float:
        return self.heralding_station + self.photon_sources

    def annuity_factor(self) -> float:
        """Capital cost per year for one unit of capital over the lifetime (1 / lifetime without discounting)."""
        r, n = self.discount_rate, self.lifetime_years
        return 1 / n if r == 0 else r / (1 - (1 + r) ** -n)

    def as_dict(self) -> dict:
        return asdict(self)


def bbm92_bits_per_pair(fidelity: float) -> float:
    """Asymptotic BBM92 secret bits per delivered pair for Werner pairs of ``fidelity`` (QBER 2(1 - F)/3 in both
    bases, half the pairs sifted away, Shannon-limit error correction); 0 when no key can be made."""
    qber = 2 * (1 - fidelity) / 3
    return 0.5 * bbm92_rate(qber, qber)


@dataclass(frozen=True)
class CostOfOwnership:
    """Capital and running costs of a design, and what each delivered pair and key bit costs."""

    capex: float
    capex_parts: dict
    opex_per_year: float
    opex_parts: dict
    cost_per_year: float
    pairs_per_year: float
    key_bits_per_year: float
    cost_per_pair: float | None
    cost_per_key_bit: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def cost_of_ownership(prices: PriceTable, *, sites: int, memory_qubits: int, links: int, fibre_km: float,
                      stations: int, pairs_per_s: float, key_bits_per_s: float) -> CostOfOwnership:
    """The design's costs: ``sites`` repeater sites holding ``memory_qubits`` in all (end nodes' qubits included),
    ``links`` elementary links over ``fibre_km`` of leased fibre, ``stations`` nodes under the control plane,
    delivering ``pairs_per_s`` (and ``key_bits_per_s`` of BBM92 key on them)."""
    capex_parts = {"repeater_sites": sites * prices.repeater_site, "memory_qubits": memory_qubits * prices.memory_qubit,
                   "links": links * prices.link_capex()}
    opex_parts = {"fibre_lease": fibre_km * prices.fibre_lease_per_km_year,
                  "control_plane": stations * prices.control_plane_per_site_year,
                  "sites": sites * prices.site_opex_per_year}
    capex, opex = sum(capex_parts.values()), sum(opex_parts.values())
    per_year = capex * prices.annuity_factor() + opex
    pairs, bits = pairs_per_s * SECONDS_PER_YEAR, key_bits_per_s * SECONDS_PER_YEAR
    return CostOfOwnership(capex, capex_parts, opex, opex_parts, per_year, pairs, bits,
                           per_year / pairs if pairs > 0 else None, per_year / bits if bits > 0 else None)
