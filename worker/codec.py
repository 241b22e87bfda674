"""Optional payload encryption: workflow inputs, results and signals are encrypted before they
reach Temporal, so its history (and anyone reading the database) sees only ciphertext.

Enabled by FAILBACK_PAYLOAD_KEY (32 random bytes, base64). The Web UI shows the payloads in
clear only through the codec server (`failback codec-server`), which holds the key.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from worker.settings import SettingsError

ENCODING = b"binary/encrypted"
KEY_ID_HEADER = "encryption-key-id"
NONCE_BYTES = 12


class CodecKeyError(SettingsError):
    pass


def parse_key(encoded: str) -> bytes:
    try:
        key = base64.b64decode(encoded, validate=True)
    except ValueError as err:
        raise CodecKeyError(
            "FAILBACK_PAYLOAD_KEY is not base64; make one with "
            '`python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"`'
        ) from err
    if len(key) != 32:
        raise CodecKeyError(f"FAILBACK_PAYLOAD_KEY must decode to 32 bytes, not {len(key)}")
    return key


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over each serialized payload; the key id travels in the payload metadata so
    that a rotated key can still decode what an earlier one encrypted (with both configured)."""

    def __init__(self, key: bytes, key_id: str = "default") -> None:
        self._key_id = key_id
        self._ciphers = {key_id: AESGCM(key)}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decrypt(p) for p in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._key_id].encrypt(nonce, payload.SerializeToString(), None)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_HEADER: self._key_id.encode()},
            data=nonce + sealed,
        )

    def _decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_HEADER, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecKeyError(f"payload encrypted with unknown key id {key_id!r}")
        data = payload.data
        clear = Payload()
        clear.ParseFromString(cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], None))
        return clear
