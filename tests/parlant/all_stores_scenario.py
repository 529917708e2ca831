"""Every Parlant store on the adapter, across restarts on fresh PARLANT_HOMEs (test_all_stores.py).

usage: all_stores_scenario.py sdk-create|sdk-read|module-read PORT TOOL_PORT STATE_JSON
  sdk-create:  a ``parlant.sdk.Server`` with ``supabase_stores(every_store=True)`` and
               ``server_options()``: an agent, tags, guidelines, a relationship, a journey, a
               canned response, a capability, a customer, a session with events and a context
               variable value, made through the HTTP API; STATE_JSON gets what the API returned.
  sdk-read:    the same server again: everything read back through the HTTP API.
  module-read: Parlant's server application the way ``parlant-server run --module
               parlant_supabase_sync.parlant_module`` builds it (its load_app; requests through
               ASGI), reading the same things back.
Each phase also records the files it left under PARLANT_HOME. SUPABASE_URL / SUPABASE_KEY and
PARLANT_HOME come from the environment; nothing imports parlant before ``main`` runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from server_scenario import AGENT_ID, wait_ready
from server_scenario import create as create_conversation
from server_scenario import read as read_conversation


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
    response = await client.post(path, json=body)
    assert response.status_code < 300, f"POST {path}: {response.status_code} {response.text}"
    return response.json()


async def get(client: httpx.AsyncClient, path: str) -> Any:
    response = await client.get(path)
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    return response.json()


# With the vector stores on Supabase too (test_vector_restart.py) the scenario adds a glossary
# term, which lives only in a vector database, and embeds with the demo's hashing embedder
# (`sql --vectors 64`; the stub's zero vectors have no cosine distance).
VECTORS = os.environ.get("PARLANT_SUPABASE_VECTOR_STORE") == "supabase"


def nlp_service() -> Any:
    if VECTORS:
        from parlant_supabase_sync.demo_full import offline_nlp_service

        return offline_nlp_service()
    from stub_nlp import StubNLPService

    return StubNLPService()


async def create(client: httpx.AsyncClient) -> dict[str, Any]:
    conversation = await create_conversation(client)
    tag = await post(client, "/tags", {"name": "refunds"})
    first = await post(
        client,
        "/guidelines",
        {
            "condition": "the customer asks for a refund",
            "action": "ask for the order number",
            "tags": [tag["id"]],
        },
    )
    second = await post(
        client,
        "/guidelines",
        {"condition": "the order number is known", "action": "look the order up"},
    )
    relationship = await post(
        client,
        "/relationships",
        {
            "source_guideline": first["id"],
            "target_guideline": second["id"],
            "kind": "entailment",
        },
    )
    journey = await post(
        client,
        "/journeys",
        {
            "title": "Refund",
            "description": "Walk the customer through a refund",
            "conditions": ["the customer wants their money back"],
            "tags": [tag["id"]],
        },
    )
    canned = await post(
        client, "/canned_responses", {"value": "Your refund is on its way.", "fields": []}
    )
    capability = await post(
        client,
        "/capabilities",
        {
            "title": "Refunds",
            "description": "Refund an order",
            "signals": ["refund", "money back"],
        },
    )
    ids = {
        "agent": AGENT_ID,
        "tag": tag["id"],
        "guidelines": [first["id"], second["id"]],
        "relationship": relationship["id"],
        "journey": journey["id"],
        "canned_response": canned["id"],
        "capability": capability["id"],
    }
    if VECTORS:
        term = {"name": "Ride Pass", "description": "a yearly plan", "synonyms": ["pass"]}
        ids["term"] = (await post(client, "/terms", {**term, "tags": [tag["id"]]}))["id"]
    return {"conversation": conversation, "ids": ids, **await read_entities(client, {"ids": ids})}


async def read_entities(client: httpx.AsyncClient, created: dict[str, Any]) -> dict[str, Any]:
    ids = created["ids"]
    terms = {"term": await get(client, f"/terms/{ids['term']}")} if "term" in ids else {}
    return {
        **terms,
        "agent": await get(client, f"/agents/{ids['agent']}"),
        "tag": await get(client, f"/tags/{ids['tag']}"),
        "guidelines": [await get(client, f"/guidelines/{g}") for g in ids["guidelines"]],
        "relationship": await get(client, f"/relationships/{ids['relationship']}"),
        "journey": await get(client, f"/journeys/{ids['journey']}"),
        "canned_response": await get(client, f"/canned_responses/{ids['canned_response']}"),
        "capability": await get(client, f"/capabilities/{ids['capability']}"),
        "lists": {
            "tags": sorted(t["id"] for t in await get(client, "/tags")),
            "journeys": sorted(j["id"] for j in await get(client, "/journeys")),
            "capabilities": sorted(c["id"] for c in await get(client, "/capabilities")),
        },
    }


async def read(client: httpx.AsyncClient, created: dict[str, Any]) -> dict[str, Any]:
    return {
        "conversation": await read_conversation(client, created["conversation"]),
        **await read_entities(client, created),
    }


def home_files() -> list[str]:
    home = Path(os.environ["PARLANT_HOME"])
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())


async def sdk_phase(phase: str, port: int, tool_port: int, state: dict[str, Any]) -> Any:
    import parlant.sdk as p

    from parlant_supabase_sync.wiring import supabase_stores

    nlp = nlp_service()
    async with supabase_stores(every_store=True, allow_migration=True) as stores:
        ready = asyncio.Event()

        async def serve() -> None:
            async with p.Server(
                host="127.0.0.1",
                port=port,
                tool_service_port=tool_port,
                nlp_service=lambda _container: nlp,
                **stores.server_options(),
            ) as server:
                if phase == "sdk-create":
                    await server.create_agent(name="Scenario", description="test", id=AGENT_ID)
                ready.set()

        task = asyncio.create_task(serve())
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                await wait_ready(client)
                await ready.wait()
                if phase == "sdk-create":
                    return await create(client)
                return await read(client, state["sdk-create"])
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass


async def module_phase(state: dict[str, Any]) -> Any:
    import parlant.bin.server as parlant_server
    from parlant.bin.server import StartupParameters, load_app
    from parlant.core.background_tasks import BackgroundTaskService

    async def no_legacy_data_check() -> None:
        # parlant-server's pre-flight check looks for pre-3.0 JSON/Chroma data in PARLANT_HOME
        # (a fresh one here) and imports chromadb to do it, which Parlant's `chroma` extra
        # installs and this environment does not have; everything after it runs as is.
        return None

    parlant_server.check_required_schema_migrations = no_legacy_data_check

    nlp = nlp_service()

    async def module_nlp_service(_container: Any) -> Any:
        return nlp

    params = StartupParameters(
        host="127.0.0.1",
        port=0,
        nlp_service=module_nlp_service,
        log_level="info",
        modules=["parlant_supabase_sync.parlant_module"],
        migrate=False,
    )
    async with load_app(params) as (app, container):
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://parlant") as client:
                return await read(client, state["sdk-create"])
        finally:
            # What parlant-server's serve_app does when uvicorn stops.
            await container[BackgroundTaskService].cancel_all(reason="Server shutting down")


async def main(phase: str, port: int, tool_port: int, state_path: Path) -> None:
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    if phase == "module-read":
        result = await module_phase(state)
    else:
        result = await sdk_phase(phase, port, tool_port, state)
    state[phase] = result
    state[f"{phase}-files"] = home_files()
    state_path.write_text(json.dumps(state))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])))
