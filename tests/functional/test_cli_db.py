from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from ovfstore.engine.db.database import Database, alembic_config


def test_db_upgrade_creates_the_schema_in_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-m", "ovfstore.cli.main", "db", "upgrade", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert f"is at revision {head}" in result.stdout
    db = Database(f"sqlite:///{data_dir / 'engine.db'}")
    try:
        assert "vm_static" in inspect(db.engine).get_table_names()
    finally:
        db.dispose()
