"""Load a scenario file with errors that name the file, the field and what was expected.

>>> from pathlib import Path; import tempfile
>>> bad = Path(tempfile.mkdtemp()) / "bad.yaml"
>>> _ = bad.write_text("name: x\\nduration_s: -1\\nnodes: []\\nlinks: []\\nchain: {from: a, to: b}\\n")
>>> try:
...     load_scenario(bad)
... except ScenarioError as err:
...     print(err.problems[0])
('duration_s', 'expected a number greater than 0, got -1')
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from qfabric.errors import ParameterError, ScenarioError
from qfabric.hardware import PROFILES, HardwareProfile
from qfabric.network.models import nesting_levels, required_capacity
from qfabric.scenario.graph import (
    expand_topology,
    heralded_link,
    link_profile,
    resolve_profiles,
    routing_adjacency,
    side_capacities,
)
from qfabric.scenario.schema import RequestSpec, Scenario
from qfabric.scenario.workload import WORKLOAD_FORMAT, workload_to_scenario

_PLAIN = {
    "greater_than": "expected a number greater than {gt}",
    "greater_than_equal": "expected a number >= {ge}",
    "less_than_equal": "expected a number <= {le}",
    "less_than": "expected a number less than {lt}",
}


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(model: type[BaseModel], loc: tuple) -> Any:
    """The model holding the field at ``loc`` (``None``: a dict of models, whose keys are free)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", {})
        field = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        if field is None:
            return None
        current = _inner_model(field.annotation)
    return current if current is not None and hasattr(current, "model_fields") else None


def _known_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names (and aliases) of the model at ``loc``, for 'did you mean' hints."""
    current = _model_at(model, loc)
    return [] if current is None else [f.alias or name for name, f in current.model_fields.items()]


def _description(model: type[BaseModel], loc: tuple) -> str | None:
    current = _model_at(model, loc)
    field = None if current is None else current.model_fields.get(loc[-1])
    return None if field is None else field.description


def _inner_model(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in args or ():
        inner = _inner_model(arg)
        if inner is not None:
            return inner
    return None


def _explain(error: dict, model: type[BaseModel]) -> tuple[str, str]:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-after")))
    kind = error["type"]
    got = error.get("input")
    if kind == "extra_forbidden":
        known = _known_fields(model, loc)
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
        text = f"unknown field {loc[-1]!r}"
        text += f"; did you mean {hint[0]!r}?" if hint else (f"; expected one of {sorted(known)}" if known else "")
        return _field_path(loc), text
    if kind == "missing":
        return _field_path(loc), "required field is missing"
    if kind in _PLAIN:
        ctx = {k: f"{v:g}" if isinstance(v, int | float) else v for k, v in error.get("ctx", {}).items()}
        return _field_path(loc), _PLAIN[kind].format(**ctx) + f", got {got!r}"
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type", "int_from_float"):
        unit = str(loc[-1]).rsplit("_", 1)[-1] if "_" in str(loc[-1]) else ""
        what = "a whole number" if kind.startswith("int") else "a number"
        unit_hint = f" (in {unit}, without a unit suffix)" if unit in {"km", "s", "hz"} else ""
        return _field_path(loc), f"expected {what}{unit_hint}, got {got!r}"
    if kind == "string_too_long":
        why = _description(model, loc)
        return _field_path(loc), (f"expected at most {error['ctx']['max_length']} characters"
                                  + (f" ({why})" if why else "") + f", got {got!r}")
    if kind == "string_pattern_mismatch" and _description(model, loc):
        return _field_path(loc), f"expected {_description(model, loc)}, got {got!r}"
    if kind == "literal_error":
        return _field_path(loc), f"expected {error['ctx']['expected']}, got {got!r}"
    message = error["msg"].removeprefix("Value error, ")
    return _field_path(loc), f"{message}" + ("" if kind == "value_error" else f", got {got!r}")


def parse_scenario(data: Any, path: str | Path = "<scenario>", base_dir: Path | None = None) -> Scenario:
    """Validate already-parsed YAML data; raises :class:`ScenarioError` listing every problem.

    A ``topology`` section is expanded into nodes and links (files relative to ``base_dir``)."""
    if not isinstance(data, dict):
        raise ScenarioError(str(path), [("", f"expected a mapping of scenario fields, got {type(data).__name__}")])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        problems = [_explain(e, Scenario) for e in err.errors()]
        raise ScenarioError(str(path), problems) from None
    first: dict[str, int] = {}
    repeated = []
    for i, node in enumerate(scenario.nodes):
        if node.name in first:
            repeated.append((f"nodes[{i}].name", f"node name {node.name!r} is used twice (nodes[{first[node.name]}])"))
        first.setdefault(node.name, i)
    if repeated:
        raise ScenarioError(str(path), repeated)
    scenario = _device_files(expand_topology(scenario, base_dir, str(path)), base_dir)
    problems = check_references(scenario)
    if problems:
        raise ScenarioError(str(path), problems)
    return scenario


def _device_files(scenario: Scenario, base_dir: Path | None) -> Scenario:
    """The certificate files of QKD devices (``qkd[].supply``) relative to the scenario file's directory."""
    if base_dir is None or not any(q.supply for q in scenario.qkd):
        return scenario

    def at(name: str) -> str:
        return name if Path(name).is_absolute() else str(base_dir / name)

    qkd = [q if q.supply is None else q.model_copy(update={"supply": q.supply.model_copy(update={
        "ca": at(q.supply.ca), "ends": [e.model_copy(update={"cert": at(e.cert), "key": at(e.key)})
                                        for e in q.supply.ends]})}) for q in scenario.qkd]
    return scenario.model_copy(update={"qkd": qkd})


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last silently).

    It parses with libyaml (``CSafeLoader``, about 8x faster than the pure-Python parser) when PyYAML was built
    with it; the safe constructor, and so the values a file gives, are the same Python code either way."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                first = seen[key]
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice in one mapping (first on line {first + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (UTF-8 YAML, or a benchmark workload in JSON)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ScenarioError(str(path), [("", "file not found")]) from None
    except OSError as err:
        raise ScenarioError(str(path), [("", f"cannot read the file: {err.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ScenarioError(str(path), [("", f"line {line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); save the "
                                         "file as UTF-8")]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a (C)SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ScenarioError(str(path), [("", f"{where}not valid YAML ({getattr(err, 'problem', err)})")]) from None
    if path.suffix.lower() == ".json" and isinstance(data, dict) and data.get("format") == WORKLOAD_FORMAT:
        data = workload_to_scenario(data, path)
    return parse_scenario(data, path, path.parent)


def check_references(scenario: Scenario) -> list[tuple[str, str]]:
    """Cross-field checks: profiles and nodes that exist, hardware that makes sense, a connected chain."""
    problems: list[tuple[str, str]] = []
    known_profiles = set(PROFILES)
    for name, spec in scenario.hardware.items():
        if spec.base and spec.base not in known_profiles:
            problems.append((f"hardware.{name}.base", f"unknown profile {spec.base!r}; expected one of "
                             f"{sorted(known_profiles)}"))
        known_profiles.add(name)
    if not problems:
        try:
            profiles = resolve_profiles(scenario)
        except ParameterError as err:
            problems.append((_failing_profile(scenario), str(err)))
            profiles = dict(PROFILES)
    else:
        profiles = dict(PROFILES)
    node_names = {n.name for n in scenario.nodes}
    if len(node_names) < 2:
        problems.append(("nodes", f"expected at least two nodes, got {len(node_names)}"))
    if not scenario.links:
        problems.append(("links", "expected at least one link"))
    for i, node in enumerate(scenario.nodes):
        if node.profile is not None and node.profile not in known_profiles:
            problems.append((f"nodes[{i}].profile", f"unknown profile {node.profile!r}; expected one of "
                             f"{sorted(known_profiles)}"))
    pairs_seen: dict[frozenset, int] = {}
    names_seen: dict[str, int] = {}
    for i, link in enumerate(scenario.links):
        for end in link.between:
            if end not in node_names:
                hint = difflib.get_close_matches(end, node_names, n=1)
                problems.append((f"links[{i}].between", f"unknown node {end!r}"
                                 + (f"; did you mean {hint[0]!r}?" if hint else f"; nodes are {sorted(node_names)}")))
        key = frozenset(link.between)
        if key in pairs_seen:
            problems.append((f"links[{i}].between", f"nodes {list(link.between)} are already joined by "
                             f"links[{pairs_seen[key]}]"))
        pairs_seen[key] = i
        if link.name in names_seen:
            problems.append((f"links[{i}].name", f"link name {link.name!r} is used twice "
                             f"(links[{names_seen[link.name]}])"))
        names_seen[link.name] = i
        if link.profile not in known_profiles:
            problems.append((f"links[{i}].profile", f"unknown profile {link.profile!r}; expected one of "
                             f"{sorted(known_profiles)}"))
        elif link.hardware is not None and link.profile in profiles:
            try:
                profiles[link.profile].with_overrides(link.hardware.overrides())
            except ParameterError as err:
                problems.append((f"links[{i}].hardware", str(err)))
        if link.profile in profiles and link.length_km is not None and not any(
                f.startswith(f"links[{i}]") for f, _ in problems):
            problems += _too_long(i, link, profiles)
    incident: dict[str, set[str]] = {}
    for link in scenario.links:
        for end in link.between:
            incident.setdefault(end, set()).add(link.name)
    for i, node in enumerate(scenario.nodes):
        for name in node.memory_split or {}:
            if name not in incident.get(node.name, set()):
                problems.append((f"nodes[{i}].memory_split", f"link {name!r} does not end at {node.name!r}; its "
                                 f"links are {sorted(incident.get(node.name, set()))}"))
    link_names = set(names_seen)
    requests = scenario.all_requests()
    request_names = [r.name for r in requests]
    qkd_names: set[str] = set()
    for i, q in enumerate(scenario.qkd):
        if q.name in qkd_names:
            problems.append((f"qkd[{i}].name", f"QKD service name {q.name!r} is used twice"))
        qkd_names.add(q.name)
        if q.protocol == "decoy-bb84":
            if q.link is None:
                problems.append((f"qkd[{i}].link", f"decoy-bb84 needs the fibre link it runs over; links are "
                                 f"{sorted(link_names)}"))
            elif q.link not in link_names:
                hint = difflib.get_close_matches(q.link, link_names, n=1)
                problems.append((f"qkd[{i}].link", f"unknown link {q.link!r}"
                                 + (f"; did you mean {hint[0]!r}?" if hint else f"; links are {sorted(link_names)}")))
            if q.request is not None:
                problems.append((f"qkd[{i}].request", "decoy-bb84 runs over a fibre link; it takes no request"))
        else:
            if q.link is not None:
                problems.append((f"qkd[{i}].link", "bbm92 measures the pairs a request delivers; it takes no link"))
            if q.supply is not None:
                problems.append((f"qkd[{i}].supply", "QKD devices supply the keys of a decoy-bb84 link, not bbm92's"))
            if q.request is None and len(requests) != 1:
                problems.append((f"qkd[{i}].request", f"bbm92 needs the request whose pairs it measures; requests "
                                 f"are {request_names}"))
            elif q.request is not None and q.request not in request_names:
                problems.append((f"qkd[{i}].request", f"unknown request {q.request!r}; requests are {request_names}"))
    if scenario.distributed is not None and scenario.distributed.request not in request_names:
        problems.append(("distributed.request", f"unknown request {scenario.distributed.request!r}; requests are "
                         f"{request_names}"))
    if scenario.kms is not None:
        problems += _check_kms(scenario, node_names)
    else:
        problems += [(f"satellites[{i}].trusted_relay", "a trusted relay feeds a KMS: add a kms section")
                     for i, sat in enumerate(scenario.satellites) if sat.trusted_relay]
    if scenario.federated is not None:
        problems += _check_federated(scenario)
    problems += _check_control(scenario, node_names, link_names)
    if problems:
        return problems
    return _check_requests(scenario, profiles)


LONGEST_RUN_S = 1e6  # the longest duration_s a scenario may have


def _too_long(i: int, link, profiles) -> list[tuple[str, str]]:
    """A link too long to carry entanglement: its heralds are mostly dark counts (the heralded pair is not
    entangled), or it would not herald one pair, on average, in the longest run qfabric simulates. A free-space
    link is judged as the fibre of the same loss per arm, as it is built."""
    medium = f"of fibre at {link.attenuation_db_per_km:g} dB/km"
    if link.kind == "free-space":
        from qfabric.scenario.satellite import as_fibre

        medium = "of free space"
        link = as_fibre(link, link.length_km / 2)
    heralded = heralded_link(link, link_profile(profiles, link))
    p, fidelity = heralded.success_probability, heralded.heralded_state.fidelity()
    mean_s = heralded.attempt_period_s / p if p > 0 else math.inf
    if fidelity > 0.5 and mean_s <= LONGEST_RUN_S:
        return []
    transmitted = 10 ** (-link.attenuation_db_per_km * link.length_km / 10)
    why = (f"its heralds are mostly dark counts (heralded fidelity {fidelity:.3f}, not entangled)" if fidelity <= 0.5
           else f"one heralded pair every {mean_s:.1e} s on average, longer than any run ({LONGEST_RUN_S:g} s)")
    return [(f"links[{i}].length_km", f"{link.length_km:g} km {medium} passes {transmitted:.1e} of the light: {why}; "
             "split it with repeater nodes")]


def _failing_profile(scenario: Scenario) -> str:
    """The field path of the first custom profile that cannot be built (each is built on the ones before)."""
    profiles = dict(PROFILES)
    for name, spec in scenario.hardware.items():
        base = profiles[spec.base] if spec.base else HardwareProfile(name=name)
        try:
            profiles[name] = base.with_overrides({**spec.overrides(), "name": name})
        except ParameterError as err:
            section = next((part for part in ("memory", "source", "station")
                            if err.name in (spec.overrides().get(part) or {})), None)
            return f"hardware.{name}" + (f".{section}.{err.name}" if section else "")
    return "hardware"


def _unknown(kind: str, name: str, known: set[str]) -> str:
    hint = difflib.get_close_matches(name, known, n=1)
    return f"unknown {kind} {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else f"; {kind}s are {sorted(known)}")


def _check_control(scenario: Scenario, node_names: set[str], link_names: set[str]) -> list[tuple[str, str]]:
    """Tenants, arrivals, faults and the controller name things that exist, at times inside the run."""
    problems: list[tuple[str, str]] = []
    tenants: dict[str, object] = {}
    for i, tenant in enumerate(scenario.tenants):
        if tenant.name in tenants:
            problems.append((f"tenants[{i}].name", f"tenant name {tenant.name!r} is used twice"))
        tenants[tenant.name] = tenant
    asking = [(_request_field(scenario, i), r.tenant, r.credential) for i, r in enumerate(scenario.all_requests())]
    asking += [(f"arrivals[{i}]", a.tenant, a.credential) for i, a in enumerate(scenario.arrivals)]
    for at, name, credential in asking:
        if not tenants:  # without a tenants section a tenant is a label, and every request is served
            if credential != "valid":
                problems.append((f"{at}.credential", "credentials are checked only for declared tenants: add a "
                                 "tenants section with a secret"))
            continue
        tenant = tenants.get(name)
        if tenant is None:
            problems.append((f"{at}.tenant", _unknown("tenant", name, set(tenants))))
        elif credential != "valid" and tenant.secret is None:
            problems.append((f"{at}.credential", f"tenant {name!r} has no secret, so its requests carry no token; "
                             f"credential {credential!r} needs one (add tenants[].secret)"))
    for i, arrival in enumerate(scenario.arrivals):
        for j, (a, b) in enumerate(arrival.ends):
            for end in (a, b):
                if end not in node_names:
                    problems.append((f"arrivals[{i}].ends[{j}]", _unknown("node", end, node_names)))
            if a == b:
                problems.append((f"arrivals[{i}].ends[{j}]", f"two different nodes, got [{a}, {b}]"))
        if arrival.start_s >= scenario.duration_s:
            problems.append((f"arrivals[{i}].start_s", f"{arrival.start_s:g} s is not before the end of the run "
                             f"({scenario.duration_s:g} s)"))
        if arrival.end_s is not None and arrival.end_s <= arrival.start_s:
            problems.append((f"arrivals[{i}].end_s", f"must be after start_s ({arrival.start_s:g})"))
    for i, fault in enumerate(scenario.faults):
        if fault.link is not None and fault.link not in link_names:
            problems.append((f"faults[{i}].link", _unknown("link", fault.link, link_names)))
        if fault.node is not None and fault.node not in node_names:
            problems.append((f"faults[{i}].node", _unknown("node", fault.node, node_names)))
        if fault.at_s >= scenario.duration_s:
            problems.append((f"faults[{i}].at_s", f"{fault.at_s:g} s is not before the end of the run "
                             f"({scenario.duration_s:g} s)"))
    if scenario.random_faults is not None and scenario.random_faults.links != "all":
        for j, name in enumerate(scenario.random_faults.links):
            if name not in link_names:
                problems.append((f"random_faults.links[{j}]", _unknown("link", name, link_names)))
    controller = scenario.control.controller
    if controller is not None and controller not in node_names:
        problems.append(("control.controller", _unknown("node", controller, node_names)))
    return problems


def _request_field(scenario: Scenario, i: int) -> str:
    return "chain" if scenario.chain is not None else f"requests[{i}]"


def _check_requests(scenario: Scenario, profiles) -> list[tuple[str, str]]:
    """Requests: known, distinct ends with memory, a path, and a protocol that fits each of its paths."""
    problems: list[tuple[str, str]] = []
    node_names = {n.name for n in scenario.nodes}
    requests = scenario.all_requests()
    capacity = side_capacities(scenario, profiles)
    memory_of = {}
    for (node, _), qubits in capacity.items():
        memory_of[node] = memory_of.get(node, 0) + qubits
    seen: dict[str, int] = {}
    demands, explicit = [], {}
    for i, req in enumerate(requests):
        at = _request_field(scenario, i)
        if req.name in seen:
            problems.append((f"{at}.name", f"request name {req.name!r} is used twice (requests[{seen[req.name]}])"))
            continue
        seen[req.name] = i
        bad = False
        for field, node in (("from", req.source), ("to", req.target)):
            if node not in node_names:
                hint = difflib.get_close_matches(node, node_names, n=1)
                problems.append((f"{at}.{field}", f"unknown node {node!r}" + (
                    f"; did you mean {hint[0]!r}?" if hint else f"; nodes are {sorted(node_names)[:20]}")))
                bad = True
            elif node not in memory_of:
                problems.append((f"{at}.{field}", f"node {node!r} is on no link; expected a node of the network"))
                bad = True
            elif memory_of[node] == 0:
                problems.append((f"{at}.{field}", f"node {node!r} has no memory qubits; expected an end with memory"))
                bad = True
        if req.source == req.target:
            problems.append((f"{at}.to", "the request needs two different end nodes"))
            bad = True
        if req.end_s is not None and req.end_s > scenario.duration_s:
            problems.append((f"{at}.end_s", f"expected at most the run's duration_s ({scenario.duration_s:g}), "
                             f"got {req.end_s:g}"))
        if req.start_s >= scenario.duration_s:
            problems.append((f"{at}.start_s", f"expected a start before the end of the run "
                             f"({scenario.duration_s:g} s), got {req.start_s:g}"))
        if not bad:
            demands.append((req.name, req.source, req.target))
            if req.path is not None:
                explicit[req.name] = req.path
    if problems:
        return problems
    heralded = {}
    for i, spec in enumerate(scenario.links):
        try:
            heralded[spec.name] = heralded_link(spec, link_profile(profiles, spec))
        except ParameterError as err:
            problems.append((f"links[{i}]", str(err)))
    if problems:
        return problems
    from qfabric.control.routing import RoutingError, compute_routes  # the run's router, on a plain adjacency

    graph = routing_adjacency(scenario, heralded)
    routes = {}
    for i, req in enumerate(requests):
        at = _request_field(scenario, i)
        try:
            routes.update(compute_routes(graph, [(req.name, req.source, req.target)], scenario.routing.metric,
                                         req.paths or scenario.routing.paths,
                                         {req.name: req.path} if req.path else None))
        except RoutingError as err:
            where = f"{at}.path" if req.path else at
            message = str(err)
            if "no path" in message or "not connected" in message or "no route" in message.lower():
                message += "; expected a path of links between them"
            problems.append((where, message))
    if problems:
        return problems
    for i, req in enumerate(requests):
        problems += _check_protocol(scenario, _request_field(scenario, i), req, routes[req.name], capacity)
    return problems


def _check_protocol(scenario: Scenario, at: str, req: RequestSpec, paths: list[list[str]],
                    capacity: dict[tuple[str, str], int]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    lengths = sorted({len(p) - 1 for p in paths})
    if isinstance(req.cutoff_s, list):
        if req.scheme != "nested":
            problems.append((f"{at}.cutoff_s", f"expected one number for {req.scheme} (a list is per nesting level)"))
        elif len({nesting_levels(n) for n in lengths}) > 1:
            problems.append((f"{at}.cutoff_s", f"its paths have {lengths} links, with different nesting depths: "
                             "give one cut-off"))
        elif len(req.cutoff_s) != nesting_levels(lengths[0]):
            problems.append((f"{at}.cutoff_s", f"expected one cut-off per nesting level "
                             f"({nesting_levels(lengths[0])} for {lengths[0]} links), got {len(req.cutoff_s)}"))
    purification = req.purification
    if purification and purification.rounds:
        spans = set(purification.spans)
        for n in lengths:
            allowed = {1, n} | (_tree_spans(n) if req.scheme == "nested" else set())
            if not spans <= allowed:
                problems.append((f"{at}.purification.spans", f"expected spans among {sorted(allowed)} for a "
                                 f"{req.scheme} path of {n} links, got {sorted(spans)}"))
        if req.cutoff_s is None:
            problems.append((f"{at}.cutoff_s", "purification needs a cut-off: without one, pairs waiting for a "
                             "purification partner can hold every memory and deadlock the chain"))
        needed = required_capacity(purification.rounds, len(spans))
        for path in paths:
            for a, b in zip(path, path[1:], strict=False):
                link = next(s for s in scenario.links if set(s.between) == {a, b})
                have = min(capacity[(a, link.name)], capacity[(b, link.name)])
                if have < needed:
                    problems.append((f"links[{scenario.links.index(link)}]", f"purification "
                                     f"({purification.rounds} round(s) at {len(spans)} span(s)) needs memory "
                                     f"capacity >= {needed} on link {link.name!r}; it has {have}"))
    return problems


def _tree_spans(n: int) -> set[int]:
    spans = set()

    def visit(lo: int, hi: int) -> None:
        spans.add(hi - lo)
        if hi - lo >= 2:
            mid = (lo + hi) // 2
            visit(lo, mid)
            visit(mid, hi)

    visit(0, n)
    return spans


def _check_kms(scenario: Scenario, node_names: set[str]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    kms = scenario.kms
    owner: dict[str, str] = {}
    for i, kme in enumerate(kms.kmes):
        for node in kme.nodes:
            if node not in node_names:
                problems.append((f"kms.kmes[{i}].nodes", f"unknown node {node!r}; nodes are {sorted(node_names)}"))
            elif node in owner:
                problems.append((f"kms.kmes[{i}].nodes", f"node {node!r} already belongs to KME {owner[node]!r}"))
            owner[node] = kme.id
    ids = [k.id for k in kms.kmes] + [s.id for s in kms.saes]
    if len(set(ids)) != len(ids):
        problems.append(("kms", f"KME and SAE IDs must be distinct: {ids}"))
    linked = {tuple(sorted(q_link.between)) for q in scenario.qkd if q.protocol == "decoy-bb84"
              for q_link in scenario.links if q_link.name == q.link}
    for i, sae in enumerate(kms.saes):
        if sae.node not in node_names:
            problems.append((f"kms.saes[{i}].node", _unknown("node", sae.node, node_names)))
        elif sae.node not in owner:
            problems.append((f"kms.saes[{i}].node", f"node {sae.node!r} belongs to no KME"))
    for j, node in enumerate(kms.trusted_nodes or []):
        if node not in owner:
            problems.append((f"kms.trusted_nodes[{j}]", f"node {node!r} belongs to no KME"))
    kmes_of_saes = sorted({owner[s.node] for s in kms.saes if s.node in owner})
    if len(kmes_of_saes) > 1:  # keys are forwarded between KMEs over QKD links joining their domains
        joined = _interconnects(scenario, owner)
        apart = [k for k in kmes_of_saes[1:] if not _joined(joined, kmes_of_saes[0], k)]
        if apart:
            problems.append(("kms.saes", f"SAEs are attached to KMEs {kmes_of_saes}, but no chain of decoy-bb84 QKD "
                             f"links joins KME {kmes_of_saes[0]!r} to {apart}: keys between KMEs are forwarded over "
                             f"QKD links between their nodes"))
    relays = [(i, sat) for i, sat in enumerate(scenario.satellites) if sat.trusted_relay]
    for i, sat in relays:
        if sat.name in node_names:
            problems.append((f"satellites[{i}].name", f"{sat.name!r} is also a node: a trusted satellite relays "
                             "keys as a node of its own, give it another name"))
        if not sat.qkd:
            problems.append((f"satellites[{i}].trusted_relay", "a trusted relay needs decoy-BB84 downlinks (qkd)"))
        kmes = {owner.get(q.station) for q in sat.qkd}
        if None in kmes:
            homeless = sorted(q.station for q in sat.qkd if q.station not in owner)
            problems.append((f"satellites[{i}].qkd", f"ground station(s) {homeless} belong to no KME: a trusted "
                             "satellite's keys go into its stations' KME"))
        elif len(kmes) > 1:
            problems.append((f"satellites[{i}].qkd", f"its ground stations belong to KMEs {sorted(kmes)}: a trusted "
                             "satellite relays inside one KME's domain"))
    sky_pairs = [src for sat in scenario.satellites for src in sat.pairs  # BBM92 inside one KME's domain
                 if len({owner.get(n) for n in src.stations} - {None}) == 1 and all(n in owner for n in src.stations)]
    if not linked and not relays and not sky_pairs and not any(q.protocol == "bbm92" for q in scenario.qkd):
        problems.append(("qkd", "the KMS needs QKD services: decoy-bb84 on the links between the SAEs' nodes, "
                         "bbm92 on the pairs a request delivers between them, or a satellite's pair source over "
                         "two stations of one KME"))
    return problems


def _interconnects(scenario: Scenario, owner: dict[str, str]) -> dict[str, dict[str, dict]]:
    """KMEs joined by decoy-BB84 links between nodes of two of them (``owner``: node -> KME), as an adjacency
    (keys between KMEs are forwarded over such links)."""
    fibres = {link.name: link.between for link in scenario.links}
    joined: dict[str, dict[str, dict]] = {}
    for q in scenario.qkd:
        ends = [owner.get(n) for n in fibres.get(q.link, ())] if q.protocol == "decoy-bb84" else []
        if len(ends) == 2 and None not in ends and ends[0] != ends[1]:
            joined.setdefault(ends[0], {})[ends[1]] = joined.setdefault(ends[1], {})[ends[0]] = {}
    return joined


def _joined(joined: dict[str, dict[str, dict]], a: str, b: str) -> bool:
    """Whether a chain of interconnects (:func:`_interconnects`) leads from KME ``a`` to KME ``b``."""
    from qfabric.control.routing import NoRouteError, shortest_path

    if a == b:
        return True
    try:
        shortest_path(joined | {a: joined.get(a, {}), b: joined.get(b, {})}, a, b)
    except NoRouteError:
        return False
    return True


def _check_federated(scenario: Scenario) -> list[tuple[str, str]]:
    fed = scenario.federated
    if scenario.kms is None:
        return [("federated", "federated training is keyed by the KMS: add a kms section with the organisations' "
                 "and the aggregator's SAEs")]
    problems: list[tuple[str, str]] = []
    saes = {s.id: s.node for s in scenario.kms.saes}
    kme_of = {node: k.id for k in scenario.kms.kmes for node in k.nodes}
    if fed.aggregator not in saes:
        problems.append(("federated.aggregator", f"unknown SAE {fed.aggregator!r}; SAEs are {sorted(saes)}"))
    orgs = [o.sae for o in fed.organisations]
    for i, org in enumerate(orgs):
        if org not in saes:
            problems.append((f"federated.organisations[{i}].sae", f"unknown SAE {org!r}; SAEs are {sorted(saes)}"))
        elif org == fed.aggregator:
            problems.append((f"federated.organisations[{i}].sae", "the aggregator cannot also be an organisation"))
        elif fed.aggregator in saes and None not in (kme_of.get(saes[org]), kme_of.get(saes[fed.aggregator])) \
                and not _joined(_interconnects(scenario, kme_of), kme_of[saes[org]], kme_of[saes[fed.aggregator]]):
            problems.append((f"federated.organisations[{i}].sae", f"{org!r} is under KME {kme_of.get(saes[org])!r}, "
                             f"the aggregator under {kme_of.get(saes[fed.aggregator])!r}, and no chain of decoy-bb84 "
                             "QKD links joins their domains: keys between KMEs are forwarded over QKD links between "
                             "nodes of two KMEs (add a qkd service on such a link, or put the SAEs under one KME)"))
    if len(set(orgs)) != len(orgs):
        problems.append(("federated.organisations", f"each organisation once: {orgs}"))
    total = sum(o.data_share for o in fed.organisations)
    if abs(total - 1) > 1e-6:
        problems.append(("federated.organisations", f"data shares must sum to 1, they sum to {total:g}"))
    if fed.min_clients > len(orgs):
        problems.append(("federated.min_clients", f"{fed.min_clients} > the {len(orgs)} organisations"))
    if fed.seed_threshold is not None and fed.secure_aggregation != "double-masking":
        problems.append(("federated.seed_threshold", "applies to secure_aggregation: double-masking only"))
    elif fed.seed_threshold is not None and fed.seed_threshold > len(orgs) - 1:
        problems.append(("federated.seed_threshold", f"{fed.seed_threshold} shares, but each organisation has "
                         f"{len(orgs) - 1} peers to hold them"))
    services = {q.name for q in scenario.qkd if q.protocol == "decoy-bb84"}
    for i, cut in enumerate(fed.supply_cuts):
        if cut.qkd not in services:
            problems.append((f"federated.supply_cuts[{i}].qkd", f"unknown decoy-bb84 service {cut.qkd!r}; services "
                             f"are {sorted(services)}"))
    for i, drop in enumerate(fed.dropouts):
        if drop.sae not in orgs:
            problems.append((f"federated.dropouts[{i}].sae", f"{drop.sae!r} is not an organisation: {orgs}"))
    if fed.model == "vqc" and fed.privacy.unit == "record" and fed.privacy.noise_multiplier > 0:
        problems.append(("federated.privacy.unit", "record-level DP (DP-SGD) needs per-record gradients, which the "
                         "variational classifier does not provide: use unit: organisation"))
    return problems
