"""Atomic writes (superpos_cli.fileio) and untrusted data files failing fast with one line."""

from __future__ import annotations

import json
import os

import pytest

from superpos_cli.errors import BadInput
from superpos_cli.fileio import MAX_LINE_BYTES, atomic_write, bounded_lines, write_text
from superpos_cli.tasks.datafiles import MAX_LEADING_BAD, read_gsm8k_jsonl, read_textcls_rows


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_text_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "out.json"
    write_text(path, "old\n")
    write_text(path, "new\n")
    assert path.read_text() == "new\n"
    assert _leftovers(tmp_path) == []
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("exists", [False, True])
def test_failure_mid_write_leaves_the_old_file_or_none(tmp_path, exists):
    path = tmp_path / "out.json"
    if exists:
        path.write_text("complete old document\n")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "--out") as handle:
            handle.write("half of a new docu")
            raise RuntimeError("killed mid-write")
    assert (path.read_text() == "complete old document\n") if exists else not path.exists()
    assert _leftovers(tmp_path) == []


def test_unwritable_destination_is_bad_input_naming_the_option(tmp_path):
    with pytest.raises(BadInput, match=r"^--plot .*no/such/x.png: cannot write"):
        write_text(tmp_path / "no" / "such" / "x.png", "x", "--plot")


# ------------------------------------------------------------ untrusted files


def _huge_single_line(path, size=1 << 30):
    """A sparse ~1 GB file with no newline: JSON-looking start, NUL-filled middle."""
    with path.open("wb") as handle:
        handle.write(b'{"text": "')
        handle.truncate(size)
        handle.seek(size - 3)
        handle.write(b'"}\n')


def _nul_file(path):
    path.write_bytes(b"\x00" * (MAX_LINE_BYTES // 2))


def _million_bad_lines(path):
    path.write_bytes(b"not json\n" * 1_000_000)


# (file maker, reader, expected message)
CASES = [
    (_huge_single_line, "textcls", "longer than"),
    (_huge_single_line, "textcls-csv", "longer than"),
    (_huge_single_line, "gsm8k", "longer than"),
    (_nul_file, "textcls", "NUL bytes"),
    (_nul_file, "textcls-csv", "NUL bytes"),
    (_nul_file, "gsm8k", "NUL bytes"),
    (_million_bad_lines, "textcls", "line 1 is not valid JSON"),
    (_million_bad_lines, "gsm8k", "line 1 is not valid JSON"),
    (_million_bad_lines, "gsm8k-skip-bad", f"first {MAX_LEADING_BAD} examples are all malformed"),
]


def _read(reader: str, path):
    if reader == "textcls":
        return read_textcls_rows(path)
    if reader == "textcls-csv":
        csv_path = path.with_suffix(".csv")
        path.rename(csv_path)
        return read_textcls_rows(csv_path)
    return read_gsm8k_jsonl(str(path), None, skip_bad=reader == "gsm8k-skip-bad")


@pytest.mark.parametrize("make, reader, message", CASES, ids=[f"{m.__name__}-{r}" for m, r, _ in CASES])
def test_bad_data_files_fail_with_one_line(tmp_path, make, reader, message):
    path = tmp_path / "bad.jsonl"
    make(path)
    with pytest.raises(BadInput) as info:
        _read(reader, path)
    text = str(info.value)
    assert message in text and "\n" not in text and len(text) < 300
    assert text.startswith("--data ")


def test_csv_field_over_csv_limit_is_bad_input(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("text,label\n" + "x" * 200_000 + ",1\n")  # one line, under MAX_LINE_BYTES
    with pytest.raises(BadInput, match="not a valid CSV file"):
        read_textcls_rows(path)


def test_bounded_lines_keeps_ordinary_lines_and_numbers_them(tmp_path):
    path = tmp_path / "ok.txt"
    lines = ["a\n", "\n", "x" * (MAX_LINE_BYTES - 1) + "\n", "last"]
    path.write_text("".join(lines))
    with path.open() as handle:
        assert list(bounded_lines(handle, path)) == list(enumerate(lines, start=1))


def test_skip_bad_still_skips_a_few_bad_lines(tmp_path):
    good = {"question": "1+1?", "answer": "2 #### 2"}
    path = tmp_path / "mixed.jsonl"
    path.write_text("oops\n" * 10 + json.dumps(good) + "\n" + json.dumps(good) + "\n")
    problems, bad = read_gsm8k_jsonl(str(path), None, skip_bad=True)
    assert len(problems) == 2 and bad == 10
