#!/usr/bin/env bash
# The CUDA checks in one go, for a machine with a GPU (CI has none; nothing else
# depends on one). Runs the tests marked `cuda`, then `superpos profile --device cuda`
# (optimizer step vs fused Adam, attention vs classical, circuits/s, a textcls epoch,
# and the built-in GSM8K GPT's tokens/s under bf16 autocast), then a short
# `superpos compare --task gsm8k --device cuda` end to end, and writes every figure
# to one JSON file. Each step has a time limit (180 + 240 + 120 s at most).
#
#   bash benchmarks/gpu_check.sh [OUT.json]     (default gpu_check.json)
#   PYTHON=python3.12 bash benchmarks/gpu_check.sh   (the interpreter, default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-gpu_check.json}"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d)"
export XDG_CACHE_HOME="$WORK/cache"
# The console script where it is installed, else the package run as a module.
if command -v superpos > /dev/null; then SUPERPOS=(superpos); else SUPERPOS=("$PY" -m superpos_cli); fi

"$PY" - <<'PY'
import torch, sys
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device (torch %s, built for CUDA %s)" % (torch.__version__, torch.version.cuda))
print("gpu_check:", torch.cuda.get_device_name(0), "torch", torch.__version__, "CUDA", torch.version.cuda)
PY

started=$(date +%s)
set +e
timeout 180 "$PY" -m pytest -q -m cuda tests/test_cuda.py --junitxml="$WORK/tests.xml" > "$WORK/tests.txt" 2>&1
tests_rc=$?
tail -3 "$WORK/tests.txt"
timeout 240 "${SUPERPOS[@]}" profile --device cuda --parts circuit,attention,optimizer,epoch --lm --repeats 5 \
    --json --out "$WORK/profile.json" > /dev/null 2> "$WORK/profile.err"
profile_rc=$?
echo "gpu_check: profile rc=$profile_rc"
compare_started=$(date +%s)
timeout 120 "${SUPERPOS[@]}" compare adam sgd --task gsm8k --limit 64 --seeds 2 --max-epochs 1 --device cuda \
    --store "$WORK/compare.db" --json --out "$WORK/compare.json" > /dev/null 2> "$WORK/compare.err"
compare_rc=$?
compare_s=$(( $(date +%s) - compare_started ))
echo "gpu_check: compare rc=$compare_rc in ${compare_s} s"
set -e

"$PY" - "$WORK" "$OUT" "$tests_rc" "$profile_rc" "$compare_rc" "$compare_s" "$started" <<'PY'
import json, pathlib, sys, time, xml.etree.ElementTree as ET
work, out = pathlib.Path(sys.argv[1]), sys.argv[2]
tests_rc, profile_rc, compare_rc, compare_s, started = map(int, sys.argv[3:8])
doc = {"kind": "gpu-check", "tests_rc": tests_rc, "profile_rc": profile_rc, "compare_rc": compare_rc}


def tail(name, n=3000):
    path = work / name
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


if (work / "tests.xml").exists():
    root = ET.parse(work / "tests.xml").getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    doc["tests"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    doc["test_failures"] = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None or c.find("error") is not None]
if tests_rc:
    doc["tests_output"] = tail("tests.txt", 6000)
if (work / "profile.json").exists():
    profile = json.loads((work / "profile.json").read_text())
    keep = ("name", "backend", "scope", "path", "device", "shape", "median", "min", "max", "circuits_per_s",
            "ratio_vs_aer", "ratio_vs_classical", "ratio_vs_fused_adam", "overhead", "tokens_per_s", "ratio_vs_adam")
    doc["profile"] = {part: [{k: r[k] for k in keep if k in r} for r in profile.get(part, [])]
                      for part in ("circuit", "attention", "optimizer", "epoch", "lm")}
    doc["versions"], doc["machine"] = profile.get("versions"), profile.get("machine")
if profile_rc:
    doc["profile_error"] = tail("profile.err")
if (work / "compare.json").exists():
    doc["compare"] = {"wall_s": compare_s, "document": json.loads((work / "compare.json").read_text())}
if compare_rc:
    doc["compare_error"] = tail("compare.err")
doc["wall_s"] = time.time() - started
pathlib.Path(out).write_text(json.dumps(doc, indent=1) + "\n")
print("gpu_check: figures in", out)
PY
