"""Runs a real ``parlant.sdk.Server`` on the adapter, in its own process (used by test_server.py).

``PARLANT_HOME`` is read when ``parlant.sdk`` is imported, so the test sets it in this process's
environment, and nothing here imports parlant before ``main`` runs.

usage: server_scenario.py create|read|configure PORT TOOL_PORT STATE_JSON
  create:    builds a customer (with a tag), a session and events through the HTTP API, and a
             context-variable value, then writes what the API returned to STATE_JSON.
  read:      reads all of it back through the HTTP API and writes it to STATE_JSON.
  configure: the `configure_container` route documented in wiring.py; a customer message makes
             the engine emit status events, and STATE_JSON gets what the adapter's store holds.
SUPABASE_URL / SUPABASE_KEY come from the environment.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx

AGENT_ID = "scenario_agent"


async def wait_ready(client: httpx.AsyncClient, deadline: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        try:
            if (await client.get("/agents")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if loop.time() > end:
            raise TimeoutError("the Parlant server did not become ready")
        await asyncio.sleep(0.1)


async def settled_events(
    client: httpx.AsyncClient, session_id: str
) -> list[dict[str, Any]]:
    """Events once the engine has stopped adding status events (it fails fast without an LLM)."""
    previous: list[dict[str, Any]] | None = None
    for _ in range(100):
        response = await client.get(f"/sessions/{session_id}/events")
        response.raise_for_status()
        events = response.json()
        if (
            previous is not None
            and events == previous
            and any(
                e["kind"] == "status" and e["data"].get("status") in ("error", "ready")
                for e in events
            )
        ):
            return list(events)
        previous = events
        await asyncio.sleep(0.3)
    raise TimeoutError("events kept changing")


async def create(client: httpx.AsyncClient) -> dict[str, Any]:
    tag = (await client.post("/tags", json={"name": "vip"})).raise_for_status().json()
    customer = (
        (
            await client.post(
                "/customers",
                json={
                    "name": "Ada",
                    "metadata": {"email": "ada@example.test"},
                    "tags": [tag["id"]],
                },
            )
        )
        .raise_for_status()
        .json()
    )
    session = (
        (
            await client.post(
                "/sessions",
                json={
                    "agent_id": AGENT_ID,
                    "customer_id": customer["id"],
                    "title": "scenario",
                },
            )
        )
        .raise_for_status()
        .json()
    )
    for i in range(3):
        (
            await client.post(
                f"/sessions/{session['id']}/events",
                json={
                    "kind": "message",
                    "source": "human_agent",
                    "message": f"hello {i}",
                    "participant": {"display_name": "Grace"},
                },
            )
        ).raise_for_status()
    (
        await client.post(
            f"/sessions/{session['id']}/events",
            json={
                "kind": "message",
                "source": "customer",
                "message": "hi, I need help",
            },
        )
    ).raise_for_status()
    variable = (
        (
            await client.post(
                "/context-variables", json={"name": "plan", "description": "plan"}
            )
        )
        .raise_for_status()
        .json()
    )
    value = (
        (
            await client.put(
                f"/context-variables/{variable['id']}/{customer['id']}",
                json={"data": {"tier": 3}},
            )
        )
        .raise_for_status()
        .json()
    )
    return {
        "customer": customer,
        "session": session,
        "events": await settled_events(client, session["id"]),
        "variable": variable,
        "value": value,
    }


async def read(client: httpx.AsyncClient, created: dict[str, Any]) -> dict[str, Any]:
    customer_id = created["customer"]["id"]
    session_id = created["session"]["id"]
    variable_id = created["variable"]["id"]
    return {
        "customer": (await client.get(f"/customers/{customer_id}"))
        .raise_for_status()
        .json(),
        "session": (await client.get(f"/sessions/{session_id}"))
        .raise_for_status()
        .json(),
        "events": (await client.get(f"/sessions/{session_id}/events"))
        .raise_for_status()
        .json(),
        "variable": (await client.get(f"/context-variables/{variable_id}"))
        .raise_for_status()
        .json(),
        "value": (await client.get(f"/context-variables/{variable_id}/{customer_id}"))
        .raise_for_status()
        .json(),
    }


async def configured(client: httpx.AsyncClient, stores: Any) -> dict[str, Any]:
    customer = (
        (await client.post("/customers", json={"name": "Configured"}))
        .raise_for_status()
        .json()
    )
    session = (
        (
            await client.post(
                "/sessions", json={"agent_id": AGENT_ID, "customer_id": customer["id"]}
            )
        )
        .raise_for_status()
        .json()
    )
    (
        await client.post(
            f"/sessions/{session['id']}/events",
            json={"kind": "message", "source": "customer", "message": "hello"},
        )
    ).raise_for_status()
    api_events = await settled_events(client, session["id"])
    stored = await stores.sessions.list_events(session["id"])
    return {
        "api_events": api_events,
        "adapter_events": [
            {"kind": e.kind.value, "source": e.source.value} for e in stored
        ],
        "adapter_customer": (await stores.customers.read_customer(customer["id"])).name,
    }


async def main(phase: str, port: int, tool_port: int, state_path: Path) -> None:
    import parlant.sdk as p
    from parlant.core.agents import AgentStore
    from parlant.core.context_variables import ContextVariableStore
    from parlant.core.customers import CustomerStore
    from parlant.core.emission.event_publisher import EventPublisherFactory
    from parlant.core.emissions import EventEmitterFactory
    from parlant.core.sessions import SessionStore

    from parlant_supabase_sync.wiring import supabase_stores

    sys.path.insert(0, str(Path(__file__).parent))
    from stub_nlp import StubNLPService

    async with supabase_stores(allow_migration=True) as stores:
        agent_ready = asyncio.Event()

        async def configure_container(c: p.Container) -> p.Container:
            # The recipe of wiring.py's docstring, verbatim.
            c[SessionStore] = stores.sessions
            c[CustomerStore] = stores.customers
            c[ContextVariableStore] = stores.variables
            c[EventEmitterFactory] = EventPublisherFactory(
                agent_store=c[AgentStore], session_store=stores.sessions
            )
            return c

        wiring: dict[str, Any] = (
            {"configure_container": configure_container}
            if phase == "configure"
            else {
                "session_store": stores.sessions,
                "customer_store": stores.customers,
                "variable_store": stores.variables,
            }
        )

        async def serve() -> None:
            async with p.Server(
                host="127.0.0.1",
                port=port,
                tool_service_port=tool_port,
                nlp_service=lambda _container: StubNLPService(),
                **wiring,
            ) as server:
                await server.create_agent(
                    name="Scenario", description="test agent", id=AGENT_ID
                )
                agent_ready.set()

        server_task = asyncio.create_task(serve())
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=30
            ) as client:
                await wait_ready(client)
                await agent_ready.wait()
                if phase == "create":
                    result = await create(client)
                elif phase == "configure":
                    result = await configured(client, stores)
                else:
                    result = await read(
                        client, json.loads(state_path.read_text())["created"]
                    )
        finally:
            server_task.cancel()
            try:
                await server_task
            except asyncio.CancelledError:
                pass
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    state[{"create": "created", "read": "read"}.get(phase, phase)] = result
    state_path.write_text(json.dumps(state))


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
    )
