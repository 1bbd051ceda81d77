"""Where the sensor DBs are: one file, or every `sensor_data.db` below a directory (re-scanned each cycle)."""
from __future__ import annotations

import os
from pathlib import Path

from uploader.sources.sqlite import DB_NAME


def find_databases(path: Path) -> list[Path]:
    """`path` itself when it is a file, else every `sensor_data.db` below it, sorted; never follows into side files."""
    if path.is_file():
        return [path]
    found = []
    for directory, subdirs, files in os.walk(path):
        subdirs.sort()
        if DB_NAME in files:
            found.append(Path(directory) / DB_NAME)
    return sorted(found)


def data_root_of(sqlite_path: Path, project_data: Path | None) -> Path:
    """The directory source paths are relative to: the project's data/ when PATH lies inside it, else PATH.

    Keeping it the project's data/ whatever PATH narrows to makes a source's identity (and so its
    checkpoint and Delta app id) the same whether an uploader is pointed at data/ or data/<City>.
    """
    resolved = sqlite_path.resolve()
    if project_data is not None and resolved.is_relative_to(project_data.resolve()):
        return project_data.resolve()
    return resolved.parent if resolved.is_file() else resolved
