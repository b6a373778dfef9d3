"""Server reflection on the public gRPC API: a real reflection client (the one grpcio-reflection
ships, as grpcurl and Evans use the protocol) lists and describes the services of a real
server, with no .proto file and no generated code on the client's side."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from bacalhau.api import GrpcApiServer
from bacalhau.storage import BlockstoreContent
from bacalhau.storage.cid import Blockstore
from tests.api.memory_orchestrator import MemoryOrchestrator

API = {"bacalhau.v1.JobService", "bacalhau.v1.NodeAPIService", "bacalhau.v1.AgentService"}
REFLECTION = {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}


@pytest.fixture
def address() -> Iterator[str]:
    """A served API on its own event loop thread: the reflection client is synchronous."""
    loop = asyncio.new_event_loop()
    server = GrpcApiServer(MemoryOrchestrator(), host="127.0.0.1", port=0)
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server.address
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_list_and_describe_without_the_protos(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        assert set(db.get_services()) == API | REFLECTION
        # A fresh pool: everything below comes over the wire.
        pool = DescriptorPool(db)
        jobs = pool.FindServiceByName("bacalhau.v1.JobService")
        history = jobs.FindMethodByName("JobHistory")
        request = history.input_type
        assert request.full_name == "bacalhau.v1.JobHistoryRequest"
        assert {"until", "include_executions", "wait_seconds"} <= set(request.fields_by_name)
        response = history.output_type
        assert response.fields_by_name["executions"].message_type.full_name == (
            "bacalhau.v1.ExecutionDocument"
        )
        logs = jobs.FindMethodByName("StreamJobLogs")
        assert logs.output_type.fields_by_name["stream"].enum_type.full_name == (
            "bacalhau.v1.LogStreamType"
        )  # from the imported logs.proto, resolved through reflection too
        agent = pool.FindServiceByName("bacalhau.v1.AgentService")
        assert [m.name for m in agent.methods] == [
            "Alive",
            "Version",
            "NodeInfo",
            "Config",
            "WhoAmI",
        ]


def test_the_data_service_is_listed_only_where_it_is_served(tmp_path: Path) -> None:
    """A server without a content store serves no DataService (above); one with it lists it
    and describes its streams."""
    loop = asyncio.new_event_loop()
    with Blockstore(tmp_path / "blocks") as store:
        server = GrpcApiServer(
            MemoryOrchestrator(), host="127.0.0.1", port=0, content=BlockstoreContent(store)
        )
        loop.run_until_complete(server.start())
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            with grpc.insecure_channel(server.address) as channel:
                db = ProtoReflectionDescriptorDatabase(channel)
                assert set(db.get_services()) == API | REFLECTION | {"bacalhau.v1.DataService"}
                data = DescriptorPool(db).FindServiceByName("bacalhau.v1.DataService")
                get = data.FindMethodByName("GetData")
                assert get.server_streaming and not get.client_streaming
                put = data.FindMethodByName("PutData")
                assert put.client_streaming and not put.server_streaming
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


def test_the_v1_reflection_service_answers_too(address: str) -> None:
    """Newer tools ask grpc.reflection.v1 first; its messages are v1alpha's field for field."""
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        answers = list(
            call(
                iter(
                    [
                        reflection_pb2.ServerReflectionRequest(list_services=""),
                        reflection_pb2.ServerReflectionRequest(
                            file_containing_symbol="bacalhau.v1.NodeAPIService"
                        ),
                    ]
                ),
                timeout=10,
            )
        )
    names = {s.name for s in answers[0].list_services_response.service}
    assert names == API | REFLECTION
    files = answers[1].file_descriptor_response.file_descriptor_proto
    assert files  # serialized FileDescriptorProtos of api.proto (and its imports)
