"""``qfabric qrng``: the simulated quantum random number generator.

    qfabric qrng serve --pki pki [--cert qrng] [--port 8443]   random bytes over HTTPS, client certificates required
    qfabric qrng bytes 32 [--seed S] [--out FILE]              random bytes (hex on the terminal)
    qfabric qrng test [--bits 1000000] [--json]                health tests, SP 800-22 report, throughput
"""

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from qfabric.cli.common import err, fail, out
from qfabric.errors import QfabricError

app = typer.Typer(no_args_is_help=True, help="Quantum random numbers: health-tested, extracted, served over HTTPS.")

SeedOpt = Annotated[int | None, typer.Option("--seed", help="Reproducible simulation (default: OS entropy).")]
Clearance = Annotated[float, typer.Option("--clearance-db", help="Shot noise over electronic noise, dB.")]
AdcBits = Annotated[int, typer.Option("--adc-bits", help="ADC resolution, bits.")]
Fault = Annotated[str | None, typer.Option("--fault", help="Inject stuck, dc-offset or laser-off (to see the "
                                           "health tests stop the output).")]


def _qrng(seed, clearance_db, adc_bits, fault):
    from qfabric.apps.qrng import Qrng

    return Qrng(seed=seed, clearance_db=clearance_db, adc_bits=adc_bits, fault=fault)


@app.command("serve")
def serve(
    pki: Annotated[Path, typer.Option("--pki", help="Directory made by 'qfabric kms certs'.")] = Path("pki"),
    cert: Annotated[str, typer.Option("--cert", help="The server certificate's name in the PKI directory.")] = "qrng",
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8443,
    max_bytes: Annotated[int, typer.Option("--max-bytes", help="Per-request limit, bytes.")] = 65_536,
    seed: SeedOpt = None, clearance_db: Clearance = 10.0, adc_bits: AdcBits = 8, fault: Fault = None,
) -> None:
    """Serve GET /api/v1/random?bytes=N and /api/v1/status over HTTPS on loopback (mutual TLS)."""
    from qfabric.apps.qrng.server import QrngServerConfig, server
    from qfabric.kms.server import raise_open_file_limit

    needed = [pki / "ca.pem", pki / f"{cert}.pem", pki / f"{cert}.key"]
    try:
        missing = [str(p) for p in needed if not p.exists()]
        if missing:
            raise QfabricError(f"missing {', '.join(missing)}: run 'qfabric kms certs --out {pki} --kme {cert} "
                               f"--sae <client>' (clients use <client>.pem/.key)")
        config = QrngServerConfig(certfile=str(needed[1]), keyfile=str(needed[2]), cafile=str(needed[0]), host=host,
                                  port=port, max_bytes_per_request=max_bytes)
        qrng = _qrng(seed, clearance_db, adc_bits, fault)
        uv = server(config, qrng)
    except QfabricError as error:
        fail(error)
    raise_open_file_limit(config.connection_limits())
    s = qrng.summary()
    err.print(f"QRNG (simulated vacuum homodyne, {s['min_entropy_quantum_bits']:.3f} extractable bits/sample) on "
              f"https://{host}:{port}/api/v1/random?bytes=N, N <= {max_bytes}; client certificates of "
              f"{needed[0]} required (Ctrl-C stops)")
    uv.run()


@app.command("bytes")
def random_bytes(
    n: Annotated[int, typer.Argument(help="How many bytes.")] = 32,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the raw bytes here instead of hex.")] = None,
    seed: SeedOpt = None, clearance_db: Clearance = 10.0, adc_bits: AdcBits = 8, fault: Fault = None,
) -> None:
    """Random bytes from the QRNG: hex on the terminal, or raw into a file."""
    try:
        if n < 1:
            raise QfabricError(f"N = {n}: expected a positive number of bytes")
        data = _qrng(seed, clearance_db, adc_bits, fault).random_bytes(n)
    except QfabricError as error:
        fail(error)
    if out_file is None:
        out.print(data.hex(), soft_wrap=True)
    else:
        out_file.write_bytes(data)
        out.print(f"wrote {n} bytes to {out_file}")


@app.command("test")
def health_report(
    bits: Annotated[int, typer.Option("--bits", help="Extracted bits to test (10^6 is SP 800-22's size).")]
    = 1_000_000,
    significance: Annotated[float, typer.Option("--significance", help="SP 800-22 significance.")] = 0.01,
    seed: SeedOpt = None, clearance_db: Clearance = 10.0, adc_bits: AdcBits = 8, fault: Fault = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Generate, health-test and extract ``--bits`` bits; report the model, throughput and SP 800-22 P-values."""
    from qfabric.apps.qrng.sp800_22 import sp800_22_report

    try:
        if bits < 1000:
            raise QfabricError(f"--bits {bits}: expected at least 1000")
        qrng = _qrng(seed, clearance_db, adc_bits, fault)
        with err.status(f"generating {bits:,} bits"):
            start = time.perf_counter()
            stream = qrng.random_bits(bits)
            seconds = time.perf_counter() - start
        with err.status("SP 800-22 tests"):
            report = sp800_22_report(stream, significance)
    except QfabricError as error:
        fail(error)
    result = {"model": qrng.summary(), "seconds": seconds, "mbit_per_s": bits / seconds / 1e6, "sp800_22": report}
    if as_json:
        out.print_json(json.dumps(result))
        return
    from rich.table import Table

    model = Table(show_header=False, title="entropy source and extraction")
    for key, value in result["model"].items():
        model.add_row(key, f"{value:.6g}" if isinstance(value, float) else str(value))
    model.add_row("throughput (one core, noisy machine)", f"{result['mbit_per_s']:.2f} Mbit/s")
    out.print(model)
    table = Table(title=f"NIST SP 800-22 on {bits:,} extracted bits (significance {significance})")
    table.add_column("test")
    table.add_column("P-value", justify="right")
    table.add_column("result")
    for name, t in report["tests"].items():
        table.add_row(name, f"{t['p_value']:.4f}", "pass" if t["passed"] else "[red]FAIL[/red]")
    out.print(table)
