"""A deterministic hashing embedder and helpers shared by the vector tests."""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lagom import Container
from parlant.adapters.vector_db.transient import TransientVectorDatabase
from parlant.core.nlp.embedding import Embedder, EmbeddingResult
from parlant.core.nlp.tokenization import EstimatingTokenizer

from parlant_supabase_sync.transport import Transport
from parlant_supabase_sync.vector_facade import SupabaseVectorDatabase


def unique_prefix() -> str:
    return "vt" + uuid.uuid4().hex[:10] + "_"


def hash_vector(text: str, dims: int) -> list[float]:
    """Bag of words hashed into ``dims`` buckets (texts sharing words are near), normalised.

    Components are multiples of 1/8 so float32 (Transient) and float8/halfvec agree closely."""
    vector = [0.0] * dims
    for word in re.findall(r"\w+", text.lower()) or [""]:
        digest = hashlib.sha256(word.encode()).digest()
        bucket = int.from_bytes(digest[:4], "big") % dims
        vector[bucket] += 1.0 if digest[4] % 2 else -1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


class WordTokenizer(EstimatingTokenizer):
    """One token per word (Parlant's query chunking divides by the token count)."""

    async def estimate_token_count(self, prompt: str) -> int:
        return max(len(prompt.split()), 1)


class HashingEmbedder(Embedder):
    """Deterministic embedder of fixed dimensions; counts the texts it embeds."""

    DIMS = 64

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._tokenizer = WordTokenizer()

    async def embed(self, texts: list[str], hints: Mapping[str, Any] = {}) -> EmbeddingResult:
        self.calls.extend(texts)
        return EmbeddingResult(vectors=[hash_vector(t, self.DIMS) for t in texts])

    @property
    def id(self) -> str:
        return f"hashing-{self.DIMS}"

    @property
    def max_tokens(self) -> int:
        return 8192

    @property
    def tokenizer(self) -> EstimatingTokenizer:
        return self._tokenizer

    @property
    def dimensions(self) -> int:
        return self.DIMS


class TieFreeEmbedder(HashingEmbedder):
    """Like HashingEmbedder plus a small component hashed from the whole text, so different
    texts are (almost surely) at different distances: Parlant's stores sort hits stably by
    distance, and Transient orders tied hits arbitrarily."""

    async def embed(self, texts: list[str], hints: Mapping[str, Any] = {}) -> EmbeddingResult:
        self.calls.extend(texts)
        vectors = []
        for text in texts:
            words = hash_vector(text, self.DIMS)
            digest = hashlib.sha256(text.encode()).hexdigest()
            whole = hash_vector(" ".join(digest[i : i + 4] for i in range(0, 64, 4)), self.DIMS)
            mixed = [w + 0.05 * x for w, x in zip(words, whole, strict=True)]
            norm = math.sqrt(sum(x * x for x in mixed)) or 1.0
            vectors.append([x / norm for x in mixed])
        return EmbeddingResult(vectors=vectors)


class Hashing1536(HashingEmbedder):
    DIMS = 1536


class Hashing3072(HashingEmbedder):
    DIMS = 3072


@dataclass
class Pair:
    supabase: SupabaseVectorDatabase
    transient: TransientVectorDatabase
    container: Container
    prefix: str
    transport: Transport

    def embedder(self, kind: type[HashingEmbedder]) -> HashingEmbedder:
        embedder: HashingEmbedder = self.container[kind]
        return embedder


MakePair = Callable[[Mapping[str, int]], Pair]
