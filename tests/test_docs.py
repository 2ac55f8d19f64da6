"""The documentation site builds strictly, and its task reference misses no task."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import autotalk_prefect.tasks

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mkdocs build --strict`` into a temporary directory (one build for the module)."""
    site_dir = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}")
    return site_dir


def test_site_builds_strictly(site: Path) -> None:
    for page in ("index.html", "getting-started/index.html", "scaling/index.html"):
        assert (site / page).is_file(), page


def test_every_task_is_in_the_generated_reference(site: Path) -> None:
    html = (site / "reference" / "tasks" / "index.html").read_text()
    documented = set(re.findall(r'id="autotalk_prefect\.tasks\.[a-z_]+\.([a-z_]+)"', html))
    exported = set(autotalk_prefect.tasks.__all__)
    assert exported, "autotalk_prefect.tasks exports nothing"
    assert sorted(exported - documented) == [], "tasks missing from docs/reference/tasks.md"


def test_every_client_method_is_in_the_generated_reference(site: Path) -> None:
    from autotalk_prefect.api.client import AsyncAutoTalkClient, AutoTalkClient

    html = (site / "reference" / "client" / "index.html").read_text()
    for cls in (AutoTalkClient, AsyncAutoTalkClient):
        public = {n for n in vars(cls) if not n.startswith("_")} | {
            n for n in vars(cls.__mro__[1]) if not n.startswith("_")
        }
        documented = set(
            re.findall(rf'id="autotalk_prefect\.api\.client\.{cls.__name__}\.(\w+)"', html)
        )
        assert sorted(public - documented) == [], f"{cls.__name__} methods missing from the docs"


def test_flow_models_are_one_generated_table_each(site: Path) -> None:
    """docs_hooks/model_tables.py renders every field of each model the page names."""
    from autotalk_prefect.flows.outreach.engine import Audience, OutreachSummary
    from autotalk_prefect.flows.replies.engine import InboundReplyEvent

    html = (site / "reference" / "flows" / "index.html").read_text()
    for model in (Audience, OutreachSummary, InboundReplyEvent):
        start = html.index(f"<code>{model.__name__}</code>")
        table = html[start : html.index("</table>", start)]
        for name, field in model.model_fields.items():
            assert f"<code>{field.alias or name}</code>" in table, (model.__name__, name)
