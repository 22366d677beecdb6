"""Free-space links and satellite passes in a scenario: the glue between the schema and the physics.

* A link of ``kind: free-space`` is built as the fibre link of the same transmissivity: the engine and the QKD model
  take an attenuation in dB/km, so each gets the one that reproduces the free-space loss over the distance it uses
  (half the link for the heralding station's arms, the whole link for QKD), with the speed of light in air.
* ``satellites`` are evaluated over the run: link windows above the minimum elevation, the loss over each, the
  decoy-BB84 key per pass (finite key on the pass's counts) and the pairs of each entangled-pair source.

>>> from qfabric.scenario import parse_scenario
>>> sc = parse_scenario({"name": "fso", "duration_s": 1, "nodes": [{"name": "a"}, {"name": "b"}],
...     "links": [{"name": "a-b", "between": ["a", "b"], "length_km": 2, "kind": "free-space",
...                "optics": {"tx_aperture_m": 0.1, "rx_aperture_m": 0.1}}]})
>>> round(free_space_loss_db(sc.links[0], 2.0), 2)     # 2 km through clear air, 10 cm telescopes
2.21
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qfabric.errors import ScenarioError
from qfabric.link.freespace import Atmosphere, FreeSpaceOptics, free_space_budget
from qfabric.scenario.schema import FreeSpaceSpec, LinkSpec, PairSourceSpec, SatelliteQkdSpec, SatelliteSpec, Scenario

if TYPE_CHECKING:  # orbits and passes (numpy, scipy) are imported where a satellite is evaluated: checking a
    import numpy as np  # free-space link (qfabric validate) needs only the optics

    from qfabric.link.orbit import CircularOrbit, GroundStation
    from qfabric.link.satellite import Downlink

AIR_REFRACTIVE_INDEX = 1.0003


def free_space_loss_db(link: LinkSpec, distance_km: float) -> float:
    """Loss (dB) of ``link``'s free-space optics over ``distance_km``, without a detector (the profile's or the QKD
    service's detector counts it)."""
    o = link.optics or FreeSpaceSpec()  # kind: free-space without optics: the defaults
    optics = FreeSpaceOptics(wavelength_nm=o.wavelength_nm, tx_aperture_m=o.tx_aperture_m,
                             rx_aperture_m=o.rx_aperture_m, beam_quality=o.beam_quality,
                             divergence_urad=o.divergence_urad, pointing_jitter_urad=o.pointing_jitter_urad,
                             tx_efficiency=o.tx_efficiency, rx_efficiency=o.rx_efficiency)
    air = Atmosphere(visibility_km=o.visibility_km, extinction_db_per_km=o.extinction_db_per_km,
                     cn2_ground=o.cn2_ground)
    return free_space_budget(optics, distance_km, 0.0, "horizontal", air).total_db


def as_fibre(link: LinkSpec, distance_km: float) -> LinkSpec:
    """``link`` as a fibre whose loss over ``distance_km`` equals the free-space loss there (fibre links as given)."""
    if link.kind != "free-space" or link.length_km is None:
        return link
    return link.model_copy(update={"attenuation_db_per_km": free_space_loss_db(link, distance_km) / distance_km,
                                   "refractive_index": AIR_REFRACTIVE_INDEX})


def heralding_equivalent(scenario: Scenario) -> Scenario:
    """The scenario with every free-space link as the fibre link whose half-link arms (node to midpoint station)
    lose what the free-space path of half the length loses."""
    if all(link.kind == "fibre" for link in scenario.links):
        return scenario
    links = [as_fibre(link, link.length_km / 2) if link.length_km else link for link in scenario.links]
    return scenario.model_copy(update={"links": links})


# ---- satellites -------------------------------------------------------------------------------------------------


def _station(spec) -> GroundStation:
    from qfabric.link.orbit import GroundStation

    return GroundStation(spec.node, spec.latitude_deg, spec.longitude_deg)


def _orbit(sat: SatelliteSpec) -> CircularOrbit:
    import numpy as np

    from qfabric.link.orbit import CircularOrbit, GroundStation

    o = sat.orbit
    if o.over is None:
        return CircularOrbit(o.altitude_km, o.inclination_deg, o.raan_deg, o.phase_deg, o.earth_rotation)
    by_node = {g.node: g for g in sat.ground_stations}
    ends = [by_node[name] for name in o.over]
    target = GroundStation("over", float(np.mean([g.latitude_deg for g in ends])),
                           float(np.mean([g.longitude_deg for g in ends])))
    return CircularOrbit.passing_over(target, o.at_s, o.altitude_km, o.inclination_deg, o.offset_deg, o.ascending,
                                      o.earth_rotation)


def downlink(sat: SatelliteSpec, station_node: str) -> Downlink:
    """The satellite's downlink to the ground station at ``station_node``."""
    from qfabric.link.satellite import Downlink

    g = next(s for s in sat.ground_stations if s.node == station_node)
    t = sat.transmitter
    optics = FreeSpaceOptics(wavelength_nm=t.wavelength_nm, tx_aperture_m=t.aperture_m, rx_aperture_m=g.rx_aperture_m,
                             beam_quality=t.beam_quality, divergence_urad=t.divergence_urad,
                             pointing_jitter_urad=t.pointing_jitter_urad, tx_efficiency=t.efficiency,
                             rx_efficiency=g.rx_efficiency, detector_efficiency=g.detector_efficiency)
    air = Atmosphere(zenith_transmittance=g.zenith_transmittance, cn2_ground=g.cn2_ground)
    return Downlink(_orbit(sat), _station(g), optics, air, sat.min_elevation_deg)


def check_satellites(scenario: Scenario, node_names: set[str], path: str = "<scenario>") -> None:
    """Ground stations must be nodes of the built network (topologies add nodes the schema cannot see)."""
    problems = [(f"satellites[{i}].ground_stations[{j}].node", f"{g.node!r} is not a node of the scenario")
                for i, sat in enumerate(scenario.satellites) for j, g in enumerate(sat.ground_stations)
                if g.node not in node_names]
    if problems:
        raise ScenarioError(path, problems)


def _window_rows(series, windows, dt_s: float) -> list[tuple[dict, np.ndarray]]:
    """Each window's row (times, elevation, range and loss) with the mask of its slices."""
    rows = []
    for w in windows:
        mask = (series.t_s >= w.start_s) & (series.t_s <= w.end_s) & (series.transmissivity > 0)
        if not mask.any():
            continue
        rows.append(({"start_s": w.start_s, "end_s": w.end_s, "duration_s": w.duration_s,
                      "culmination_s": w.culmination_s, "max_elevation_deg": w.max_elevation_deg,
                      "range_km_min": float(series.range_km[mask].min()),
                      "range_km_max": float(series.range_km[mask].max()),
                      "link_loss_db_min": float(series.link_db[mask].min()),
                      "link_loss_db_max": float(series.link_db[mask].max()),
                      "loss_db_min": float(series.total_db[mask].min()),
                      "loss_db_max": float(series.total_db[mask].max())}, mask))
    return rows


def decoy_passes(scenario: Scenario, sat: SatelliteSpec, q: SatelliteQkdSpec, series=None) -> list[dict]:
    """The passes of ``sat``'s decoy-BB84 downlink ``q`` over the run, in time order: each window's times,
    elevation, range and loss, and its key (``sifted_bits``, ``qber``, finite-key ``key_bits``,
    ``asymptotic_key_bits``: the pass distilled as one block). ``series``: the station's sampled downlink, if the
    caller has it."""
    from qfabric.link.orbit import link_windows
    from qfabric.qkd.satellite import decoy_pass_key
    from qfabric.qkd.theory import DecoySettings

    dt = sat.time_step_s
    link = downlink(sat, q.station)
    if series is None:
        series = link.series(0.0, scenario.duration_s, dt)
    windows = link_windows(link.orbit, link.station, 0.0, scenario.duration_s, sat.min_elevation_deg,
                           step_s=min(dt, 10.0))
    settings = DecoySettings(*q.intensities, p_mu1=q.probabilities[0], p_mu2=q.probabilities[1], p_z=q.p_z)
    passes = []
    for row, mask in _window_rows(series, windows, dt):
        key = decoy_pass_key(series.transmissivity[mask], dt, q.source_rate_hz, settings,
                             q.dark_count_yield, q.misalignment, eps_sec=q.eps_sec, eps_cor=q.eps_cor)
        passes.append(row | {"sifted_bits": key.sifted_bits, "qber": key.qber, "key_bits": key.key_bits,
                             "asymptotic_key_bits": key.asymptotic_key_bits})
    return passes


def pair_passes(scenario: Scenario, sat: SatelliteSpec, p: PairSourceSpec, series: dict | None = None) -> list[dict]:
    """The common windows of ``sat``'s pair source ``p`` over its two stations, in time order: each window's times,
    elevation (of the lower station), summed range and two-photon loss, its coincidences (``pairs`` true,
    ``accidentals``), ``qber``, and its BBM92 key distilled alone (``sifted_bits``, finite-key ``key_bits``,
    ``asymptotic_key_bits``). ``series``: the stations' sampled downlinks by node, if the caller has them."""
    import numpy as np

    from qfabric.qkd.satellite import bbm92_block_key, pair_pass

    dt = sat.time_step_s
    if series is None:
        series = {s: downlink(sat, s).series(0.0, scenario.duration_s, dt) for s in p.stations}
    a, b = (series[s] for s in p.stations)
    both = (a.transmissivity > 0) & (b.transmissivity > 0)
    lower = np.minimum(a.elevation_deg, b.elevation_deg)
    passes = []
    for start, end in _runs(both):
        result = pair_pass(a.transmissivity[start:end], b.transmissivity[start:end], dt, p.pair_rate_hz,
                           p.background_hz, p.coincidence_window_ns * 1e-9, p.intrinsic_qber)
        key = bbm92_block_key(result.coincidences, result.qber, p.p_z, p.f_ec, p.eps_sec, p.eps_cor)
        passes.append({"start_s": float(a.t_s[start] - dt / 2), "end_s": float(a.t_s[end - 1] + dt / 2),
                       "duration_s": result.duration_s, "max_elevation_deg": float(lower[start:end].max()),
                       "summed_range_km_min": float((a.range_km + b.range_km)[start:end].min()),
                       "summed_range_km_max": float((a.range_km + b.range_km)[start:end].max()),
                       "loss_db_min": result.two_photon_loss_db_min, "loss_db_max": result.two_photon_loss_db_max,
                       "pairs": result.pairs, "pair_rate_hz": result.pair_rate_hz,
                       "accidentals": result.accidentals, "coincidences": result.coincidences,
                       "qber": result.qber, "sifted_bits": key.sifted_bits, "key_bits": key.key_bits,
                       "asymptotic_key_bits": key.asymptotic_key_bits})
    return passes


def satellite_report(scenario: Scenario) -> list[dict]:
    """The ``satellite`` section of the run report: per satellite service (decoy-BB84 downlink or pair source),
    its passes over the run with their loss and key bits or pairs."""
    from qfabric.qkd.satellite import bbm92_block_key

    rows = []
    for sat in scenario.satellites:
        dt = sat.time_step_s
        series = {g.node: downlink(sat, g.node).series(0.0, scenario.duration_s, dt) for g in sat.ground_stations}
        for q in sat.qkd:
            passes = decoy_passes(scenario, sat, q, series[q.station])
            rows.append({"satellite": sat.name, "kind": "decoy-bb84", "stations": [q.station],
                         "trusted_relay": sat.trusted_relay,
                         "source_rate_hz": q.source_rate_hz, "passes": passes,
                         "key_bits": sum(p["key_bits"] for p in passes)})
        for p in sat.pairs:
            passes = pair_passes(scenario, sat, p, series)
            coincidences = sum(x["coincidences"] for x in passes)
            qber = sum(x["qber"] * x["coincidences"] for x in passes) / coincidences if coincidences > 0 else 0.5
            run_key = bbm92_block_key(coincidences, qber, p.p_z, p.f_ec, p.eps_sec, p.eps_cor)  # as one block
            rows.append({"satellite": sat.name, "kind": "pairs", "stations": list(p.stations),
                         "source_rate_hz": p.pair_rate_hz, "passes": passes,
                         "pairs": sum(x["pairs"] for x in passes), "coincidences": coincidences, "qber": qber,
                         "key_bits": run_key.key_bits, "asymptotic_key_bits": run_key.asymptotic_key_bits})
    return rows


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges where ``mask`` is true."""
    import numpy as np

    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def satellite_section(scenario: Scenario, node_names) -> list[dict]:
    """:func:`satellite_report` after checking that every ground station is a node of the built network."""
    check_satellites(scenario, set(node_names))
    return satellite_report(scenario)


def print_satellite(rows: list[dict], console) -> None:
    """The report's ``satellite`` section as a table: one line per pass."""
    from rich.table import Table

    table = Table(title="Satellite passes")
    for column in ("satellite", "stations", "window (s)", "max elev.", "loss (dB)", "key bits / pairs"):
        table.add_column(column, justify="left" if column in ("satellite", "stations") else "right")
    for row in rows:
        for p in row["passes"]:
            got = f"{p['key_bits']:.4g} bits" if row["kind"] == "decoy-bb84" else \
                f"{p['pairs']:.4g} pairs, QBER {p['qber']:.1%}, {p['key_bits']:.4g} bits"
            table.add_row(f"{row['satellite']} ({row['kind']})", ", ".join(row["stations"]),
                          f"{p['start_s']:.0f}-{p['end_s']:.0f}", f"{p['max_elevation_deg']:.1f}",
                          f"{p['loss_db_min']:.1f}-{p['loss_db_max']:.1f}", got)
        if not row["passes"]:
            table.add_row(f"{row['satellite']} ({row['kind']})", ", ".join(row["stations"]), "no pass", "", "", "0")
    console.print(table)
    console.print("loss: source to detection (pairs: both photons). Key: finite-key decoy BB84 on each pass's counts; "
                  "pairs: BBM92 between the two stations (no trusted satellite), finite key per pass")
    for row in rows:
        if row["kind"] == "pairs" and row["passes"]:
            console.print(f"{row['satellite']}: the run's {row['coincidences']:.4g} coincidences as one BBM92 block "
                          f"(QBER {row['qber']:.1%}): {row['key_bits']:.4g} secret bits finite-key, "
                          f"{row['asymptotic_key_bits']:.4g} asymptotic")


__all__ = ["as_fibre", "check_satellites", "decoy_passes", "free_space_loss_db", "pair_passes",
           "heralding_equivalent", "print_satellite", "satellite_report",
           "satellite_section"]
