"""Where a command writes: output folders checked before any work, and jobs that survive a kill.

- An output folder must not be the input folder or lie inside it (outputs would become inputs
  the next time), and must be writable: checked by creating it and a probe file, before the model
  loads.
- A job in progress leaves a marker (``.flexplat-incomplete.json``) in its output folder until its
  summary is written. Files are written atomically, so a killed job leaves only complete files,
  and the summary's absence says the job did not finish. Running the same command again sees the
  marker of the same input folder and replaces the interrupted job's files instead of refusing.
- Entries of an input folder that cannot be read as files (symlink loops, dangling links) are
  reported, never dropped silently; file names that are not valid UTF-8 are shown with U+FFFD.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from flexplat.atomic import WriteError, atomic_write_text, temp_path
from flexplat.errors import FlexplatError

MARKER = ".flexplat-incomplete.json"


def check_output_folder(inputs: Path, output: Path, option: str = "--output") -> None:
    """Refuse an output folder inside the input folder, and make sure it can be written."""
    inputs, resolved = Path(inputs).resolve(), Path(output).resolve()
    if resolved == inputs or inputs in resolved.parents:
        raise FlexplatError(
            f"{option} {output}: this folder is inside the input folder {inputs}; outputs would be read as "
            f"inputs next time. Choose a folder outside it"
        )
    if output.exists() and not output.is_dir():
        raise FlexplatError(f"{output}: {option} must be a folder, but this is a file")
    try:
        output.mkdir(parents=True, exist_ok=True)
        temp_path(output / "probe").unlink()
    except OSError as exc:
        raise WriteError(output, exc) from None


def interrupted_here(output: Path, inputs: Path, marker_name: str = MARKER) -> bool:
    """Whether ``output`` holds the marker of an unfinished job on the same input folder."""
    marker = Path(output) / marker_name
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8")).get("inputs")
    except (OSError, ValueError, AttributeError):
        return False
    return recorded == str(Path(inputs).resolve())


def remove_stale_temps(output: Path) -> int:
    """Remove the temp files a killed writer left in ``output`` (hidden ``.*.tmp``); returns how many."""
    stale = list(Path(output).glob(".*.tmp")) + list(Path(output).glob(".tmp-*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def begin_job(output: Path, inputs: Path, marker_name: str = MARKER) -> None:
    """Mark ``output`` as holding an unfinished job on ``inputs`` (removed by :func:`end_job`)."""
    atomic_write_text(Path(output) / marker_name, json.dumps({"inputs": str(Path(inputs).resolve())}) + "\n")


def end_job(output: Path, marker_name: str = MARKER) -> None:
    (Path(output) / marker_name).unlink(missing_ok=True)


def unreadable_entries(folder: Path, extensions: tuple[str, ...]) -> list[tuple[str, str]]:
    """(name, reason) of image-named entries that are not readable files: symlink loops, dangling links."""
    found = []
    for entry in sorted(Path(folder).iterdir()):
        if entry.suffix.lower() not in extensions or not entry.is_symlink() or entry.exists():
            continue
        try:
            entry.resolve(strict=True)
            reason = "link to a file that does not exist"
        except FileNotFoundError:
            reason = "link to a file that does not exist"
        except RuntimeError:  # Python < 3.13 reports loops this way
            reason = "symlink loop"
        except OSError as exc:
            reason = "symlink loop" if exc.errno == errno.ELOOP else f"unreadable link ({exc.strerror})"
        found.append((printable(entry.name), reason))
    return found


def printable(name: str) -> str:
    """``name`` as valid text: bytes that are not UTF-8 (kept by Python as surrogates) become U+FFFD."""
    return os.fsencode(name).decode("utf-8", "replace")
