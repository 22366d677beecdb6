"""The shortcuts that cut protection's fixed cost per round change nothing but the time: Flower's arrays
written and read as Flower does, the protocol's settings packed into one field, a node's state parsed only
when another process wrote it, QKD key batches that stop at the run's last round.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from flwr.app import Array, ArrayRecord, ConfigRecord
from flwr.clientapp import ClientApp

from qfabric.apps.federated import mod
from qfabric.apps.federated.hospital import train
from qfabric.apps.federated.mod import qfabric_protection_mod
from qfabric.apps.federated.sessions import Sessions
from qfabric.apps.federated.wire import (
    SETTINGS,
    TimedKme,
    arrays_to_record,
    qfabric_record,
    read_record,
    record_to_arrays,
)
from qfabric.errors import QfabricError
from qfabric.kms.broker import SessionBroker
from qfabric.kms.client import KmeError
from qfabric.kms.hybrid import ResponderKeys
from qfabric.kms.policy import Policy
from qfabric.scenario import parse_scenario
from qfabric.scenario.federation import run_federation

DEFAULT = Path(__file__).resolve().parents[2] / "scenarios" / "three-hospitals.yaml"

ARRAYS = [np.arange(12, dtype=np.float32).reshape(3, 4), np.linspace(-1, 1, 5), np.array(3.5), np.zeros((0, 3)),
          np.array([1, -2], dtype=">i4"), np.ones((2, 2), dtype=bool), np.asfortranarray(np.ones((3, 4))),
          np.ones((4, 3))[:, :2]]  # the last two: not C-contiguous, so Flower's own path


def test_arrays_are_written_byte_for_byte_as_flower_writes_them_and_read_back_the_same():
    ours, flowers = arrays_to_record(ARRAYS), ArrayRecord(ARRAYS)
    assert list(ours) == list(flowers)
    for key in flowers:
        assert (ours[key].dtype, ours[key].shape, ours[key].stype, ours[key].data) == \
               (flowers[key].dtype, flowers[key].shape, flowers[key].stype, flowers[key].data), key
    for _ in range(2):  # the second time from the parsed headers kept in this process
        for mine, theirs in zip(record_to_arrays(flowers), flowers.to_numpy_ndarrays(), strict=True):
            assert mine.dtype == theirs.dtype and mine.shape == theirs.shape and np.array_equal(mine, theirs)
            assert mine.flags.writeable and mine.flags.c_contiguous == theirs.flags.c_contiguous  # as np.load's
    assert record_to_arrays(flowers)[6].flags.f_contiguous  # a Fortran-order array read the way Flower reads it
    padded = ArrayRecord({"0": Array(dtype="float32", shape=(3, 4), stype="numpy.ndarray",
                                     data=flowers["0"].data + bytes(4))})
    with pytest.raises(ValueError):  # data that does not fill its header's shape exactly
        record_to_arrays(padded)


def test_an_array_of_python_objects_is_refused_as_flower_refuses_it():
    buffer = io.BytesIO()
    np.save(buffer, np.array([None], dtype=object), allow_pickle=True)  # what a hostile peer could send
    record = ArrayRecord({"0": Array(dtype="object", shape=(1,), stype="numpy.ndarray", data=buffer.getvalue())})
    with pytest.raises(ValueError, match="allow_pickle"):
        record_to_arrays(record)


def test_settings_travel_as_one_field_and_cannot_stand_in_for_the_protocols_own_fields():
    fields = {"step": "train", "round": 3, "hello": b"\x01", "clip-norm": 0.5, "shapes": [[2, 3]], "to": [],
              "audit": [{"event": "session", "key_ID": None}], "kme-seconds": 0.002}
    record = qfabric_record(fields)
    assert sorted(record) == ["hello", "round", SETTINGS, "step"]  # empty lists dropped, settings packed
    assert read_record(record) == {k: v for k, v in fields.items() if k != "to"}
    forged = ConfigRecord({"round": 3, SETTINGS: json.dumps({"round": 4, "client": "mallory", "clip-norm": 9.0})})
    assert read_record(forged) == {"round": 3, "clip-norm": 9.0}  # only settings come from the packed field
    for bad in ("not json", "[1, 2]"):
        with pytest.raises(QfabricError, match=SETTINGS):
            read_record(ConfigRecord({SETTINGS: bad}))


class CountingKme:
    """An ETSI 014 stand-in for one pair of SAEs: counts the master's requests and the keys each fetched; the
    slave claims each key by ID once."""

    def __init__(self, keys: int):
        self.fresh = [(str(uuid.uuid4()), os.urandom(32)) for _ in range(keys)]
        self.taken: dict[str, bytes] = {}
        self.requests: list[int] = []

    def enc_keys(self, slave, number=1, size=None, **kw):
        if len(self.fresh) < number:
            raise KmeError(503, {"message": "not enough keys"})
        self.requests.append(number)
        out, self.fresh = self.fresh[:number], self.fresh[number:]
        self.taken.update(out)
        return out

    def dec_keys(self, master, key_ids):
        return [(k, self.taken.pop(k)) for k in key_ids]

    def status(self, slave):
        self.requests.append("status")
        return {"stored_key_count": len(self.fresh), "max_key_per_request": 128}


@pytest.mark.parametrize(("keys_per_request", "rounds", "requests"), [
    (32, 20, [20]),  # one request for the whole run, not 32 keys of which 12 would be lost
    (10, 20, [10, 10]),
    (1, 3, [1, 1, 1]),
])
def test_a_batch_of_qkd_keys_stops_at_the_runs_last_round(keys_per_request, rounds, requests):
    kme = CountingKme(100)
    timed = TimedKme(kme, keys_per_request=keys_per_request)
    used = []
    for round_number in range(1, rounds + 1):
        timed.rounds_left = rounds - round_number + 1  # as the strategy sets it every round
        used += timed.enc_keys("bob")
    assert kme.requests == requests and len(used) == len({k for k, _ in used}) == rounds
    assert timed.ahead("bob") == []  # nothing fetched for rounds that never come


def test_a_pool_short_of_a_batch_is_asked_for_what_it_has():
    kme = CountingKme(3)
    timed = TimedKme(kme, keys_per_request=10, rounds_left=10)
    assert [len(timed.enc_keys("bob")) for _ in range(3)] == [1, 1, 1]
    assert kme.requests == ["status", 3]  # refused 10 (not counted), then the 3 the status names
    with pytest.raises(KmeError, match="503"):  # a dry pool: the refusal reaches the broker, which applies the policy
        timed.enc_keys("bob")


def test_sessions_say_when_their_state_must_be_written_again():
    pool, bob_keys = CountingKme(10), ResponderKeys.generate()
    brokers = {who: SessionBroker(who, pool, Policy("hybrid", "pq-only"), lambda event: None) for who in ("a", "b")}
    alice, bob = Sessions("a", 10), Sessions("b", 10)
    hello, _ = alice.initiate(brokers["a"], "b", bob_keys.public, 1)
    bob.respond(brokers["b"], "a", hello, bob_keys, 1)
    assert alice.changed and bob.changed  # a key agreement: new sessions at both ends
    alice.to_json(), bob.to_json()
    assert not alice.changed and not bob.changed
    hello, _ = alice.initiate(brokers["a"], "b", bob_keys.public, 2)
    bob.respond(brokers["b"], "a", hello, bob_keys, 2)
    assert not alice.changed and not bob.changed  # a kept session's round: the state already holds it
    bob.forget(["a"])
    assert bob.changed


def _scenario(**federated):
    data = yaml.safe_load(DEFAULT.read_text())
    data["federated"] |= {"hidden_layers": [8], "rounds": 4, "compare_plain": False, "session_rounds": 2} | federated
    return parse_scenario(data, "three-hospitals (test)")


def test_a_node_parses_its_state_only_when_another_process_wrote_it():
    """The mod keeps a node's sessions and QKD keys in Flower's node state and, in the process that wrote them,
    skips parsing them back. A SuperNode that starts a process per message (simulated: the process's memory
    emptied before every message) must see the same federation: every round, the same key agreements (new
    sessions every 2 rounds, whose state is written; kept ones, whose state is not rewritten), the same ETSI
    requests."""

    def new_process(msg, context, call_next):
        mod._WRITTEN.clear()
        return call_next(msg, context)

    runs = []
    for outer in ([], [new_process]):
        app = ClientApp(mods=[*outer, qfabric_protection_mod()])
        app.train()(train)
        fl = run_federation(_scenario(), client_app=app)
        assert fl["rounds_completed"] == 4 and not any(r["dropped"] for r in fl["per_round"]), fl["per_round"]
        runs.append([(r["key_agreements"], r["kme_requests"], r["qkd_keys_fetched"]) for r in fl["per_round"]])
    assert runs[0] == runs[1]
    assert [agreements for agreements, *_ in runs[0]] == [12, 3, 9, 0]  # sessions of 2 rounds: new in 1 and 3
