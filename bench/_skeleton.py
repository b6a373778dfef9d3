"""The throughput figure's raw baseline: a job's bare path, with nothing of ours in it.

``wasm_floor`` (see ``_floor.py``) is the latency's baseline: three round trips measured
alone, one after another, in one process. Throughput needs another baseline: what this
machine allows per job when the same steps run in the same processes as the devstack's,
under the same load. This module is that skeleton: one requester process and two compute
processes, each on uvloop, talking as the devstack's nodes do, doing per job only what no
implementation of the protocol can skip:

- the requester takes a ``PUT /jobs`` of the benchmark's own submission (aiohttp), decodes
  its JSON, swaps the inline module for its SHA-256, writes the job in SQLite (WAL) and
  commits; it signs the ask (ed25519) and sends it to a compute node (round robin) over a
  mutual-TLS gRPC unary call;
- the compute node checks the signature, writes the execution and commits, runs the cached
  module (a fresh store and WASI context, its streams in memory files), writes the end with
  its output and commits, and answers with a signed result;
- the requester checks that signature, writes the job's end and commits, and answers the
  HTTP request with the job's state and its output.

No validation, scheduling, history, metrics, retries or recovery: the figure it gives is a
ceiling no full implementation reaches, and the devstack's figure is read against it.

``bench/throughput.py`` runs it before the devstack and reports it as ``wasm_skeleton``;
alone it prints the same figures:

    python bench/_skeleton.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import orjson
import uvloop
import wasmtime
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bacalhau.identity import ClusterCA, NodeFiles, NodeIdentity
from bacalhau.transport import channel_credentials, channel_options, server_credentials

_METHOD = "/skeleton.Compute/Run"


def _db(path: Path, schema: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(schema)
    return db


def _commit(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> None:
    db.execute("BEGIN")
    db.execute(sql, params)
    db.execute("COMMIT")


def _new_key(home: Path) -> None:
    key = Ed25519PrivateKey.generate()
    (home / "sign.key").write_bytes(key.private_bytes_raw())
    (home / "pub").write_bytes(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def _key(home: Path) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes((home / "sign.key").read_bytes())


def _peer_key(home: Path) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes((home / "pub").read_bytes())


def _sealed(key: Ed25519PrivateKey, payload: bytes) -> bytes:
    return key.sign(payload) + payload


def _opened(peer: Ed25519PublicKey, message: bytes) -> bytes:
    peer.verify(message[:64], message[64:])
    return message[64:]


async def _compute(home: Path, requester: Path, module_path: Path) -> None:
    key = _key(home)
    peer = _peer_key(requester)
    db = _db(home / "executions.db", "CREATE TABLE e (id TEXT PRIMARY KEY, state TEXT, out TEXT)")
    config = wasmtime.Config()
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    pre = linker.instantiate_pre(wasmtime.Module.from_file(engine, str(module_path)))
    counter = itertools.count()

    def run() -> str:
        # The streams go to memory files, as the node's inline runs' do: no file system.
        out, err = (os.memfd_create(name, os.MFD_CLOEXEC) for name in ("stdout", "stderr"))
        try:
            store = wasmtime.Store(engine)
            store.set_epoch_deadline(1_000_000)
            wasi = wasmtime.WasiConfig()
            wasi.argv = ["main.wasm"]
            wasi.stdout_file = f"/proc/self/fd/{out}"
            wasi.stderr_file = f"/proc/self/fd/{err}"
            store.set_wasi(wasi)
            with contextlib.suppress(wasmtime.ExitTrap):
                pre.instantiate(store).exports(store)["_start"](store)  # type: ignore[operator]
            store.close()
            return os.pread(out, 1 << 16, 0).decode()
        finally:
            os.close(out)
            os.close(err)

    async def handle(request: bytes, context: Any) -> bytes:
        ask = orjson.loads(_opened(peer, request))
        execution = f"e-{next(counter)}"
        _commit(db, "INSERT INTO e VALUES (?, 'Running', '')", (execution,))
        out = run()
        _commit(db, "UPDATE e SET state='Completed', out=? WHERE id=?", (out, execution))
        answer = {"Job": ask["Job"], "Execution": execution, "State": "Completed", "Out": out}
        return _sealed(key, orjson.dumps(answer))

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "skeleton.Compute", {"Run": grpc.unary_unary_rpc_method_handler(handle)}
            )
        ]
    )
    port = server.add_secure_port("127.0.0.1:0", server_credentials(_files(home)))
    await server.start()
    _announce(home, port)
    await server.wait_for_termination()


async def _requester(home: Path, computes: list[Path]) -> None:
    key = _key(home)
    db = _db(home / "jobs.db", "CREATE TABLE j (id TEXT PRIMARY KEY, state TEXT, spec BLOB)")
    db.execute("CREATE TABLE m (hash TEXT PRIMARY KEY, body BLOB)")
    nodes = []
    for c in computes:
        identity = NodeIdentity.load_or_create(c)
        channel = grpc.aio.secure_channel(
            f"127.0.0.1:{(c / 'port').read_text()}",
            channel_credentials(_files(home)),
            options=channel_options(identity.node_id),
        )
        nodes.append((channel.unary_unary(_METHOD), _peer_key(c)))
    turn = itertools.cycle(nodes)
    counter = itertools.count()
    known: set[str] = set()

    async def put_job(request: web.Request) -> web.Response:
        spec = orjson.loads(await request.read())
        params = spec["Job"]["Tasks"][0]["Engine"]["Params"]
        url = params["EntryModule"]["Source"]["Params"]["URL"]
        digest = hashlib.sha256(url.encode()).hexdigest()
        if digest not in known:  # stored once, as the node stores inline modules
            _commit(db, "INSERT OR IGNORE INTO m VALUES (?, ?)", (digest, url))
            known.add(digest)
        params["EntryModule"]["Source"]["Params"]["URL"] = digest
        job = f"j-{next(counter)}"
        _commit(db, "INSERT INTO j VALUES (?, 'Pending', ?)", (job, orjson.dumps(spec)))
        call, peer = next(turn)
        ask = _sealed(key, orjson.dumps({"Job": job, "Spec": spec["Job"], "Module": digest}))
        answer = orjson.loads(_opened(peer, await call(ask, timeout=30)))
        _commit(db, "UPDATE j SET state=? WHERE id=?", (answer["State"], job))
        body = {"JobID": job, "State": answer["State"], "Stdout": answer["Out"]}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    app = web.Application(client_max_size=1 << 24)
    app.router.add_put("/jobs", put_job)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    _announce(home, runner.addresses[0][1])
    await asyncio.Event().wait()


def _announce(home: Path, port: int) -> None:
    """Write the port file whole (renamed into place): the parent polls for it."""
    (home / "port.tmp").write_text(str(port))
    (home / "port.tmp").rename(home / "port")


def _files(home: Path) -> NodeFiles:
    return NodeFiles.in_dir(home)


class Skeleton:
    """The three processes, started in a temporary directory; ``api`` is the requester's."""

    def __init__(self, module_path: Path) -> None:
        self._module = module_path
        self._tmp = tempfile.TemporaryDirectory(prefix="skeleton-")
        self.pids: dict[str, list[int]] = {}
        self._procs: list[subprocess.Popen[bytes]] = []
        self.api = ""

    def __enter__(self) -> Skeleton:
        root = Path(self._tmp.name)
        ca = ClusterCA.create(root / "ca")
        homes = {name: root / name for name in ("requester", "compute-0", "compute-1")}
        for home in homes.values():
            identity = NodeIdentity.load_or_create(home)
            ca.issue_node_certificate(identity)
            _new_key(home)
        requester = homes["requester"]
        # The compute nodes first: the requester dials them as it starts.
        for name in ("compute-0", "compute-1", "requester"):
            role = "requester" if name == "requester" else "compute"
            args = [sys.executable, __file__, role, str(homes[name]), str(requester)]
            args += [str(homes["compute-0"]), str(homes["compute-1"]), str(self._module)]
            proc = subprocess.Popen(args, stderr=subprocess.PIPE)
            self._procs.append(proc)
            self.pids.setdefault(role, []).append(proc.pid)
            self._wait_for(homes[name] / "port")
        self.api = f"127.0.0.1:{(requester / 'port').read_text()}"
        return self

    def _wait_for(self, port_file: Path) -> None:
        deadline = time.monotonic() + 60
        while not port_file.exists():
            exited = [p for p in self._procs if p.poll() is not None]
            if exited or time.monotonic() > deadline:
                errors = [p.stderr.read().decode() for p in exited if p.stderr]
                self.__exit__()
                raise RuntimeError(f"the skeleton's processes did not start: {errors}")
            time.sleep(0.05)

    def __exit__(self, *_: object) -> None:
        for proc in self._procs:
            proc.kill()
            proc.wait()
        self._tmp.cleanup()


async def measure_skeleton(
    skeleton: Skeleton, body: bytes, levels: dict[int, int], cpu: Any
) -> dict[str, Any]:
    """Jobs/s and CPU milliseconds per job (by role, from ``cpu(pids)``) at each level."""
    out: dict[str, Any] = {"jobs_per_s": {}, "cpu_ms_per_job": {}}
    async with aiohttp.ClientSession() as http:

        async def one() -> None:
            async with http.put(f"http://{skeleton.api}/jobs", data=body) as r:
                answer = await r.json()
            if answer["State"] != "Completed":
                raise RuntimeError(f"skeleton job ended {answer}")

        for _ in range(20):
            await one()
        latencies = []
        for _ in range(30):
            start = time.perf_counter()
            await one()
            latencies.append(time.perf_counter() - start)
        latencies.sort()
        out["median_ms"] = round(latencies[len(latencies) // 2] * 1000, 2)
        for level, total in levels.items():
            gate = asyncio.Semaphore(level)

            async def gated(gate: asyncio.Semaphore = gate) -> None:
                async with gate:
                    await one()

            before = cpu(skeleton.pids)
            start = time.perf_counter()
            await asyncio.gather(*(gated() for _ in range(total)))
            wall = time.perf_counter() - start
            after = cpu(skeleton.pids)
            out["jobs_per_s"][str(level)] = round(total / wall, 1)
            used = {role: round((after[role] - before[role]) * 1000 / total, 2) for role in after}
            used["total"] = round(sum(used.values()), 2)
            out["cpu_ms_per_job"][str(level)] = used
    return out


def _serve(role: str, home: str, requester: str, c0: str, c1: str, module: str) -> None:
    if role == "compute":
        main = _compute(Path(home), Path(requester), Path(module))
    else:
        main = _requester(Path(home), [Path(c0), Path(c1)])
    uvloop.run(main)


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] in ("requester", "compute"):
        _serve(*sys.argv[1:])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from job_latency import WASM
    from throughput import LEVELS, cpu_seconds, trivial

    module = WASM.read_bytes()
    submission = orjson.dumps({"Job": trivial(module).to_dict()})
    with Skeleton(WASM) as sk:
        figures = asyncio.run(measure_skeleton(sk, submission, LEVELS, cpu_seconds))
    print(json.dumps(figures, indent=2))
