"""A compute-over-data network in the line of Bacalhau: Docker and WASM jobs run next to the
data, over a mutual-TLS gRPC protocol between requester and compute nodes."""

__version__ = "0.1.0"
