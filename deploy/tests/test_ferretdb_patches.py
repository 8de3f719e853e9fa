"""The FerretDB patches of the local build (deploy/local/ferretdb/patches): documented, ordered, and applying.

No build: the pristine module is fetched with ``go mod download`` (from the Go module cache, or the proxy
when it is not there yet), copied and patched in a temporary directory the way ``infra.py`` does.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATCHES = ROOT / "deploy" / "local" / "ferretdb" / "patches"
_DIFF_START = re.compile(r"^(diff --git |--- )", re.M)


@pytest.fixture(scope="module")
def infra() -> ModuleType:
    spec = importlib.util.spec_from_file_location("guanxi_local_infra", ROOT / "deploy" / "local" / "infra.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pristine(infra: ModuleType) -> Path:
    """The FerretDB module source as Go downloads it (read-only)."""
    version = infra.ferretdb_version()
    if shutil.which("go") is None:
        pytest.fail(f"`go` is not on PATH: it is needed to fetch {infra.FERRETDB_MODULE}@{version} and check the patches")
    try:
        source = infra.ferretdb_module_source()
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"go mod download {infra.FERRETDB_MODULE}@{version} failed:\n{exc.stdout}\n{exc.stderr}")
    assert (source / "go.mod").exists(), f"go mod download reported {source}, which holds no module"
    return source


def test_patches_exist_and_are_named_nnnn_short_name(infra: ModuleType) -> None:
    names = [p.name for p in PATCHES.glob("*.patch")]
    assert names, f"no patches in {PATCHES}"
    for name in names:
        assert re.fullmatch(r"\d{4}-[a-z0-9]+(-[a-z0-9]+)*\.patch", name), f"{name}: expected NNNN-short-name.patch"
    assert len({name[:4] for name in names}) == len(names), "two patches share a number"
    assert (PATCHES / "README.md").exists()
    readme = (PATCHES / "README.md").read_text()
    for name in names:
        assert name in readme, f"{name} is not listed in {PATCHES / 'README.md'}"


def test_every_patch_has_a_header_saying_what_and_why() -> None:
    for patch in sorted(PATCHES.glob("*.patch")):
        text = patch.read_text()
        first = _DIFF_START.search(text)
        assert first is not None, f"{patch.name} holds no diff"
        header = text[: first.start()].strip()
        assert header, f"{patch.name} has no header before its first diff line"
        assert len(header.splitlines()) >= 3, f"{patch.name}: the header should say what the patch fixes and why"


def test_patches_are_applied_in_file_name_order(infra: ModuleType) -> None:
    listed = infra.ferretdb_patches()
    assert listed == sorted(PATCHES.glob("*.patch"), key=lambda p: p.name)
    assert [p.name for p in listed] == sorted(p.name for p in listed)


def test_the_patches_apply_to_the_pinned_module_and_leave_gofmt_clean_go(
    infra: ModuleType, pristine: Path, tmp_path: Path
) -> None:
    module = tmp_path / "module"
    infra.copy_module_source(pristine, module)
    infra.apply_ferretdb_patches(module)  # git apply --check, then git apply, per patch

    touched = sorted({
        m.group(1) for p in infra.ferretdb_patches() for m in re.finditer(r"^\+\+\+ b/(\S+)$", p.read_text(), re.M)
    })
    assert touched
    for name in touched:
        assert (module / name).read_bytes() != (pristine / name).read_bytes(), f"{name} was not patched"
    gofmt = shutil.which("gofmt") or str(Path(shutil.which("go") or "go").parent / "gofmt")
    unformatted = subprocess.run([gofmt, "-l", *touched], cwd=module, capture_output=True, text=True, check=True)  # noqa: S603
    assert unformatted.stdout == "", f"patched files not gofmt-clean:\n{unformatted.stdout}"


def test_a_patch_that_no_longer_applies_stops_the_build_naming_it(
    infra: ModuleType, pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patches = tmp_path / "patches"
    shutil.copytree(PATCHES, patches)
    broken = sorted(patches.glob("*.patch"))[-1]
    text = broken.read_text()
    context = re.search(r"^ (\S.*)$", text, re.M)  # a context line of the first hunk
    assert context is not None
    broken.write_text(text.replace(context.group(0), " " + context.group(1) + " // changed upstream", 1))
    monkeypatch.setattr(infra, "FERRETDB_PATCHES", patches)

    module = tmp_path / "module"
    infra.copy_module_source(pristine, module)
    with pytest.raises(infra.InfraError, match=re.escape(broken.name) + ".* does not apply"):
        infra.apply_ferretdb_patches(module)
