"""Publisher plugins (local, noop) behind one small Protocol."""

from bacalhau.publisher._base import Publisher
from bacalhau.publisher._local import LocalPublisher, write_archive
from bacalhau.publisher._local_server import LocalResultServer
from bacalhau.publisher._noop import NoopPublisher

__all__ = ["LocalPublisher", "LocalResultServer", "NoopPublisher", "Publisher", "write_archive"]
