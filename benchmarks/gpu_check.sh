#!/usr/bin/env bash
# The CUDA checks in one go, for a machine with a GPU (CI has none; nothing else
# depends on one). Runs the tests marked `cuda`, then `superpos profile --device cuda`
# (optimizer step vs fused Adam, attention vs classical, circuits/s, a textcls epoch,
# and the built-in GSM8K GPT's tokens/s under bf16 autocast), and writes every figure
# to one JSON file. About 5 minutes on one GPU after install; each command has a limit.
#
#   bash benchmarks/gpu_check.sh [OUT.json]     (default gpu_check.json)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-gpu_check.json}"
WORK="$(mktemp -d)"
export XDG_CACHE_HOME="$WORK/cache"

python - <<'PY'
import torch, sys
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device (torch %s, built for CUDA %s)" % (torch.__version__, torch.version.cuda))
print("gpu_check:", torch.cuda.get_device_name(0), "torch", torch.__version__, "CUDA", torch.version.cuda)
PY

started=$(date +%s)
set +e
timeout 240 python -m pytest -q -m cuda tests/test_cuda.py --junitxml="$WORK/tests.xml" > "$WORK/tests.txt" 2>&1
tests_rc=$?
timeout 300 superpos profile --device cuda --parts circuit,attention,optimizer,epoch --lm --repeats 5 \
    --json --out "$WORK/profile.json" > /dev/null 2> "$WORK/profile.err"
profile_rc=$?
set -e
tail -3 "$WORK/tests.txt"

python - "$WORK" "$OUT" "$tests_rc" "$profile_rc" "$started" <<'PY'
import json, pathlib, sys, time, xml.etree.ElementTree as ET
work, out, tests_rc, profile_rc, started = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
doc = {"kind": "gpu-check", "tests_rc": tests_rc, "profile_rc": profile_rc, "wall_s": time.time() - started}
if (work / "tests.xml").exists():
    root = ET.parse(work / "tests.xml").getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    doc["tests"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    doc["test_failures"] = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None or c.find("error") is not None]
if (work / "profile.json").exists():
    profile = json.loads((work / "profile.json").read_text())
    keep = ("name", "backend", "scope", "path", "device", "shape", "median", "min", "max", "circuits_per_s",
            "ratio_vs_aer", "ratio_vs_classical", "ratio_vs_fused_adam", "overhead", "tokens_per_s", "ratio_vs_adam")
    doc["profile"] = {part: [{k: r[k] for k in keep if k in r} for r in profile.get(part, [])]
                      for part in ("circuit", "attention", "optimizer", "epoch", "lm")}
    doc["versions"], doc["machine"] = profile.get("versions"), profile.get("machine")
else:
    doc["profile_error"] = (work / "profile.err").read_text()[-2000:]
pathlib.Path(out).write_text(json.dumps(doc, indent=1) + "\n")
print("gpu_check: figures in", out)
PY
