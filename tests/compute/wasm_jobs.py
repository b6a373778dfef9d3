"""WASM jobs with a small WASI module inline, built from WAT (no toolchain needed)."""

from __future__ import annotations

import base64

import wasmtime

from bacalhau.models import Job


def module_url(greeting: str) -> str:
    """A WASI module printing ``greeting``, as the data: URL a job carries (over 1 KB, so
    it is one that goes by reference)."""
    text = greeting + "\n"
    wat = f"""
    (module
      (import "wasi_snapshot_preview1" "fd_write"
        (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "{greeting}\\n")
      (data (i32.const 1024) "{"." * 1200}")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const {len(text)}))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
    """
    return "data:application/wasm;base64," + base64.b64encode(wasmtime.wat2wasm(wat)).decode()


def wasm_job(url: str) -> Job:
    """A batch job running the module at ``url`` (a data: URL), published nowhere."""
    return Job.from_dict(
        {
            "Type": "batch",
            "Count": 1,
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {
                        "Type": "wasm",
                        "Params": {
                            "EntryModule": {
                                "Source": {"Type": "inline", "Params": {"URL": url}},
                                "Target": "/app/main.wasm",
                            },
                        },
                    },
                    "Publisher": {"Type": "noop"},
                }
            ],
        }
    )
