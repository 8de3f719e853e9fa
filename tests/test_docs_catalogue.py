"""The documentation catalogues stay true to the code: requirement ids, where they are cited, topics.

Fast and without infrastructure: it reads files and runs docs/tools/requirements_index.py, and it
requests no fixture of guanxi_shared.testing (the ``infra`` fixture would start Kafka and FerretDB).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from guanxi_shared.topics import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "tools" / "requirements_index.py"
EVENTS_DOC = ROOT / "docs" / "events.md"


def load_index() -> ModuleType:
    # Loaded from its path: docs/tools is a folder of scripts, not a package on sys.path.
    spec = importlib.util.spec_from_file_location("requirements_index", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


index = load_index()


def test_every_cited_id_is_in_the_catalogue() -> None:
    defined = set(index.catalogue_ids())
    unknown = {rid: sorted(files) for rid, files in index.citations().items() if rid not in defined}
    assert not unknown, f"ids cited in code but missing from docs/requirements.md: {unknown}"


def test_every_catalogued_id_is_cited_by_a_test() -> None:
    cited = index.citations()
    untested = [rid for rid in index.catalogue_ids() if not any(index.is_test_file(f) for f in cited.get(rid, ()))]
    assert not untested, f"requirements no test file cites: {', '.join(untested)}"


def test_the_catalogue_ids_are_unique_and_findable_in_code() -> None:
    ids = index.catalogue_ids()
    assert ids, "docs/requirements.md defines no requirement"
    assert len(ids) == len(set(ids)), "a requirement id is defined twice"
    # An id whose prefix the script does not search for could never be found cited.
    assert all(index.ID_RE.fullmatch(rid) for rid in ids), [rid for rid in ids if not index.ID_RE.fullmatch(rid)]


def test_generated_sections_are_current() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--check", "--quiet"], cwd=ROOT,  # noqa: S603 (our own script)
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_topic_is_in_the_event_catalogue() -> None:
    text = EVENTS_DOC.read_text(encoding="utf-8")
    missing = [t.name for t in CATALOGUE if f"`{t.name}`" not in text]
    assert not missing, f"topics missing from docs/events.md: {missing}"
