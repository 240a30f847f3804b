"""Shared fixtures: the plugin jar, Flink distributions, the sample job."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from harness.flink import build_example_job, ensure_flink

REPO = Path(__file__).resolve().parents[1]

# One Flink 1.x release (flink-conf.yaml) and one 2.x release (config.yaml).
FLINK_VERSIONS = os.environ.get("AUTOTUNE_FLINK_VERSIONS", "1.20.3,2.3.0").split(",")


def project_version() -> str:
    return re.search(r'(?m)^version\s*=\s*"([^"]+)"', (REPO / "Cargo.toml").read_text()).group(1)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    """How the suite runs on several workers (`scripts/test.sh` runs `-n 3 --dist loadgroup`;
    `AUTOTUNE_TEST_WORKERS=1` for one):
    a module whose tests share a cluster (a module-scoped fixture) runs on one worker, so the
    cluster starts once; the Kafka modules share one worker (one broker download, one broker at a
    time); every other test (a cluster of its own) goes to whichever worker is free."""
    for item in items:
        module = item.module.__name__
        fixtures = item._fixtureinfo.name2fixturedefs.values()
        if "kafka" in module:
            group = "kafka"
        elif any(defs[-1].scope == "module" for defs in fixtures):
            group = module
        else:
            continue
        item.add_marker(pytest.mark.xdist_group(group))


UNGROUPED = pytest.StashKey[str]()


@pytest.hookimpl(trylast=True)  # after pytest-xdist has tagged the ids with their groups
def pytest_collection_finish(session):
    """Refuse to run ungrouped: a pytest that pytest-xdist cannot tag would start every shared
    cluster once per worker and run two heavy clusters where one was planned."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    untagged = [i.nodeid for i in session.items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid]
    if untagged:
        session.config.stash[UNGROUPED] = (f"pytest-xdist did not group {untagged[0]} (pytest {pytest.__version__}): "
                                           "install the versions in tests/requirements.txt")


@pytest.hookimpl(tryfirst=True)  # before any cluster starts
def pytest_runtest_setup(item):
    if UNGROUPED in item.config.stash:
        pytest.fail(item.config.stash[UNGROUPED], pytrace=False)


@pytest.fixture(scope="session")
def plugin_jar() -> Path:
    """The plugin jar as users get it; built here unless AUTOTUNE_PLUGIN_JAR names one."""
    given = os.environ.get("AUTOTUNE_PLUGIN_JAR")
    if given:
        return Path(given).resolve()
    subprocess.run(["gradle", "jar", "-q", "--console=plain"], cwd=REPO, check=True, timeout=1200)
    jar = REPO / "build" / "libs" / f"flink-autotune-{project_version()}.jar"
    assert jar.is_file(), f"gradle jar did not produce {jar}"
    return jar


@pytest.fixture(scope="session")
def cli() -> Path:
    """The `flink-autotune` command-line tool, release build."""
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "flink-autotune"], cwd=REPO, check=True, timeout=900)
    return REPO / "target" / "release" / "flink-autotune"


@pytest.fixture(scope="session")
def flink_home():
    """FLINK_HOME per version, installed from PyPI into the cache on first use."""
    homes: dict[str, Path] = {}

    def get(version: str) -> Path:
        if version not in homes:
            homes[version] = ensure_flink(version)
        return homes[version]

    return get


@pytest.fixture(scope="session")
def example_job(flink_home, tmp_path_factory):
    """The sample queue job compiled against the given distribution's jars."""
    out = tmp_path_factory.mktemp("example-jobs")

    def get(version: str) -> Path:
        return build_example_job(flink_home(version), out)

    return get
