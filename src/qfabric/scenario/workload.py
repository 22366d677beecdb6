"""Run a side-by-side benchmark workload (format ``qfabric-peer-workload/1``) as a qfabric scenario.

The workload (written by ``../shared/peers/make_randomtopo.py``, run by the SeQUeNCe peer) lists nodes,
links, requests with their routes and the physical parameters; this turns it into scenario data with the
same topology, routes and physics: Barrett-Kok (double-click) links with the workload's detector and memory
efficiencies, Werner pairs of the workload's fidelity, dephasing memories, the pair cut-off, probabilistic
swaps, statistical multiplexing and swap-asap.

>>> data = workload_to_scenario({"format": WORKLOAD_FORMAT, "seed": 1, "nodes": ["n0", "n1", "n2"],
...     "links": [{"a": "n0", "b": "n1", "length_km": 30, "attenuation_db_per_km": 0.2},
...               {"a": "n1", "b": "n2", "length_km": 30, "attenuation_db_per_km": 0.2}],
...     "requests": [{"id": 0, "src": "n0", "dst": "n2", "hops": 2, "route": ["n0", "n1", "n2"]}],
...     "params": DEFAULT_PARAMS})
>>> data["requests"][0]["path"], data["links"][0]["refractive_index"]
(['n0', 'n1', 'n2'], 1.49896229)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from qfabric.errors import ScenarioError
from qfabric.units import SPEED_OF_LIGHT_KM_PER_S

WORKLOAD_FORMAT = "qfabric-peer-workload/1"

DEFAULT_PARAMS = {
    "memory_qubits_per_link_end": 2,
    "memory_coherence_time_s": 5e-3,
    "pair_cutoff_s": 5e-3,
    "elementary_pair_fidelity": 0.99,
    "elementary_pair_state": "werner",
    "generation_scheme": "barrett_kok_midpoint",
    "detector_efficiency": 0.95,
    "memory_efficiency": 0.95,
    "swap_success_probability": 0.5,
    "fibre_speed_m_per_s": 2.0e8,
    "duration_s": 1.0,
}

# (name, lowest allowed, highest allowed, lowest excluded?)
_NUMERIC = (("memory_qubits_per_link_end", 1, None, False), ("memory_coherence_time_s", 0, None, True),
            ("pair_cutoff_s", 0, None, True), ("elementary_pair_fidelity", 0.5, 1, False),
            ("detector_efficiency", 0, 1, True), ("memory_efficiency", 0, 1, True),
            ("swap_success_probability", 0, 1, True), ("fibre_speed_m_per_s", 0, SPEED_OF_LIGHT_KM_PER_S * 1e3, True),
            ("duration_s", 0, None, True))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def workload_to_scenario(workload: Any, path: str | Path = "<workload>") -> dict:
    """Scenario data (to validate with :func:`~qfabric.scenario.parse_scenario`) for a peer workload."""
    shown = str(path)
    problems: list[tuple[str, str]] = []
    if not isinstance(workload, dict):
        raise ScenarioError(shown, [("", "expected a JSON object")])
    if workload.get("format") != WORKLOAD_FORMAT:
        problems.append(("format", f"expected {WORKLOAD_FORMAT!r}, got {workload.get('format')!r}"))
    for key, kind in (("nodes", list), ("links", list), ("requests", list), ("params", dict)):
        if not isinstance(workload.get(key), kind):
            problems.append((key, f"required: a {kind.__name__}"))
    seed = workload.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        problems.append(("seed", f"expected a whole number >= 0, got {seed!r}"))
    if problems:
        raise ScenarioError(shown, problems)
    params = workload["params"]
    for name, lo, hi, open_lo in _NUMERIC:
        value = params.get(name)
        if not _number(value) or value < lo or (open_lo and value == lo) or (hi is not None and value > hi):
            bound = f"{'>' if open_lo else '>='} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
            problems.append((f"params.{name}", f"expected a number {bound}, got {value!r}"))
    if params.get("elementary_pair_state", "werner") != "werner":
        problems.append(("params.elementary_pair_state", "expected 'werner'"))
    if params.get("generation_scheme", "barrett_kok_midpoint") != "barrett_kok_midpoint":
        problems.append(("params.generation_scheme", "expected 'barrett_kok_midpoint'"))
    for i, link in enumerate(workload["links"]):
        if not isinstance(link, dict) or not {"a", "b", "length_km"} <= set(link):
            problems.append((f"links[{i}]", "expected {a, b, length_km, attenuation_db_per_km}"))
        elif not _number(link["length_km"]) or link["length_km"] <= 0:
            problems.append((f"links[{i}].length_km", f"expected a positive number, got {link['length_km']!r}"))
    for i, req in enumerate(workload["requests"]):
        if not isinstance(req, dict) or not {"id", "src", "dst", "route"} <= set(req) \
                or not isinstance(req["route"], list):
            problems.append((f"requests[{i}]", "expected {id, src, dst, hops, route: [nodes]}"))
    if problems:
        raise ScenarioError(shown, problems)

    w_pair = (4 * params["elementary_pair_fidelity"] - 1) / 3
    emission_fidelity = (3 * math.sqrt(w_pair) + 1) / 4  # the two emissions together give the pair fidelity
    refractive_index = round(SPEED_OF_LIGHT_KM_PER_S * 1e3 / params["fibre_speed_m_per_s"], 8)
    return {
        "name": Path(shown).stem if shown != "<workload>" else "workload",
        "description": f"{WORKLOAD_FORMAT} workload: {len(workload['nodes'])} nodes, {len(workload['links'])} "
                       f"links, {len(workload['requests'])} requests",
        "seed": seed,
        "duration_s": params["duration_s"],
        "hardware": {"workload": {
            "base": "ideal",
            "memory": {"t2_s": params["memory_coherence_time_s"], "efficiency": params["memory_efficiency"],
                       "capacity": params["memory_qubits_per_link_end"]},
            "source": {"attempt_rate_hz": 1e12, "emission_fidelity": emission_fidelity},
            "station": {"detector": {"efficiency": params["detector_efficiency"], "dark_count_probability": 0.0},
                        "visibility": 1.0},
            "swap_success_probability": params["swap_success_probability"],
        }},
        "nodes": [{"name": str(n)} for n in workload["nodes"]],
        "links": [{"name": f"{link['a']}-{link['b']}", "between": [link["a"], link["b"]],
                   "length_km": link["length_km"], "attenuation_db_per_km": link.get("attenuation_db_per_km", 0.2),
                   "refractive_index": refractive_index, "profile": "workload", "scheme": "double-click"}
                  for link in workload["links"]],
        "requests": [{"name": f"r{req['id']}", "from": req["src"], "to": req["dst"], "path": req["route"],
                      "scheme": "swap-asap", "cutoff_s": params["pair_cutoff_s"]}
                     for req in workload["requests"]],
        "routing": {"metric": "hops"},
        "multiplexing": {"mode": "statistical"},
    }
