"""The README's batch-job example runs as written: its Python block, saved to a file and run with
this interpreter against MariaDB + memcached (the config file given by TAOGRAM_CONFIG, as the
README says), makes ada follow grace, prints the new count, and the API then shows the follow."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.resolvers.test_synthetic import REPO, run
from tests.schema.client import GQL
from tests.schema.conftest import gql, gql_app, gql_settings  # noqa: F401  (fixtures)
from tests.tao.procs import write_config

pytestmark = pytest.mark.slow


def batch_job_snippet() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Batch jobs", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1, "the batch-jobs section should hold one Python example"
    return blocks[0]


@pytest.mark.parametrize("gql_settings", ["mysql"], indirect=True)
async def test_readme_batch_job_runs_as_written(gql: GQL, gql_settings, tmp_path: Path):
    await gql.sign_up("ada")
    await gql.sign_up("grace")
    job = tmp_path / "job.py"
    job.write_text(batch_job_snippet())
    config = await asyncio.to_thread(write_config, gql_settings, tmp_path / "taogram.toml")
    code, out = await run(config, str(job))
    assert code == 0, out
    assert out.strip().splitlines()[-1] == "1"
    data = await gql.ok('{ ada: user(username: "ada") { followingCount following { nodes { username } } } '
                        'grace: user(username: "grace") { followerCount } }')
    assert data == {"ada": {"followingCount": 1, "following": {"nodes": [{"username": "grace"}]}},
                    "grace": {"followerCount": 1}}
