"""A codec server for the Temporal Web UI (its "codec endpoint" setting): POST /encode and
/decode with {"payloads": [...]} in protobuf JSON, answered in kind, with CORS for the UI."""

from __future__ import annotations

import ssl

from aiohttp import web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from worker.settings import Settings, SettingsError

CORS_HEADERS = "Content-Type,X-Namespace,Authorization"


def codec_app(codec: PayloadCodec, allowed_origins: list[str]) -> web.Application:
    async def cors(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin and origin in allowed_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = "POST"
            response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS

    def handler(encode: bool):
        async def handle(request: web.Request) -> web.Response:
            payloads = json_format.Parse(await request.text(), Payloads())
            method = codec.encode if encode else codec.decode
            result = Payloads(payloads=await method(list(payloads.payloads)))
            return web.Response(
                text=json_format.MessageToJson(result), content_type="application/json"
            )

        return handle

    async def preflight(request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.on_response_prepare.append(cors)
    app.router.add_post("/encode", handler(True))
    app.router.add_post("/decode", handler(False))
    app.router.add_route("OPTIONS", "/{tail:.*}", preflight)
    return app


def main() -> None:
    """`python -m worker.codec_server [PORT] [ALLOWED_ORIGIN ...]` with the worker's settings."""
    import sys

    from worker.codec import EncryptionCodec, parse_key
    from worker.settings import load_settings

    try:
        settings = load_settings()
        _tls(settings)
    except SettingsError as err:
        sys.exit(f"failback codec server: {err}")
    if settings.payload_key is None:
        sys.exit("failback codec server: set FAILBACK_PAYLOAD_KEY (the same key as the worker's)")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8081
    origins = sys.argv[2:] or [settings.temporal_ui_url or "http://localhost:8233"]
    codec = EncryptionCodec(
        parse_key(settings.payload_key.get_secret_value()), settings.payload_key_id
    )
    web.run_app(codec_app(codec, origins), host="127.0.0.1", port=port, ssl_context=_tls(settings))


def _tls(settings: Settings) -> ssl.SSLContext | None:
    """HTTPS when the Web UI is served over HTTPS (a browser refuses a plain codec endpoint
    from an HTTPS page): the certificate and key of FAILBACK_CODEC_TLS_CERT / _KEY."""
    if settings.codec_tls_cert is None and settings.codec_tls_key is None:
        return None
    if settings.codec_tls_cert is None or settings.codec_tls_key is None:
        raise SettingsError("HTTPS for the codec server needs FAILBACK_CODEC_TLS_CERT and _KEY")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.codec_tls_cert, settings.codec_tls_key)
    except (OSError, ssl.SSLError) as err:
        raise SettingsError(f"the codec server's certificate or key cannot be used: {err}") from err
    return context


if __name__ == "__main__":
    main()
