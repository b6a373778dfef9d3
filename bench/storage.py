"""Importing into the CID store against plain SHA-256 over the same bytes.

Generates a file (1 GiB by default, pseudo-random so no chunk repeats) and, in separate
processes so that peak RSS is each run's own, measures over that file, page cache warm:

- ``sha256``: read it in 1 MiB pieces and hash it with hashlib (the floor: reading and
  hashing, nothing else);
- ``import``: ``Importer(...).add_file`` with ``ipfs add`` defaults (CIDv0, 256 KiB dag-pb
  leaves, balanced DAG), every block written to a fresh on-disk blockstore (appended to a
  pack by a ``Blockstore.batch`` thread while the importer hashes, index rows committed in
  batches);
- ``import_only_hash``: the same without storing the blocks (``ipfs add --only-hash``).
- ``exchange``: two processes on loopback, each a node with a certificate from one cluster
  CA: one holds the imported file in its blockstore and serves BlockService over mutual TLS;
  the other fetches the whole DAG into an empty store (``BlockExchange.fetch_dag``: every
  block verified and stored). ``exchange_mb_s`` is the file's size over the fetch time
  (target >= 100).

``import_vs_sha256`` is the store import's throughput as a fraction of the sha256 run's
(target >= 0.7); ``import_peak_rss_mb`` is the peak RSS of the import process, the
interpreter included (target < 200; ``idle_rss_mb`` is the same process before importing).
Each figure is the best of ``--trials``; every run starts after ``sync``, so none pays for
another's writeback. The machine may be shared, so wall-clock ratios move with its load:
``import_cpu_vs_sha256`` compares CPU time (user + system, every thread) instead, which
other processes barely change (it counts the block writes the import overlaps with hashing
on a second core as cost), and ``load_avg`` is the 1-minute load before and after. Prints
one JSON document.

    python bench/storage.py [--size-mb 1024] [--trials 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The children run this file as a script: make the package importable from the checkout.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MIB = 1024 * 1024


def generate(path: Path, size: int) -> None:
    rng = random.Random("bench-storage")
    with path.open("wb") as out:
        left = size
        while left:
            piece = min(left, 16 * MIB)
            out.write(rng.randbytes(piece))
            left -= piece


def peak_rss_mb() -> float:
    """This process's peak RSS. ``VmHWM`` rather than ``ru_maxrss``: the latter survives
    exec, so a child would report its parent's peak at fork time."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(mode: str, path: Path, store_dir: Path) -> dict[str, Any]:
    """One measurement, run in its own process."""
    from bacalhau.storage.cid import Blockstore, Importer

    idle = peak_rss_mb()
    cpu = os.times()
    started = time.perf_counter()
    cid = ""
    blocks = 0
    if mode == "sha256":
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            while piece := stream.read(MIB):
                digest.update(piece)
    elif mode == "import":
        store = Blockstore(store_dir)
        with store.batch() as sink:
            cid = str(Importer(sink).add_file(path).cid)
        blocks = store.stats().blocks
    else:
        cid = str(Importer(None).add_file(path).cid)
    seconds = time.perf_counter() - started
    done = os.times()
    return {
        "seconds": seconds,
        "cpu_seconds": done.user + done.system - cpu.user - cpu.system,
        "peak_rss_mb": peak_rss_mb(),
        "idle_rss_mb": idle,
        "cid": cid,
        "blocks": blocks,
    }


def _node_dir(root: Path, name: str) -> Path:
    return root / "nodes" / name


def make_nodes(root: Path) -> None:
    """A cluster CA and two nodes with certificates (``server`` and ``client``)."""
    from bacalhau.identity import ClusterCA, NodeIdentity

    ca = ClusterCA.create(root / "ca")
    for name in ("server", "client"):
        ca.issue_node_certificate(
            NodeIdentity.load_or_create(_node_dir(root, name)), hosts=("127.0.0.1",)
        )


def serve_blocks(path: Path, store_dir: Path, root: Path) -> None:
    """Import ``path``, serve the store over BlockService, print ``address node_id cid``,
    serve until stdin closes."""
    import asyncio

    import grpc

    from bacalhau.identity import NodeFiles, NodeIdentity
    from bacalhau.storage.cid import Blockstore, Importer
    from bacalhau.transport import add_block_service, server_credentials
    from bacalhau.transport._tls import server_options

    node = _node_dir(root, "server")
    store = Blockstore(store_dir)
    with store.batch() as sink:
        cid = Importer(sink).add_file(path).cid

    async def run() -> None:
        server = grpc.aio.server(options=server_options())
        add_block_service(server, store)
        port = server.add_secure_port("127.0.0.1:0", server_credentials(NodeFiles.in_dir(node)))
        await server.start()
        node_id = NodeIdentity.load_or_create(node).node_id
        print(f"127.0.0.1:{port} {node_id} {cid}", flush=True)
        await asyncio.to_thread(sys.stdin.read)
        await server.stop(0)

    asyncio.run(run())


def fetch_blocks(store_dir: Path, root: Path, address: str, node_id: str, cid: str) -> None:
    import asyncio

    from bacalhau.identity import NodeFiles
    from bacalhau.storage import BlockExchange, BlockPeer
    from bacalhau.storage.cid import CID, Blockstore
    from bacalhau.transport import BlockClient

    class Peer:
        def providers(self, root: CID) -> list[BlockPeer]:
            return [BlockPeer(node_id, address)]

    async def run() -> dict[str, Any]:
        store = Blockstore(store_dir)
        async with BlockClient(NodeFiles.in_dir(_node_dir(root, "client"))) as client:
            exchange = BlockExchange(store, client, Peer())
            started = time.perf_counter()
            report = await exchange.fetch_dag(CID.parse(cid), timeout=600)
            seconds = time.perf_counter() - started
        return {"seconds": seconds, "blocks": report.blocks_fetched, "bytes": report.bytes_fetched}

    print(json.dumps(asyncio.run(run())))


def run_exchange(path: Path, scratch: Path) -> dict[str, Any]:
    """One exchange trial: a serving process and a fetching process."""
    for d in ("served", "fetched"):
        shutil.rmtree(scratch / d, ignore_errors=True)
    os.sync()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve-blocks", str(path), str(scratch / "served"),
         str(scratch)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        address, node_id, cid = server.stdout.readline().split()
        done = subprocess.run(
            [sys.executable, __file__, "--fetch-blocks", str(scratch / "fetched"), str(scratch),
             address, node_id, cid],
            capture_output=True,
            text=True,
            check=True,
        )  # fmt: skip
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)
    result: dict[str, Any] = json.loads(done.stdout)
    result["cid"] = cid
    return result


def run_child(mode: str, path: Path, store_dir: Path) -> dict[str, Any]:
    shutil.rmtree(store_dir, ignore_errors=True)
    os.sync()  # no run pays for the writeback of the previous one's dirty pages
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), str(store_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--dir", default=None, help="scratch directory (default: the system's)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--serve-blocks", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--fetch-blocks", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, path, store = args.child
        print(json.dumps(child(mode, Path(path), Path(store))))
        return
    if args.serve_blocks:
        path, store, root = args.serve_blocks
        serve_blocks(Path(path), Path(store), Path(root))
        return
    if args.fetch_blocks:
        store, root, address, node_id, cid = args.fetch_blocks
        fetch_blocks(Path(store), Path(root), address, node_id, cid)
        return

    size = args.size_mb * MIB
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-storage-", dir=args.dir) as scratch:
        data = Path(scratch) / "data.bin"
        store = Path(scratch) / "store"
        generate(data, size)
        runs: dict[str, list[dict[str, Any]]] = {"sha256": [], "import": [], "import_only_hash": []}
        for _ in range(args.trials):
            for mode in runs:
                runs[mode].append(run_child(mode, data, store))
        make_nodes(Path(scratch))
        runs["exchange"] = [run_exchange(data, Path(scratch)) for _ in range(args.trials)]
        best = {mode: min(results, key=lambda r: r["seconds"]) for mode, results in runs.items()}
        least_cpu = {
            mode: min(r["cpu_seconds"] for r in runs[mode])
            for mode in ("sha256", "import", "import_only_hash")
        }

    def mb_s(mode: str) -> float:
        return round(size / MIB / best[mode]["seconds"], 1)

    assert best["import"]["cid"] == best["import_only_hash"]["cid"] == best["exchange"]["cid"]
    assert best["exchange"]["bytes"] >= size
    print(
        json.dumps(
            {
                "size_mb": args.size_mb,
                "trials": args.trials,
                "cid": best["import"]["cid"],
                "sha256_mb_s": mb_s("sha256"),
                "import_mb_s": mb_s("import"),
                "import_only_hash_mb_s": mb_s("import_only_hash"),
                "import_vs_sha256": round(best["sha256"]["seconds"] / best["import"]["seconds"], 3),
                "import_only_hash_vs_sha256": round(
                    best["sha256"]["seconds"] / best["import_only_hash"]["seconds"], 3
                ),
                "import_cpu_vs_sha256": round(least_cpu["sha256"] / least_cpu["import"], 3),
                "import_only_hash_cpu_vs_sha256": round(
                    least_cpu["sha256"] / least_cpu["import_only_hash"], 3
                ),
                "import_peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs["import"]), 1),
                "idle_rss_mb": round(best["import"]["idle_rss_mb"], 1),
                "stored_blocks": best["import"]["blocks"],
                "exchange_mb_s": mb_s("exchange"),
                "exchange_blocks": best["exchange"]["blocks"],
                "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
