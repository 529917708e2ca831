"""sql/ is generated: it must equal the generator's output byte for byte."""

from __future__ import annotations

from pathlib import Path

from parlant_supabase_sync import ddl

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


def test_sql_dir_matches_the_generator() -> None:
    stale = [
        name
        for name, content in ddl.generated_files().items()
        if not (SQL_DIR / name).is_file()
        or (SQL_DIR / name).read_text(encoding="utf-8") != content
    ]
    assert not stale, (
        f"sql/ is out of date ({', '.join(stale)}); run: python -m parlant_supabase_sync.ddl --write sql/"
    )


def test_sql_dir_holds_only_generated_files() -> None:
    present = {path.name for path in SQL_DIR.glob("*.sql")}
    assert present == set(ddl.generated_files())
