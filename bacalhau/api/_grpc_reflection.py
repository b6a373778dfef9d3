"""gRPC server reflection for the public API, so grpcurl, Evans, Postman and generated-client
tooling can list and describe its services without the ``.proto`` files.

The maintained ``grpcio-reflection`` package serves ``grpc.reflection.v1alpha``. Its
``grpc.reflection.v1`` successor (which newer tools ask first, some only) has the same
messages field for field, so the same servicer answers under both names: one implementation,
and no client has to fall back.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

__all__ = ["REFLECTION_SERVICES", "enable_reflection"]

#: The reflection services themselves, as they are listed next to the API's.
V1_SERVICE = "grpc.reflection.v1.ServerReflection"
REFLECTION_SERVICES = (V1_SERVICE, reflection.SERVICE_NAME)


def enable_reflection(server: grpc.aio.Server, services: Iterable[str]) -> None:
    """Serve reflection on ``server`` for ``services`` (full names, e.g.
    ``bacalhau.v1.JobService``), listing the reflection services too. The descriptors come
    from the default pool, where the generated modules registered them on import."""
    names = (*services, *REFLECTION_SERVICES)
    servicer = reflection.aio.ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handlers = {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(V1_SERVICE, handlers),))
