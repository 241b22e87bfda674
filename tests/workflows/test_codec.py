"""Payload encryption: what Temporal stores is ciphertext, the workflow still works, and the
codec server decodes for the Web UI."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import uuid
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.workflows.test_machine_workflow import (
    FakeWorld,
    approve_when_verified,
    failback_input,
)
from worker.codec import ENCODING, CodecKeyError, EncryptionCodec, parse_key
from worker.codec_server import codec_app
from worker.search_attributes import register_search_attributes
from worker.settings import Settings, SettingsError
from worker.wiring import data_converter
from workflows.machine import MachineFailbackWorkflow
from workflows.versioning import ACTIVE_PATCHES

KEY = base64.b64encode(os.urandom(32)).decode()


async def test_round_trip_and_key_errors() -> None:
    codec = EncryptionCodec(parse_key(KEY))
    clear = Payload(metadata={"encoding": b"json/plain"}, data=b'{"vm_name":"web-01"}')
    (sealed,) = await codec.encode([clear])
    assert sealed.metadata["encoding"] == ENCODING and b"web-01" not in sealed.data
    assert await codec.decode([sealed]) == [clear]
    with pytest.raises(CodecKeyError, match="32 bytes"):
        parse_key(base64.b64encode(b"short").decode())
    with pytest.raises(CodecKeyError, match="not base64"):
        parse_key("!!!")
    other = EncryptionCodec(parse_key(KEY), key_id="rotated")
    with pytest.raises(CodecKeyError, match="unknown key id"):
        await other.decode([sealed])


async def test_history_holds_only_ciphertext(test_server_path: str) -> None:
    converter = data_converter(Settings(payload_key=KEY))  # type: ignore[arg-type]
    assert converter.payload_codec is not None
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=converter, test_server_existing_path=test_server_path
    )
    try:
        await register_search_attributes(env.client)
        world = FakeWorld(agent_delay=timedelta(minutes=1))
        queue = f"tq-{uuid.uuid4()}"
        async with Worker(
            env.client,
            task_queue=queue,
            workflows=[MachineFailbackWorkflow],
            activities=world.activities(),
        ):
            handle = await env.client.start_workflow(
                MachineFailbackWorkflow.run,
                failback_input(),
                id=f"enc-{uuid.uuid4()}",
                task_queue=queue,
            )
            await approve_when_verified(handle, "alice", "checked web-01")
            result = await handle.result()
            history = await handle.fetch_history()
        assert result.outcome == "completed"
        raw = json.loads(history.to_json())
        encodings = {
            base64.b64decode(p["metadata"]["encoding"])
            for p in _payloads(raw)
            if "encoding" in p.get("metadata", {})
        }
        assert encodings == {ENCODING}
        # Inputs, results and signals are ciphertext: the approver's comment is nowhere.
        assert b"checked web-01" not in _decoded(raw)
        assert len(_payloads(raw)) > 10
        # A client without the key cannot read the result.
        keyless = Client(**{**env.client.config(), "data_converter": pydantic_data_converter})
        with pytest.raises(Exception):  # noqa: B017 - the exact decode error is the SDK's
            await keyless.get_workflow_handle(handle.id).result()
    finally:
        await env.shutdown()


# Search attributes and the UI's summaries/details are for the server and the Web UI to read;
# they hold phases and VM names, never inputs, results or secrets, and are not encrypted.
VISIBLE_ON_PURPOSE = {"searchAttributes", "upsertedSearchAttributes", "userMetadata"}


# A patch marker (workflows/versioning.py) is written by the SDK's core, not through the codec:
# its one payload is the patch's id, which the source code holds anyway.
PATCH_MARKER = "core_patch"


def _payloads(node: object) -> list[dict]:
    found: list[dict] = []
    if isinstance(node, dict):
        if node.get("markerName") == PATCH_MARKER:
            details = _decoded_plain(node)
            listed = [patch.id.encode() for patch in ACTIVE_PATCHES]
            assert details and all(any(i in d for i in listed) for d in details), details
            return found
        if "data" in node and "metadata" in node:
            found.append(node)
        for key, value in node.items():
            if key in VISIBLE_ON_PURPOSE:
                continue
            found.extend(_payloads(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_payloads(value))
    return found


def _decoded_plain(marker: dict) -> list[bytes]:
    return [
        base64.b64decode(p["data"])
        for value in marker.get("details", {}).values()
        for p in value.get("payloads", [])
    ]


def _decoded(raw: object) -> bytes:
    return b"".join(base64.b64decode(p["data"]) for p in _payloads(raw))


async def test_codec_server_decodes_for_the_web_ui() -> None:
    codec = EncryptionCodec(parse_key(KEY))
    (sealed,) = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b"42")])
    origin = "http://127.0.0.1:8233"
    async with TestClient(TestServer(codec_app(codec, [origin]))) as client:
        body = {
            "payloads": [
                {
                    "metadata": {
                        k: base64.b64encode(v).decode() for k, v in sealed.metadata.items()
                    },
                    "data": base64.b64encode(sealed.data).decode(),
                }
            ]
        }
        reply = await client.post("/decode", json=body, headers={"Origin": origin})
        assert reply.status == 200
        assert reply.headers["Access-Control-Allow-Origin"] == origin
        decoded = (await reply.json())["payloads"][0]
        assert base64.b64decode(decoded["data"]) == b"42"
        stranger = await client.post("/decode", json=body, headers={"Origin": "http://evil"})
        assert "Access-Control-Allow-Origin" not in stranger.headers


def test_data_converter_is_plain_without_a_key() -> None:
    assert data_converter(Settings()) is pydantic_data_converter
    assert dataclasses.is_dataclass(data_converter(Settings(payload_key=KEY)))  # type: ignore[arg-type]


async def test_codec_server_speaks_https_with_the_configured_certificate(tmp_path: Path) -> None:
    """Issue 17 point 3: a Web UI served over HTTPS needs its codec endpoint over HTTPS too."""
    import ssl

    from lab.certs import make_lab_tls
    from worker.codec_server import _tls

    tls = make_lab_tls(tmp_path)
    with pytest.raises(SettingsError, match="FAILBACK_CODEC_TLS_CERT"):
        _tls(Settings(codec_tls_cert=str(tls.server_cert)))
    with pytest.raises(SettingsError, match="cannot be used"):
        _tls(Settings(codec_tls_cert=str(tls.server_cert), codec_tls_key=str(tmp_path / "none")))
    context = _tls(Settings(codec_tls_cert=str(tls.server_cert), codec_tls_key=str(tls.server_key)))
    assert context is not None
    codec = EncryptionCodec(parse_key(KEY))
    server = TestServer(codec_app(codec, []), host="127.0.0.1")
    await server.start_server(ssl=context)
    try:
        client_tls = ssl.create_default_context(cafile=str(tls.ca_cert))
        async with aiohttp.ClientSession() as session:
            url = f"https://127.0.0.1:{server.port}/decode"
            async with session.post(url, json={"payloads": []}, ssl=client_tls) as reply:
                assert reply.status == 200
    finally:
        await server.close()
