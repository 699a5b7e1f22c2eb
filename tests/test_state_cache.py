"""The state cache gives exactly what loading gives, misses whenever an input changes, and is
never trusted unless it is the user's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from eksnet.errors import InputError
from eksnet.model.load import demo_text
from eksnet.state_cache import CACHE_ENV, build, load_built

NODE_1 = "ip-192-168-1-50.eu-west-2.compute.internal"


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(CACHE_ENV, raising=False)
    return tmp_path / "cache" / "eksnet"


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.pickle")) if cache.exists() else []


def spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_hit_is_what_loading_gives(cache: Path) -> None:
    first = load_built(None, None)
    assert len(entries(cache)) == 1
    again = load_built(None, None)
    assert again is not first
    assert again == first == build(None, None)
    assert again.labels[NODE_1] == "node 1"


def test_a_warm_cache_does_not_load_the_model(cache: Path, tmp_path: Path) -> None:
    load_built(None, None)
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    program = (
        "import sys\n"
        "from eksnet.state_cache import load_built\n"
        "load_built(None, None)\n"
        "print('pydantic' in sys.modules, 'eksnet.model' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True)
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_an_edited_spec_or_another_variant_misses(cache: Path, tmp_path: Path) -> None:
    text = demo_text()[0]
    path = spec(tmp_path, text)
    before = load_built(path, None)
    edited = spec(tmp_path, text.replace("publicIp: 192.0.2.50", "publicIp: 192.0.2.150"))
    after = load_built(edited, None)
    assert after != before
    assert any(str(p.public_ip) == "192.0.2.150" for p in after.state.vpc.public_ips)
    nat = load_built(edited, "nat")
    assert nat != after
    assert len(entries(cache)) == 3


def test_turned_off_it_writes_nothing(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, "off")
    load_built(None, None)
    assert entries(cache) == []


def test_an_entry_others_could_write_or_a_broken_one_is_not_used(cache: Path) -> None:
    load_built(None, None)
    (entry,) = entries(cache)
    entry.chmod(0o644)
    assert load_built(None, None) == build(None, None)
    entry.chmod(0o600)
    entry.write_bytes(b"not a pickle")
    assert load_built(None, None) == build(None, None)


def test_a_bad_spec_is_never_cached(cache: Path, tmp_path: Path) -> None:
    path = spec(tmp_path, demo_text()[0].replace("cidrs: [192.168.0.0/16]", "cidrs: [banana]"))
    for _ in range(2):
        with pytest.raises(InputError, match=r"cluster\.yaml:"):
            load_built(path, None)
    assert entries(cache) == []
