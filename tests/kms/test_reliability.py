"""No key handed out twice, none lost: concurrent clients, and a KME killed with SIGKILL under load."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from qfabric.kms.client import KmeError


def drain(kme, master, slave, rounds, results, errors, stop=None):
    try:
        with kme.client(master) as m, kme.client(slave) as s:
            for _ in range(rounds):
                if stop is not None and stop.is_set():
                    return
                try:
                    keys = m.enc_keys(slave, number=2)
                except KmeError as err:
                    errors.append(err.status)
                    continue
                results.append(("enc", master, keys))
                results.append(("dec", slave, s.dec_keys(master, [k for k, _ in keys])))
    except Exception as err:  # connection errors when the server is killed
        errors.append(type(err).__name__)


def test_parallel_clients_get_every_key_exactly_once(kme):
    pairs = [("alice", "bob"), ("bob", "alice"), ("carol", "dave"), ("erin", "frank")]
    for a, b in pairs[1:]:
        kme.fill(a, b, 150)  # alice|bob and bob|alice share one pool
    results, errors = [], []
    with ThreadPoolExecutor(max_workers=8) as pool:
        for i in range(8):
            a, b = pairs[i % 4]
            pool.submit(drain, kme, a, b, 30, results, errors)
    enc = [k for kind, _, keys in results if kind == "enc" for k in keys]
    dec = [k for kind, _, keys in results if kind == "dec" for k in keys]
    ids = [i for i, _ in enc]
    assert len(ids) == len(set(ids))  # no key ID issued twice
    assert len({m for _, m in enc}) == len(enc)  # no key material issued twice
    assert sorted(enc) == sorted(dec)  # every slave got exactly its master's keys
    assert set(errors) <= {503}  # pools ran dry: refused cleanly
    for a, b in pairs[1:]:
        acc = kme.accounting(a, b)
        assert acc["units_free"] + acc["units_used"] == 150  # counts add up per pool
        assert acc["units_used"] == acc["keys_delivered"] == acc["claims_done"]
    issued = sum(kme.accounting(a, b)["keys_delivered"] for a, b in pairs[1:])
    assert issued == len(enc)


def test_sigkill_under_load_loses_nothing_and_delivers_nothing_twice(kme):
    total = 20_000
    kme.fill("alice", "bob", total)
    results, errors, stop = [], [], threading.Event()
    threads = [threading.Thread(target=drain, args=(kme, "alice", "bob", 1000, results, errors, stop))
               for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    kme.kill()  # SIGKILL in the middle of the load
    stop.set()
    for t in threads:
        t.join(30)
    received = [k for kind, _, keys in results if kind == "enc" for k in keys]
    claimed = {i for kind, _, keys in results if kind == "dec" for i, _ in keys}
    assert len(received) > 20 and 503 not in errors  # the load was running, keys left, when the server died
    kme.start()  # same database
    acc = kme.accounting("alice", "bob")
    assert acc["units_free"] + acc["units_used"] == total  # no unit vanished
    assert acc["units_used"] == acc["keys_delivered"]  # each used unit belongs to exactly one issued key
    ids = [i for i, _ in received]
    assert len(ids) == len(set(ids))
    # Every key the master received is accounted for: either still there for the slave, once, or claimed by
    # the slave just before the kill (its response lost in the crash: recorded, never handed out again).
    # ETSI 014 has no acknowledgement, so exactly-once is impossible; qfabric never delivers twice.
    pending = [(i, m) for i, m in received if i not in claimed]
    state = kme.store.claims_of([i for i, _ in pending])
    assert all(set(state[i]) == {"bob"} for i, _ in pending)  # issued to bob and nobody else
    still_open = [(i, m) for i, m in pending if state[i]["bob"] is None]
    lost_in_crash = [i for i, _ in pending if state[i]["bob"] is not None]
    assert len(lost_in_crash) <= 4 * 2  # at most the keys of the requests in flight when the KME died
    with kme.client("bob") as bob, kme.client("alice") as alice:
        if still_open:
            assert bob.dec_keys("alice", [i for i, _ in still_open]) == still_open
        for i in list(claimed)[:5] + lost_in_crash:
            try:
                bob.dec_keys("alice", [i])
                raise AssertionError("a claimed key was delivered twice")
            except KmeError as err:
                assert err.status == 400
        # the service carries on after the restart
        fresh = alice.enc_keys("bob", number=1)
        assert fresh[0][0] not in set(ids)
    assert kme.accounting("alice", "bob")["claims_done"] == len(claimed) + len(pending)
