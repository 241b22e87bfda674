"""Register the failback's custom search attributes on a Temporal server that lacks them."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client

from workflows.search_attributes import ALL


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in ALL
            },
        )
    )


def dev_server_flags() -> list[str]:
    """`temporal server start-dev` registers them itself with these flags."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags
