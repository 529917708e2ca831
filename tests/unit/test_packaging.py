"""Packaging: the sdist and the wheel build without warnings and carry what they must.

Builds both with `python -m build` (sdist first, then the wheel from the sdist, so the sdist is
proven complete) from a copy of the source tree, in a temporary directory. Needs `build` (in the
`dev` extra) and, for the isolated build environment, access to the package index.
"""

from __future__ import annotations

import ast
import email.message
import email.parser
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "parlant_supabase_sync"
REPOSITORY = "https://github.com/parlant-supabase-sync/parlant-supabase-sync"

# What the sdist must carry besides the package: the directories (every file in them, minus
# bytecode) and the single files.
SDIST_DIRECTORIES = ("tests", "sql", "docs", "benchmarks", "scripts")
SDIST_FILES = ("LICENSE", "README.md", "tox.ini", "setup.cfg", "setup.py", "pyproject.toml")

# Imported modules that need no Requires-Dist: pytest runs the pytest11 plugin, so it is there
# whenever `local/pytest_plugin.py` is imported.
PROVIDED_BY_THE_HOST = {"pytest": "the pytest11 plugin is only imported by pytest itself"}
# Imports whose distribution is an optional extra even outside `local/` (the async facade, the
# wiring and the demo need Parlant; the core works without it through `_types.py`).
OPTIONAL_OUTSIDE_LOCAL = {"parlant": "parlant", "lagom": "parlant"}
# Distributions that arrive through an extra of another requirement.
VIA_EXTRA = {"psycopg-pool": ("psycopg", "pool"), "psycopg-binary": ("psycopg", "binary")}
# Module → distribution when the distribution is not installed here (the `sql` tox env).
FALLBACK_DISTRIBUTIONS = {"jwt": "pyjwt"}

NETWORK_TROUBLE = re.compile(
    r"Could not find a version that satisfies|No matching distribution found|"
    r"Failed to establish a new connection|Temporary failure in name resolution|"
    r"Network is unreachable|ConnectTimeoutError|ReadTimeoutError"
)
# distutils/setuptools log lines that name files (a file may be called test_warnings.py).
FILE_LINES = ("copying ", "adding ", "hard linking ", "creating ", "writing ", "reading ")

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("build") is None,
        reason="`build` is not installed (it is in the dev extra: pip install -e '.[dev]')",
    ),
    pytest.mark.skipif(
        not (ROOT / "setup.cfg").is_file(),
        reason="the tests are not running from a source tree (no setup.cfg next to tests/)",
    ),
]


def normalize(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Built:
    source: Path  # the copy of the source tree that was built
    output: str
    sdist_members: frozenset[str]  # paths relative to the sdist's top directory
    wheel_members: frozenset[str]
    metadata: email.message.Message
    sdist_metadata: email.message.Message


def _copy_source_tree(destination: Path) -> Path:
    ignored = shutil.ignore_patterns(
        ".git",
        ".venv",
        ".tox",
        "*.egg-info",
        "build",
        "dist",
        "__pycache__",
        "*.py[cod]",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
    )
    target = destination / "src"
    for attempt in range(3):
        try:
            shutil.copytree(ROOT, target, ignore=ignored, symlinks=True)
            return target
        except shutil.Error:  # a file vanished while others edit the tree: copy again
            shutil.rmtree(target, ignore_errors=True)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    base = tmp_path_factory.mktemp("packaging")
    source = _copy_source_tree(base)
    out = base / "dist"
    env = dict(os.environ)
    # With PYTHONDONTWRITEBYTECODE set, setuptools logs "byte-compiling is disabled" as a
    # warning: that is this machine's environment, not the packaging.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        cwd=base,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        if NETWORK_TROUBLE.search(result.stdout):
            pytest.skip(
                "python -m build could not install its build requirements "
                "(setuptools>=77, wheel): no access to the package index"
            )
        pytest.fail(f"python -m build failed:\n{result.stdout[-6000:]}")
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    with tarfile.open(sdist) as archive:
        names = [member.name for member in archive.getmembers() if member.isfile()]
        top = names[0].split("/", 1)[0]
        extracted = archive.extractfile(f"{top}/PKG-INFO")
        assert extracted is not None
        sdist_metadata = email.parser.Parser().parsestr(extracted.read().decode())
    sdist_members = frozenset(name.split("/", 1)[1] for name in names)
    with zipfile.ZipFile(wheel) as archive:
        wheel_members = frozenset(archive.namelist())
        (metadata_name,) = [name for name in wheel_members if name.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(archive.read(metadata_name).decode())
    yield Built(source, result.stdout, sdist_members, wheel_members, metadata, sdist_metadata)


def _files_under(source: Path, directory: str) -> set[str]:
    # The copy that was built, not ROOT: others may add files to the working tree meanwhile.
    return {
        path.relative_to(source).as_posix()
        for path in (source / directory).rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix not in (".pyc", ".pyo")
    }


def test_the_build_prints_no_warnings(built: Built) -> None:
    problems = [
        line
        for line in built.output.splitlines()
        if re.search(r"(?i)warn|deprecat|!!", line)
        and not line.lstrip().lower().startswith(FILE_LINES)
    ]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("directory", SDIST_DIRECTORIES)
def test_the_sdist_carries_every_file_of(built: Built, directory: str) -> None:
    expected = _files_under(built.source, directory)
    assert expected, f"{directory}/ is empty in the source tree"
    missing = sorted(expected - built.sdist_members)
    assert missing == [], f"add a MANIFEST.in line for: {missing}"


def test_the_sdist_carries_the_top_level_files_and_the_package(built: Built) -> None:
    for name in SDIST_FILES:
        assert name in built.sdist_members, name
    assert _files_under(built.source, PACKAGE) <= built.sdist_members
    assert not any(name.endswith((".pyc", ".pyo")) for name in built.sdist_members)


def test_the_wheel_carries_the_package_and_its_runtime_data_only(built: Built) -> None:
    package_files = _files_under(built.source, PACKAGE)
    assert f"{PACKAGE}/__init__.py" in package_files
    assert f"{PACKAGE}/py.typed" in package_files
    # Every file of the package, .py or data (py.typed is the only data the code needs: the
    # SQL is generated by ddl.py, so sql/ stays out of the wheel).
    missing = sorted(package_files - built.wheel_members)
    assert missing == []
    outside = sorted(
        name for name in built.wheel_members if not name.startswith((f"{PACKAGE}/", f"{PACKAGE}-"))
    )
    assert outside == []  # no tests/, sql/, benchmarks/, scripts/ or docs/
    assert not any(name.endswith(".sql") for name in built.wheel_members)
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in built.wheel_members)


@pytest.mark.parametrize("which", ["wheel", "sdist"])
def test_metadata_declares_the_license_as_an_spdx_expression(built: Built, which: str) -> None:
    metadata = built.metadata if which == "wheel" else built.sdist_metadata
    expression = metadata.get("License-Expression") or metadata.get("License")
    assert expression == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    classifiers = metadata.get_all("Classifier") or []
    assert not [c for c in classifiers if c.startswith("License ::")]


def test_metadata_has_the_project_urls(built: Built) -> None:
    urls: dict[str, str] = {}
    for entry in built.metadata.get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        urls[label.strip()] = url.strip()
    assert set(urls) >= {"Homepage", "Documentation", "Source", "Issues"}
    assert urls["Source"] == REPOSITORY
    assert urls["Issues"] == f"{REPOSITORY}/issues"
    assert all(url.startswith(REPOSITORY) for url in urls.values())


def test_metadata_carries_the_readme_as_markdown(built: Built) -> None:
    assert built.metadata.get("Description-Content-Type") == "text/markdown"
    body = built.metadata.get_payload()
    assert isinstance(body, str)
    assert body.lstrip().startswith("# parlant-supabase-sync")
    assert body.strip() == (built.source / "README.md").read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class Requirement:
    name: str
    extras: frozenset[str]
    extra: str | None  # the extra this requirement belongs to, None when unconditional


_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def _requirements(metadata: email.message.Message) -> list[Requirement]:
    result = []
    for line in metadata.get_all("Requires-Dist") or []:
        spec, _, marker = line.partition(";")
        match = _REQUIREMENT.match(spec)
        assert match is not None, line
        extras = frozenset(e.strip() for e in (match.group(2) or "").split(",") if e.strip())
        extra = _EXTRA_MARKER.search(marker)
        result.append(
            Requirement(normalize(match.group(1)), extras, extra.group(1) if extra else None)
        )
    return result


def _third_party_imports(source: Path) -> dict[str, set[str]]:
    """Top-level module → the package files (relative paths) that import it."""
    imports: dict[str, set[str]] = {}
    for path in sorted((source / PACKAGE).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".", 1)[0]
                if top in sys.stdlib_module_names or top == PACKAGE or top == "__future__":
                    continue
                imports.setdefault(top, set()).add(path.relative_to(source).as_posix())
    return imports


def _distributions(module: str) -> set[str]:
    installed = importlib.metadata.packages_distributions().get(module)
    if installed:
        return {normalize(name) for name in installed}
    return {normalize(FALLBACK_DISTRIBUTIONS.get(module, module))}


def _covered(distributions: set[str], requirements: list[Requirement]) -> set[str | None]:
    """The extras (None: unconditional) under which one of `distributions` is required."""
    found: set[str | None] = set()
    for requirement in requirements:
        for distribution in distributions:
            via = VIA_EXTRA.get(distribution)
            if requirement.name == distribution or (
                via is not None
                and requirement.name == normalize(via[0])
                and via[1] in requirement.extras
            ):
                found.add(requirement.extra)
    return found


def test_every_imported_distribution_is_required(built: Built) -> None:
    requirements = _requirements(built.metadata)
    imports = _third_party_imports(built.source)
    assert {"httpx", "pydantic", "typing_extensions", "postgrest"} <= set(imports)
    problems = []
    for module, files in sorted(imports.items()):
        if module in PROVIDED_BY_THE_HOST:
            continue
        covered = _covered(_distributions(module), requirements)
        only_local = all(name.startswith(f"{PACKAGE}/local/") for name in files)
        if module in OPTIONAL_OUTSIDE_LOCAL:
            allowed: set[str | None] = {None, OPTIONAL_OUTSIDE_LOCAL[module]}
        elif only_local:
            allowed = {None, "local"}
        else:
            allowed = {None}
        if not covered & allowed:
            problems.append(
                f"{module} (imported by {', '.join(sorted(files))}) needs a Requires-Dist "
                f"{'in install_requires' if allowed == {None} else 'in ' + repr(allowed)}; "
                f"found under: {covered or 'nothing'}"
            )
    assert problems == [], "\n".join(problems)


def test_the_declared_cli_and_build_requirements_are_there(built: Built) -> None:
    requirements = {(r.name, r.extra) for r in _requirements(built.metadata)}
    assert ("click", None) in requirements
    assert ("typing-extensions", None) in requirements
    assert ("build", "dev") in requirements
