"""Data files of the built-in tasks, parsed as data only (no torch, no eval, no pickle).

torch-free on purpose: the parent process parses every ``--data`` file before the
first trial starts (and before torch is imported), so a malformed file costs a
fraction of a second and one line, not a worker's traceback.

* textcls: JSONL (``{"text": str, "label": int|str}`` a line) or CSV (``text,label``).
* gsm8k: JSONL (``{"question": str, "answer": str}``, the answer ending ``#### <number>``).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from superpos_cli.errors import BadInput
from superpos_cli.fileio import bounded_lines

_FINAL = re.compile(r"####\s*\$?\s*(-?[\d,]*\.?\d+)")
# --skip-bad gives up on a file whose first this many non-empty lines are all bad:
# it is not a data file, and skipping a million bad lines would take seconds.
MAX_LEADING_BAD = 1000


def read_textcls_rows(path: Path) -> list[tuple[str, Any]]:
    if not path.is_file():
        raise BadInput(f"--data {path}: no such file")
    rows: list[tuple[str, Any]] = []
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            # Lines bounded in length (a huge or binary file fails at once, fileio.bounded_lines).
            reader = csv.DictReader(line for _, line in bounded_lines(handle, path))
            try:
                if reader.fieldnames is None or not {"text", "label"} <= set(reader.fieldnames):
                    raise BadInput(f"--data {path}: CSV needs a header with 'text' and 'label' columns")
                for line_no, row in enumerate(reader, start=2):
                    if row.get("text") is None or row.get("label") in (None, ""):
                        raise BadInput(f"--data {path}: line {line_no} lacks text or label")
                    rows.append((row["text"], row["label"]))
            except csv.Error as err:
                raise BadInput(f"--data {path}: not a valid CSV file near line {reader.line_num} ({err})") from None
    else:
        with path.open(encoding="utf-8") as handle:
            for line_no, line in bounded_lines(handle, path):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise BadInput(f"--data {path}: line {line_no} is not valid JSON ({err.msg})") from None
                if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or "label" not in obj:
                    raise BadInput(f'--data {path}: line {line_no} needs {{"text": str, "label": int|str}}')
                if not isinstance(obj["label"], (int, str)) or isinstance(obj["label"], bool):
                    raise BadInput(f"--data {path}: line {line_no} label must be an int or a string")
                rows.append((obj["text"], obj["label"]))
    if not rows:
        raise BadInput(f"--data {path}: the file holds no examples")
    return rows


def label_order(names: set[str]) -> list[str]:
    """Integer labels in numeric order (so "10" follows "9"), others alphabetically."""
    try:
        return sorted(names, key=int)
    except ValueError:
        return sorted(names)


def extract_answer(text: str) -> float | None:
    """The number after the first ``####`` ("#### 1,234" -> 1234.0, "#### -0.5" -> -0.5), or None."""
    match = _FINAL.search(text)
    return None if match is None else float(match.group(1).replace(",", ""))


def read_gsm8k_jsonl(path: str, limit: int | None, skip_bad: bool) -> tuple[list[dict[str, str]], int]:
    """The first ``limit`` well-formed problems of a GSM8K-format file, and the count of bad lines skipped."""
    file = Path(path)
    if not file.is_file():
        raise BadInput(f"--data {path}: no such file")
    problems: list[dict[str, str]] = []
    bad = 0
    with file.open(encoding="utf-8") as handle:
        for line_no, line in bounded_lines(handle, path):
            if limit is not None and len(problems) >= limit:
                break
            if not line.strip():
                continue
            problem, why = _parse_line(line)
            if problem is not None:
                problems.append(problem)
            elif skip_bad:
                bad += 1
                if bad >= MAX_LEADING_BAD and not problems:
                    raise BadInput(f"--data {path}: the first {bad} examples are all malformed "
                                   f"(line {line_no} {why}); not a GSM8K-format file")
            else:
                raise BadInput(f"--data {path}: line {line_no} {why} (or pass --skip-bad)")
    if not problems:
        raise BadInput(f"--data {path}: the file holds no well-formed examples")
    return problems, bad


def _parse_line(line: str) -> tuple[dict[str, str] | None, str]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        return None, f"is not valid JSON ({err.msg})"
    if not isinstance(obj, dict) or not isinstance(obj.get("question"), str) or not isinstance(obj.get("answer"), str):
        return None, 'needs {"question": str, "answer": str}'
    if extract_answer(obj["answer"]) is None:
        return None, 'has an answer without a final "#### <number>"'
    return {"question": obj["question"], "answer": obj["answer"]}, ""
