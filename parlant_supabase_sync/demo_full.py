"""``parlant-supabase-sync demo --full``: all of Parlant on the adapter, across a restart.

A real ``parlant.sdk.Server`` runs with every store on Supabase
(``supabase_stores(every_store=True)`` and ``server_options()``) and an offline NLP service (no
language model, no network; a deterministic hashing embedder). Through the server's own stores
it creates an agent with guidelines, a glossary term, a journey, a canned response, a capability
and a conversation (customer, session, messages, a context-variable value). The server is
stopped, its PARLANT_HOME emptied, and a new server reads everything back; then the documents are
deleted again (the stores' metadata stays, as after any Parlant run).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from parlant.core.nlp.embedding import Embedder, EmbeddingResult

    from parlant_supabase_sync.settings import SupabaseSettings

__all__ = [
    "EMBEDDING_DIMS",
    "FullReport",
    "failures",
    "offline_nlp_service",
    "print_full_report",
    "run_full",
]

_T = TypeVar("_T")

#: Dimensions of the demo's hashing embedder (`sql --vectors 64` makes its vector tables).
EMBEDDING_DIMS = 64

#: What the scenario makes, in the order the report lists it.
KINDS = (
    "tag",
    "agent",
    "guidelines",
    "glossary term",
    "journey",
    "canned response",
    "capability",
    "customer",
    "session",
    "events",
    "variable value",
)


@dataclass
class FullReport:
    """Per kind of document: how many were made, and whether the restarted server had them."""

    made: dict[str, int] = field(default_factory=dict)
    kept: dict[str, bool] = field(default_factory=dict)
    home_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    vectors_in_memory: bool = True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _home() -> Path:
    """PARLANT_HOME for the run: Parlant reads it once, when its server module is imported."""
    if "parlant.bin.server" in sys.modules:  # pragma: no cover - library use after Parlant ran
        from parlant.bin.server import PARLANT_HOME_DIR

        return Path(PARLANT_HOME_DIR)
    home = Path(tempfile.mkdtemp(prefix="parlant-supabase-sync-demo-home-"))
    os.environ["PARLANT_HOME"] = str(home)
    return home


def offline_nlp_service() -> Any:
    """An NLP service with no language model: generators raise, embeddings are hashed words."""
    from parlant.core.nlp.embedding import Embedder, EmbeddingResult
    from parlant.core.nlp.generation import SchematicGenerator, StreamingTextGenerator
    from parlant.core.nlp.moderation import ModerationService, NoModeration
    from parlant.core.nlp.service import NLPService
    from parlant.core.nlp.tokenization import EstimatingTokenizer, ZeroEstimatingTokenizer

    class HashingEmbedder(Embedder):
        """Bag of words hashed into 64 dimensions, normalised: same text, same vector."""

        async def embed(self, texts: list[str], hints: Mapping[str, Any] = {}) -> EmbeddingResult:
            return EmbeddingResult(vectors=[_hashed(text, self.dimensions) for text in texts])

        @property
        def id(self) -> str:
            return "parlant-supabase-sync/hashing-64"

        @property
        def max_tokens(self) -> int:
            return 8192

        @property
        def tokenizer(self) -> EstimatingTokenizer:
            return ZeroEstimatingTokenizer()

        @property
        def dimensions(self) -> int:
            return EMBEDDING_DIMS

    class NoLanguageModel(SchematicGenerator[_T]):  # type: ignore[type-var]
        async def generate(self, prompt: Any, hints: Mapping[str, Any] = {}) -> Any:
            raise RuntimeError("the demo's offline NLP service has no language model")

        @property
        def id(self) -> str:
            return "parlant-supabase-sync/no-llm"

        @property
        def max_tokens(self) -> int:
            return 8192

        @property
        def tokenizer(self) -> EstimatingTokenizer:
            return ZeroEstimatingTokenizer()

    class OfflineNLPService(NLPService):
        @property
        def supports_streaming(self) -> bool:
            return False

        async def get_schematic_generator(
            self, t: Any, hints: Any = None
        ) -> SchematicGenerator[Any]:
            return NoLanguageModel[t]()

        async def get_streaming_text_generator(self, hints: Any = None) -> StreamingTextGenerator:
            raise RuntimeError("the demo's offline NLP service does not stream")

        async def get_embedder(self, hints: Any = None) -> Embedder:
            return HashingEmbedder()

        async def get_moderation_service(self) -> ModerationService:
            return NoModeration()

    return OfflineNLPService()


def _hashed(text: str, dimensions: int) -> list[float]:
    vector = [0.0] * dimensions
    for word in text.lower().split():
        digest = hashlib.sha256(word.encode("utf-8")).digest()
        vector[digest[0] % dimensions] += 1.0 if digest[1] % 2 else -1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


async def _with_server(settings: SupabaseSettings, work: Any) -> Any:
    """Run `work(container)` inside a real Parlant server with every store on Supabase.

    Leaving ``p.Server``'s block is what starts the server, and it then serves until cancelled:
    the work runs inside the block, the server is stopped once it answers its health check.
    """
    import parlant.sdk as p

    from parlant_supabase_sync.wiring import supabase_stores

    nlp = offline_nlp_service()
    servers: list[Any] = []
    result: list[Any] = []

    async def serve() -> None:
        async with (
            supabase_stores(settings, every_store=True, allow_migration=False) as stores,
            p.Server(
                host="127.0.0.1",
                port=_free_port(),
                tool_service_port=_free_port(),
                nlp_service=lambda _container: nlp,
                log_level=p.LogLevel.WARNING,
                **stores.server_options(),
            ) as server,
        ):
            servers.append(server)
            result.append(await work(server.container))

    task = asyncio.create_task(serve())
    try:
        while not (task.done() or (servers and servers[0].ready.is_set())):
            await asyncio.wait([task], timeout=0.1)
        if task.done():
            task.result()  # the error that ended the server early
            raise RuntimeError("the Parlant server stopped before it was ready")
        return result[0]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _create(container: Any) -> dict[str, Any]:
    from parlant.core.agents import AgentStore
    from parlant.core.canned_responses import CannedResponseStore
    from parlant.core.capabilities import CapabilityStore
    from parlant.core.context_variables import ContextVariableStore
    from parlant.core.customers import CustomerStore
    from parlant.core.glossary import GlossaryStore
    from parlant.core.guidelines import GuidelineStore
    from parlant.core.journeys import JourneyStore
    from parlant.core.sessions import EventKind, EventSource, SessionStore
    from parlant.core.tags import Tag, TagStore

    tag = await container[TagStore].create_tag("demo-full")
    agent = await container[AgentStore].create_agent(
        "Ada's Bikes support", description="helps with orders and refunds", tags=[tag.id]
    )
    agent_tag = Tag.for_agent_id(agent.id).id
    guidelines = container[GuidelineStore]
    refund = await guidelines.create_guideline(
        condition="the customer asks for a refund", action="ask for the order number"
    )
    lookup = await guidelines.create_guideline(
        condition="the order number is known", action="look the order up"
    )
    term = await container[GlossaryStore].create_term(
        name="Ride Pass", description="a yearly service plan", synonyms=["pass"], tags=[agent_tag]
    )
    journey = await container[JourneyStore].create_journey(
        title="Refund",
        description="from request to refund",
        conditions=[refund.id],
        tags=[agent_tag],
    )
    canned = await container[CannedResponseStore].create_canned_response(
        value="Your refund is on its way.", tags=[agent_tag]
    )
    capability = await container[CapabilityStore].create_capability(
        title="Refunds", description="refund an order", signals=["refund", "money back"]
    )
    customer = await container[CustomerStore].create_customer("Grace", extra={"plan": "pass"})
    sessions = container[SessionStore]
    session = await sessions.create_session(customer.id, agent.id, title="a refund")
    for i, (source, text) in enumerate(
        [
            (EventSource.CUSTOMER, "hi, I would like a refund"),
            (EventSource.AI_AGENT, "Sure: what is your order number?"),
            (EventSource.CUSTOMER, "order 1234"),
        ]
    ):
        await sessions.create_event(
            session_id=session.id,
            source=source,
            kind=EventKind.MESSAGE,
            trace_id=f"demo-full-{i}",
            data={"message": text},
        )
    variables = container[ContextVariableStore]
    variable = await variables.create_variable("plan", description="the customer's plan")
    value = await variables.update_value(variable.id, customer.id, {"tier": "pass"})
    return {
        "tag": [tag],
        "agent": [agent],
        "guidelines": [refund, lookup],
        "glossary term": [term],
        "journey": [journey],
        "canned response": [canned],
        "capability": [capability],
        "customer": [customer],
        "session": [session],
        "events": list(await sessions.list_events(session.id)),
        "variable value": [(variable, value)],
    }


async def _read(container: Any, made: Mapping[str, list[Any]]) -> dict[str, list[Any] | None]:
    """Each kind read back by id (None: the restarted server does not have it)."""
    from parlant.core.agents import AgentStore
    from parlant.core.canned_responses import CannedResponseStore
    from parlant.core.capabilities import CapabilityStore
    from parlant.core.common import ItemNotFoundError
    from parlant.core.context_variables import ContextVariableStore
    from parlant.core.customers import CustomerStore
    from parlant.core.glossary import GlossaryStore
    from parlant.core.guidelines import GuidelineStore
    from parlant.core.journeys import JourneyStore
    from parlant.core.sessions import SessionStore
    from parlant.core.tags import TagStore

    readers: dict[str, Any] = {
        "tag": lambda x: container[TagStore].read_tag(x.id),
        "agent": lambda x: container[AgentStore].read_agent(x.id),
        "guidelines": lambda x: container[GuidelineStore].read_guideline(x.id),
        "glossary term": lambda x: container[GlossaryStore].read_term(x.id),
        "journey": lambda x: container[JourneyStore].read_journey(x.id),
        "canned response": lambda x: container[CannedResponseStore].read_canned_response(x.id),
        "capability": lambda x: container[CapabilityStore].read_capability(x.id),
        "customer": lambda x: container[CustomerStore].read_customer(x.id),
        "session": lambda x: container[SessionStore].read_session(x.id),
    }
    read: dict[str, list[Any] | None] = {}
    for kind, reader in readers.items():
        try:
            read[kind] = [await reader(item) for item in made[kind]]
        except ItemNotFoundError:
            read[kind] = None
    session = made["session"][0]
    read["events"] = list(await container[SessionStore].list_events(session.id)) or None
    variable = made["variable value"][0][0]
    found = await container[ContextVariableStore].read_value(variable.id, made["customer"][0].id)
    read["variable value"] = [(variable, found)] if found is not None else None
    return read


async def _delete(container: Any, made: Mapping[str, list[Any]]) -> None:
    """Remove what the scenario made (dependents first)."""
    from parlant.core.agents import AgentStore
    from parlant.core.canned_responses import CannedResponseStore
    from parlant.core.capabilities import CapabilityStore
    from parlant.core.common import ItemNotFoundError
    from parlant.core.context_variables import ContextVariableStore
    from parlant.core.customers import CustomerStore
    from parlant.core.glossary import GlossaryStore
    from parlant.core.guidelines import GuidelineStore
    from parlant.core.journeys import JourneyStore
    from parlant.core.sessions import SessionStore
    from parlant.core.tags import TagStore

    steps: list[Any] = [
        lambda: container[SessionStore].delete_session(made["session"][0].id),
        lambda: container[ContextVariableStore].delete_variable(made["variable value"][0][0].id),
        lambda: container[CustomerStore].delete_customer(made["customer"][0].id),
        lambda: container[JourneyStore].delete_journey(made["journey"][0].id),
        lambda: container[GlossaryStore].delete_term(made["glossary term"][0].id),
        lambda: container[CannedResponseStore].delete_canned_response(
            made["canned response"][0].id
        ),
        lambda: container[CapabilityStore].delete_capability(made["capability"][0].id),
        *(
            (lambda g=g: container[GuidelineStore].delete_guideline(g.id))
            for g in made["guidelines"]
        ),
        lambda: container[AgentStore].delete_agent(made["agent"][0].id),
        lambda: container[TagStore].delete_tag(made["tag"][0].id),
    ]
    for step in steps:
        try:
            await step()
        except ItemNotFoundError:
            pass  # not kept across the restart (reported), or removed with its owner


def _empty(home: Path) -> None:
    for child in home.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def run_full(settings: SupabaseSettings, say: Any) -> FullReport:
    """Create, restart on an emptied PARLANT_HOME, read back and compare, delete."""
    home = _home()
    report = FullReport()
    say("starting a Parlant server with every store on Supabase (offline NLP service)…")
    # Parlant prints its banner and progress bars to stdout: they go to stderr with the
    # demo's own progress, so stdout carries the report only.
    with contextlib.redirect_stdout(sys.stderr):
        made: dict[str, list[Any]] = asyncio.run(_with_server(settings, _create))
    report.made = {kind: len(made[kind]) for kind in KINDS}
    report.home_files = sorted(p.name for p in home.rglob("*") if p.is_file())
    say("stopping it, emptying PARLANT_HOME, starting a new server and reading back…")
    _empty(home)

    async def read_then_delete(container: Any) -> dict[str, list[Any] | None]:
        read = await _read(container, made)
        await _delete(container, made)
        return read

    with contextlib.redirect_stdout(sys.stderr):
        read = asyncio.run(_with_server(settings, read_then_delete))
    for kind in KINDS:
        report.kept[kind] = read[kind] == made[kind]
    report.vectors_in_memory = settings.vector_store == "memory"
    if report.vectors_in_memory:
        report.notes.append(
            "the vector databases were in memory (PARLANT_SUPABASE_VECTOR_STORE=memory): "
            "glossary terms live only there, so they are lost on restart; set it to "
            f"`supabase` after running `parlant-supabase-sync sql --vectors {EMBEDDING_DIMS}`"
        )
    else:
        report.notes.append("the vector databases were on Supabase (pgvector)")
    return report


def failures(report: FullReport) -> list[str]:
    """The kinds the restarted server did not have (with in-memory vectors the glossary is
    expected to be lost: a note, not a failure)."""
    return [
        kind
        for kind, kept in report.kept.items()
        if not kept and not (kind == "glossary term" and report.vectors_in_memory)
    ]


def print_full_report(report: FullReport, mode: str, out: Any) -> None:
    print(f"parlant-supabase-sync demo --full: OK ({mode})", file=out)
    print("\na Parlant server wrote, a new one on an empty PARLANT_HOME read back:", file=out)
    for kind in KINDS:
        kept = "read back, equal" if report.kept.get(kind) else "not kept"
        print(f"  {kind:<16} {report.made.get(kind, 0):>3}  {kept}", file=out)
    files = ", ".join(report.home_files) or "nothing"
    print(f"\nleft in PARLANT_HOME by the first server: {files}", file=out)
    for note in report.notes:
        print(f"note: {note}", file=out)
    print("the documents were deleted afterwards (the stores' metadata stays)", file=out)
