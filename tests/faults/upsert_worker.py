"""Child process of test_concurrent_upserts_two_processes (run as a script, not collected).

    python upsert_worker.py URL KEY PREFIX DOC_ID CALLS START_AT

Opens the sync core, waits until wall-clock START_AT, then runs CALLS concurrent
``update_one({"id": {"$eq": DOC_ID}}, doc, upsert=True)`` (one thread each) and prints one JSON
line: {"results": [[matched, modified, updated_document], ...], "errors": ["Type: text", ...]}.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TypedDict

from parlant_supabase_sync.core import SyncDocumentDatabase
from parlant_supabase_sync.settings import SupabaseSettings


class Doc(TypedDict, total=False):
    id: str
    version: str
    creation_utc: str


def document(doc_id: str) -> dict[str, Any]:
    return {
        "id": doc_id,
        "version": "1.0.0",
        "creation_utc": "2026-01-01T00:00:00.000000+00:00",
        "worker": "upsert",
        "key": f"k-{doc_id}",
        "n": 1,
    }


def main(argv: list[str]) -> int:
    url, key, prefix, doc_id, calls, start_at = argv
    settings = SupabaseSettings(
        url=url,
        key=key,
        max_workers=int(calls),
        http_pool_size=int(calls),
        retry={"attempts": 4, "base_delay": 0.01, "max_delay": 0.05},
        timeouts={"read": 20.0, "pool": 20.0},
    )
    results: list[list[Any]] = []
    errors: list[str] = []
    lock = threading.Lock()
    with SyncDocumentDatabase(settings, table_prefix=prefix) as db:
        docs = db.get_or_create_collection("docs", Doc, lambda d: d)
        barrier = threading.Barrier(int(calls), timeout=30)

        def call() -> None:
            try:
                barrier.wait()
                delay = float(start_at) - time.time()
                if delay > 0:
                    time.sleep(min(delay, 30.0))
                result = docs.update_one({"id": {"$eq": doc_id}}, document(doc_id), upsert=True)
                with lock:
                    results.append(
                        [result.matched_count, result.modified_count, result.updated_document]
                    )
            except BaseException as error:  # noqa: BLE001 - reported to the parent
                with lock:
                    errors.append(f"{type(error).__module__}.{type(error).__name__}: {error}")

        threads = [threading.Thread(target=call) for _ in range(int(calls))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        if any(thread.is_alive() for thread in threads):
            errors.append("hang: a thread did not finish within 60 s")
    print(json.dumps({"results": results, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
