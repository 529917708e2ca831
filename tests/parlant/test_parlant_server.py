"""A real parlant.sdk.Server with the adapter wired in, stopped and started again (subprocesses)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from parlant_supabase_sync.local import LocalSupabase

SCENARIO = Path(__file__).with_name("server_scenario.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_phase(phase: str, env: dict[str, str], state: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(SCENARIO),
            phase,
            str(free_port()),
            str(free_port()),
            str(state),
        ],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"{phase} failed:\n{result.stderr[-4000:]}"


def comparable(value: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(value, sort_keys=True))


@pytest.mark.slow
def test_server_keeps_customers_sessions_events_and_values_across_a_restart(
    supabase: LocalSupabase, tmp_path: Path
) -> None:
    home = tmp_path / "parlant-home"
    home.mkdir()
    env = {**os.environ, **supabase.env(), "PARLANT_HOME": str(home)}
    env.pop("PYTEST_CURRENT_TEST", None)
    state = tmp_path / "state.json"

    run_phase("create", env, state)
    run_phase("read", env, state)

    data = json.loads(state.read_text())
    created, read = data["created"], data["read"]
    assert comparable(read["customer"]) == comparable(created["customer"])
    assert read["customer"]["tags"] and read["customer"]["metadata"] == {
        "email": "ada@example.test"
    }
    assert read["session"]["id"] == created["session"]["id"]
    assert read["session"]["customer_id"] == created["customer"]["id"]
    assert comparable({"e": read["events"]}) == comparable({"e": created["events"]})
    offsets = [e["offset"] for e in read["events"]]
    assert offsets == list(range(len(offsets))) and len(offsets) >= 5
    # The engine's own status events (emitted through EventEmitterFactory) reached the adapter.
    assert any(
        e["kind"] == "status" and e["source"] == "ai_agent" for e in read["events"]
    )
    assert read["value"]["data"] == {"tier": 3}
    assert read["variable"]["context_variable"] == created["variable"]
    assert read["variable"]["key_value_pairs"][created["customer"]["id"]]["data"] == {
        "tier": 3
    }

    leftovers = {p.name for p in home.rglob("*.json")}
    assert not leftovers & {"sessions.json", "customers.json", "context_variables.json"}
    # And the rows really are in the database, not in a store Parlant built itself.
    assert supabase.requests.count(path_contains="parlant_sessions_events") > 0


@pytest.mark.slow
def test_configure_container_recipe_sends_engine_events_to_the_adapter(
    supabase: LocalSupabase, tmp_path: Path
) -> None:
    home = tmp_path / "parlant-home"
    home.mkdir()
    env = {**os.environ, **supabase.env(), "PARLANT_HOME": str(home)}
    env.pop("PYTEST_CURRENT_TEST", None)
    state = tmp_path / "state.json"
    run_phase("configure", env, state)
    result = json.loads(state.read_text())["configure"]
    assert result["adapter_customer"] == "Configured"
    assert [(e["kind"], e["source"]) for e in result["api_events"]] == [
        (e["kind"], e["source"]) for e in result["adapter_events"]
    ]
    assert ("status", "ai_agent") in {
        (e["kind"], e["source"]) for e in result["adapter_events"]
    }
