"""``qfabric kms``: a development PKI, a KME fed by a scenario's QKD links, and an SAE's ETSI 014 calls.

    qfabric kms certs --out pki --kme kme-metro --sae alice --sae bob
    qfabric kms serve scenarios/metro-chain.yaml --kme kme-metro --pki pki
    qfabric kms serve scenarios/two-domains.yaml --kme kme-north --port 8443 --peer kme-south=https://127.0.0.1:8444
    qfabric kms status --kme https://127.0.0.1:8443 --cert pki/alice.pem --key pki/alice.key --slave bob
    qfabric kms keys enc --kme https://127.0.0.1:8443 --cert pki/alice.pem --key pki/alice.key --slave bob
    qfabric kms keys dec --kme https://127.0.0.1:8443 --cert pki/bob.pem --key pki/bob.key --master alice --key-id ID
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from qfabric.cli.common import err, fail, out
from qfabric.errors import QfabricError

# the web stack, the store and the scenario machinery load inside the commands: `qfabric --help` stays fast
app = typer.Typer(no_args_is_help=True, help="Key management: ETSI GS QKD 014 KMEs fed by QKD links.")
keys_app = typer.Typer(no_args_is_help=True, help="Fetch keys over ETSI GS QKD 014 as an SAE (JSON on stdout).")
app.add_typer(keys_app, name="keys")

SIMULATED_KEYS_WARNING = ("warning: the keys come from simulated QKD links: they are reproducible from the "
                          "scenario's seed and protect nothing by themselves (a qkd-only policy gives no secrecy "
                          "with them; hybrid keeps the post-quantum part)")


@app.command("certs")
def certs(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for ca.pem and the key pairs.")] = Path("pki"),
    kme: Annotated[list[str], typer.Option("--kme", help="KME ID (server certificate); repeatable.")] = None,
    sae: Annotated[list[str], typer.Option("--sae", help="SAE ID (client certificate); repeatable.")] = None,
    days: Annotated[int, typer.Option("--days")] = 365,
) -> None:
    """A development CA, KME server certificates (127.0.0.1) and SAE client certificates (CN = SAE ID)."""
    from qfabric.kms.certs import make_dev_pki

    kmes = kme or ["kme-a"]
    if not sae:
        fail("give at least one --sae")
    try:
        paths = make_dev_pki(out_dir, kmes, sae, days)
    except QfabricError as error:
        fail(str(error))
    out.print(f"wrote {len(paths)} files to {out_dir}/: CA {paths['ca'].name}; KMEs {', '.join(kmes)}; "
              f"SAEs {', '.join(sae)}")


@app.command("serve")
def serve(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML with qkd and kms sections.")],
    kme: Annotated[str, typer.Option("--kme", help="The KME of the scenario to serve.")],
    pki: Annotated[Path, typer.Option("--pki", help="Directory made by 'qfabric kms certs'.")] = Path("pki"),
    db: Annotated[str | None, typer.Option("--db", help="Database URL (default: sqlite file in the PKI dir).")] = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8443,
    rate_scale: Annotated[float, typer.Option("--rate-scale", help="Feed this fraction of the simulated key "
                                              "rate (real-time distillation of fast links needs many cores).")] = 1.0,
    kek: Annotated[Path | None, typer.Option("--kek", help="The store's key-encryption key file (default: "
                                             "<kme>.kek in the PKI dir; $QFABRIC_KEK overrides it with the key "
                                             "itself, hex or base64).")] = None,
    key_lifetime: Annotated[float, typer.Option("--key-lifetime", help="Seconds after which the material of "
                                                "undelivered and unclaimed keys is erased (0: never).")] = 86_400.0,
    operator: Annotated[list[str] | None, typer.Option(
        "--operator", help="A client certificate name that may read /metrics (repeatable; make its certificate "
        "with 'qfabric kms certs --sae NAME').")] = None,
    api_docs: Annotated[bool, typer.Option("--api-docs", help="Serve /docs, /redoc and /openapi.json.")] = False,
    start_at: Annotated[float, typer.Option("--start-at", help="Start this many simulated seconds into the "
                                            "scenario (e.g. after a satellite's passes): the keys supplied until "
                                            "then are in the pools when serving starts.")] = 0.0,
    peer: Annotated[list[str] | None, typer.Option(
        "--peer", help="A neighbour KME's URL, as KME_ID=URL (repeatable): keys for SAEs of other KMEs are forwarded "
        "to it over mutual TLS, with this KME's certificate.")] = None,
) -> None:
    """An HTTPS KME on loopback (client certificates required), fed by the scenario's links at their rates.

    It listens at once; the links are distilled in the background (the status call's status_extension says
    supply_ready and pool_fill)."""
    import uvicorn

    from qfabric.kms.client import tls_context
    from qfabric.kms.etsi import create_app
    from qfabric.kms.interkme import Forwarder
    from qfabric.kms.server import ServerConfig, open_store, raise_open_file_limit, uvicorn_config
    from qfabric.scenario import load_scenario
    from qfabric.scenario.build import scenario_faults
    from qfabric.scenario.keysupply import KeySupply

    try:
        if not start_at >= 0:
            raise QfabricError(f"--start-at {start_at}: expected simulated seconds >= 0")
        sc = load_scenario(scenario)
        if sc.kms is None:
            raise QfabricError(f"{scenario}: no kms section (KMEs and SAEs at nodes)")
        spec = next((k for k in sc.kms.kmes if k.id == kme), None)
        if spec is None:
            raise QfabricError(f"no KME {kme!r} in {scenario}; KMEs are {[k.id for k in sc.kms.kmes]}")
        needed = [pki / "ca.pem", pki / f"{kme}.pem", pki / f"{kme}.key"]
        missing = [str(p) for p in needed if not p.exists()]
        if missing:
            saes = " ".join(f"--sae {s.id}" for s in sc.kms.saes)
            raise QfabricError(f"missing {', '.join(missing)}: run 'qfabric kms certs --out {pki} --kme {kme} {saes}'")
        owner = {node: k.id for k in sc.kms.kmes for node in k.nodes}
        saes = {s.id: kme for s in sc.kms.saes if s.node in spec.nodes}
        peers = _peers(peer or [])
        cfg = ServerConfig(kme_id=kme, saes={s.id: owner[s.node] for s in sc.kms.saes},
                           db_url=db or f"sqlite:///{pki / (kme + '.db')}",
                           secret_file=str(kek or pki / f"{kme}.kek"), certfile=str(needed[1]),
                           keyfile=str(needed[2]), cafile=str(needed[0]), host=host, port=port,
                           limits={"key_size": sc.kms.key_size_bits, "max_key_count": sc.kms.max_key_count,
                                   "operators": operator or [], "api_docs": api_docs},
                           key_lifetime_s=key_lifetime if key_lifetime > 0 else None)
        store = open_store(cfg)  # refuses a missing or wrong key-encryption key for a store that holds keys
        kme_config = cfg.kme()
        supply = KeySupply(sc, store, kme, kme_config.pool, rate_scale=rate_scale, faults=scenario_faults(sc))
        kme_config.status_extension = supply.link_qber
        kme_config.link_qber = supply.worst_link_qber
        unknown = sorted(set(peers) - set(supply.neighbours))
        if unknown:
            raise QfabricError(f"--peer {unknown[0]}: not a neighbour of KME {kme} (no QKD link joins their nodes); "
                               f"neighbours are {sorted(supply.neighbours)}")
        if supply.neighbours:
            kme_config.forwarder = Forwarder(kme, cfg.saes, peers, supply.routes, supply, store,
                                             tls_context(cfg.certfile, cfg.keyfile, cfg.cafile))
        server = uvicorn.Server(uvicorn_config(cfg, create_app(kme_config, store)))
    except QfabricError as error:
        fail(str(error))
    raise_open_file_limit(cfg.connection_limits())
    failed: list[BaseException] = []

    def primed(rates: dict[str, float]) -> None:
        for name, rate in rates.items():
            err.print(f"  {name}: " + ("keys from its QKD devices (ETSI 014)" if rate is None
                                        else f"{rate:,.0f} secret bits/s (simulated)"))
        err.print("key supply ready")

    def supply_failed(error: BaseException) -> None:
        err.print(f"key supply: {type(error).__name__}: {error}")
        if not supply.ready:  # the links cannot be distilled: nothing to serve
            failed.append(error)
            server.should_exit = True

    if supply.feeds or supply.interconnects or supply.e2e or supply.satellites:  # not when all come from devices
        err.print(SIMULATED_KEYS_WARNING)
    err.print(f"KME {kme} serving SAEs {', '.join(saes)} on https://{host}:{port} (Ctrl-C stops); distilling "
              f"the first QKD blocks of {len(supply.feeds) + len(supply.interconnects)} links in the background ...")
    for neighbour, link in supply.neighbours.items():
        where = peers.get(neighbour, "no --peer given: keys for its SAEs are refused")
        err.print(f"  forwarding to KME {neighbour} over link {link.link}: {where}")
    supply.start(prime=True, on_primed=primed, on_error=supply_failed, start_s=start_at)
    try:
        server.run()
    finally:
        supply.stop(timeout_s=2)
    if failed:
        raise typer.Exit(1)


def _peers(items: list[str]) -> dict[str, str]:
    """``KME_ID=URL`` options as a dict."""
    peers = {}
    for item in items:
        kme_id, sep, url = item.partition("=")
        if not sep or not kme_id or not url.startswith("https://"):
            raise QfabricError(f"--peer {item!r}: expected KME_ID=https://host:port")
        peers[kme_id] = url
    return peers


KmeUrl = Annotated[str, typer.Option("--kme", help="KME URL, e.g. https://127.0.0.1:8443")]
Cert = Annotated[Path, typer.Option("--cert", help="This SAE's certificate (its common name is the SAE ID).")]
Key = Annotated[Path, typer.Option("--key", help="This SAE's private key.")]
Ca = Annotated[Path | None, typer.Option("--ca", help="CA certificate (default: ca.pem beside --cert).")]


def _call(kme: str, cert: Path, key: Path, ca: Path | None, request):
    """Run ``request(client)`` as the SAE of ``cert``; the KME's refusals and unreachable KMEs end with exit 2."""
    from qfabric.kms.client import KmeError, SaeClient

    ca = ca or cert.parent / "ca.pem"
    for flag, path in (("--cert", cert), ("--key", key), ("--ca", ca)):
        if not path.is_file():
            fail(f"{flag} {path}: no such file (make a development PKI with 'qfabric kms certs')")
    try:
        with SaeClient(kme, str(cert), str(key), str(ca)) as client:
            return request(client)
    except KmeError as error:
        fail(f"the KME refused: {error.status} {json.dumps(error.body)}")
    except Exception as error:  # connection refused, TLS failure, a malformed URL: say which
        fail(f"cannot reach {kme}: {type(error).__name__}: {error}")


def _print_keys(keys: list[tuple[str, bytes]]) -> None:
    """The ETSI 014 key container: ``{"keys": [{"key_ID": ..., "key": base64}]}``."""
    import base64

    out.print_json(json.dumps({"keys": [{"key_ID": key_id, "key": base64.b64encode(material).decode()}
                                        for key_id, material in keys]}))


@app.command("status")
def status(
    kme: KmeUrl, cert: Cert, key: Key,
    slave: Annotated[str, typer.Option("--slave", help="The SAE to share keys with.")],
    ca: Ca = None,
) -> None:
    """ETSI 014 status between this SAE (from its certificate) and ``--slave``."""
    out.print_json(json.dumps(_call(kme, cert, key, ca, lambda client: client.status(slave))))


@keys_app.command("enc")
def keys_enc(
    kme: KmeUrl, cert: Cert, key: Key,
    slave: Annotated[str, typer.Option("--slave", help="The SAE that will fetch the same keys.")],
    number: Annotated[int, typer.Option("--number", min=1, help="Keys to get.")] = 1,
    size: Annotated[int | None, typer.Option("--size", min=8, help="Key size in bits (default: the KME's).")]
    = None,
    also: Annotated[list[str] | None, typer.Option("--also", help="An additional slave SAE (repeatable).")] = None,
    ca: Ca = None,
) -> None:
    """As the master SAE: new keys shared with ``--slave`` (enc_keys), printed as the ETSI key container."""
    _print_keys(_call(kme, cert, key, ca, lambda client: client.enc_keys(slave, number, size, also or None)))


@keys_app.command("dec")
def keys_dec(
    kme: KmeUrl, cert: Cert, key: Key,
    master: Annotated[str, typer.Option("--master", help="The SAE that asked for the keys.")],
    key_id: Annotated[list[str], typer.Option("--key-id", help="A key ID the master sent (repeatable).")],
    ca: Ca = None,
) -> None:
    """As a slave SAE: the keys ``--master`` was given, by key ID (dec_keys), each handed out once."""
    _print_keys(_call(kme, cert, key, ca, lambda client: client.dec_keys(master, list(key_id))))
