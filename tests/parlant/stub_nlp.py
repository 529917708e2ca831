"""A test-only NLP service: no LLM, no network. Generators raise; embeddings are zero vectors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from parlant.core.nlp.embedding import Embedder, NullEmbedder
from parlant.core.nlp.generation import (
    SchematicGenerationResult,
    SchematicGenerator,
    StreamingTextGenerator,
)
from parlant.core.nlp.moderation import ModerationService, NoModeration
from parlant.core.nlp.service import NLPService
from parlant.core.nlp.tokenization import EstimatingTokenizer, ZeroEstimatingTokenizer
from typing_extensions import override

T = TypeVar("T")


class NoLLMError(RuntimeError):
    pass


class RefusingSchematicGenerator(SchematicGenerator[T]):
    @override
    async def generate(
        self, prompt: Any, hints: Mapping[str, Any] = {}
    ) -> SchematicGenerationResult[T]:
        raise NoLLMError("the test NLP service has no language model")

    @property
    @override
    def id(self) -> str:
        return "stub/no-llm"

    @property
    @override
    def max_tokens(self) -> int:
        return 8192

    @property
    @override
    def tokenizer(self) -> EstimatingTokenizer:
        return ZeroEstimatingTokenizer()


class StubNLPService(NLPService):
    @property
    @override
    def supports_streaming(self) -> bool:
        return False

    @override
    async def get_schematic_generator(
        self, t: type[T], hints: Any = None
    ) -> SchematicGenerator[T]:
        return RefusingSchematicGenerator[t]()  # type: ignore[valid-type]

    @override
    async def get_streaming_text_generator(
        self, hints: Any = None
    ) -> StreamingTextGenerator:
        raise NotImplementedError("the test NLP service does not stream")

    @override
    async def get_embedder(self, hints: Any = None) -> Embedder:
        return NullEmbedder()

    @override
    async def get_moderation_service(self) -> ModerationService:
        return NoModeration()
