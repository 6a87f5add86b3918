#!/usr/bin/env bash
# Mutation run over chosen modules, with only the tests you name (issue 12; docs/testing.md "Mutation testing").
#
#   scripts/mutation.sh [-j N] [--tests PATH]... [--pytest ARG]... [--rev REV] [--show] MODULE...
#
#   MODULE      cc_core/ivr/runtime.py or cc_core.ivr.runtime (one or more)
#   --tests P   test files/folders run against every mutant (repeatable); default: tests/<package>
#               of each module (cc_core/ivr/… → tests/ivr), which must hold no switch test
#   --pytest A  one more pytest argument for the test selection (repeatable), e.g. --pytest -m
#               --pytest "not switch"
#   --rev REV   mutate the sources and run the tests of a commit (git archive REV) instead of the
#               work tree, to measure "before" figures on an older main
#   -j N        mutants tested at once (default 1: the machine is shared); always under nice -n 19
#   --show      print the diff of every survivor
#
# Why a copy: mutmut 3 writes its mutants/ folder into the current directory and reads its
# settings from setup.cfg there. Running it in a private copy under var/mutation/<label>/ keeps
# the shared work tree untouched, lets two runs (the IVR's and the ACD's) go at the same time,
# and lets each run choose its own modules. The copy stays after the run for `mutmut browse`
# and `mutmut show NAME` (run them inside that folder). Not part of scripts/test.sh: it is slow.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
mutmut="$repo/.venv/bin/mutmut"
python="$repo/.venv/bin/python"
jobs=1
rev=""
show=0
tests=()
pytest_args=()
modules=()

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        -j) jobs="$2"; shift 2 ;;
        --tests) tests+=("$2"); shift 2 ;;
        --pytest) pytest_args+=("$2"); shift 2 ;;
        --rev) rev="$2"; shift 2 ;;
        --show) show=1; shift ;;
        -h|--help) usage ;;
        -*) echo "未知选项 (unknown option): $1" >&2; usage ;;
        *) modules+=("$1"); shift ;;
    esac
done
[[ ${#modules[@]} -gt 0 ]] || { echo "请给出要变异的模块 (name at least one module)" >&2; usage; }
[[ -x "$mutmut" ]] || { echo "找不到 mutmut (mutmut is not installed): $mutmut; pip install -c constraints.txt -e '.[dev]'" >&2; exit 2; }

# Normalise the modules to paths under cc_core/, and derive the default tests from their packages.
paths=()
user_tests=${#tests[@]}
for m in "${modules[@]}"; do
    p="$m"
    [[ "$p" == *.py ]] || p="${p//.//}.py"
    [[ "$p" == cc_core/* ]] || { echo "模块须在 cc_core/ 下 (the module must be under cc_core/): $m" >&2; exit 2; }
    if [[ -z "$rev" && ! -f "$repo/$p" ]]; then
        echo "找不到模块 (no such module): $p" >&2; exit 2
    fi
    paths+=("$p")
    if [[ $user_tests -eq 0 ]]; then
        t="tests/$(echo "$p" | cut -d/ -f2)"
        [[ " ${tests[*]:-} " == *" $t "* ]] || tests+=("$t")
    fi
done

label="$(for p in "${paths[@]}"; do basename "$p" .py; done | paste -sd+ -)"
label="$(echo "${paths[0]}" | cut -d/ -f2)-$label${rev:+-$rev}"
work="$repo/var/mutation/$label"
rm -rf "$work"
mkdir -p "$work"

# The copy: the commit's files, or the work tree's tracked and new (not ignored) files.
if [[ -n "$rev" ]]; then
    git -C "$repo" archive "$rev" | tar -x -C "$work"
else
    (cd "$repo" && git ls-files -z -co --exclude-standard | tar --null -T - -c 2>/dev/null) | tar -x -C "$work"
fi
for t in "${tests[@]}"; do
    [[ -e "$work/$t" ]] || { echo "找不到测试 (no such tests): $t" >&2; exit 2; }
done

# Everything besides the package and the tests that a test may read (flows, fixtures, configs).
also_copy="$(cd "$work" && ls -A | grep -vxE 'cc_core|tests|var|\.git.*|setup\.cfg|pyproject\.toml' || true)"
{
    echo "[mutmut]"
    echo "source_paths = cc_core"
    echo "only_mutate ="
    for p in "${paths[@]}"; do echo "    $p"; done
    echo "pytest_add_cli_args_test_selection ="
    for t in "${tests[@]}"; do echo "    $t"; done
    for a in "${pytest_args[@]}"; do echo "    $a"; done
    echo "pytest_add_cli_args ="
    echo "    -p"
    echo "    no:cacheprovider"
    echo "also_copy ="
    for f in $also_copy; do echo "    $f"; done
} > "$work/setup.cfg"
# mutmut prefers [tool.mutmut] in pyproject.toml to setup.cfg; the copy must use the setup.cfg above.
if grep -q '^\[tool\.mutmut\]' "$work/pyproject.toml"; then
    echo "pyproject.toml 中有 [tool.mutmut]，须删去 (remove [tool.mutmut] from pyproject.toml)" >&2; exit 2
fi

echo "mutation run: ${paths[*]} | tests: ${tests[*]} ${pytest_args[*]:-} | source: ${rev:-work tree} | in $work"
started="$(date -u +%FT%TZ)"
(cd "$work" && nice -n 19 "$mutmut" run --max-children "$jobs") > "$work/run.log" 2>&1 || {
    tail -40 "$work/run.log" >&2
    echo "mutmut 失败 (mutmut failed); full log: $work/run.log" >&2
    exit 1
}

cd "$work"
"$python" - "$mutmut" "$started" "$show" "${paths[@]}" <<'EOF'
"""Per-module figures from mutmut's meta files: total, killed, survived, timeout, share killed."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from mutmut import __version__
from mutmut.stats import status_by_exit_code

mutmut, started, show, paths = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4:]
lines = [f"mutmut {__version__}, started {started}"]
survivors: list[str] = []
for path in paths:
    meta = Path("mutants") / (path + ".meta")
    codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
    count = Counter(status_by_exit_code[c] for c in codes.values())
    total = len(codes)
    killed = count["killed"] + count["caught by type check"]
    tested = total - count["skipped"]
    share = 100.0 * killed / tested if tested else 0.0
    share_t = 100.0 * (killed + count["timeout"]) / tested if tested else 0.0
    others = {k: v for k, v in count.items() if k not in ("killed", "survived", "timeout", "caught by type check")}
    lines.append(
        f"{path}: total {total}, killed {killed}, survived {count['survived']}, timeout {count['timeout']}"
        + "".join(f", {k} {v}" for k, v in sorted(others.items()))
        + f"; killed {share:.1f}% (killed or timeout {share_t:.1f}%)"
    )
    survivors += [k for k, c in sorted(codes.items()) if status_by_exit_code[c] not in ("killed", "timeout")]
lines.append(f"not killed ({len(survivors)}):" + "".join(f"\n    {s}" for s in survivors))
Path("summary.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
print("\n".join(lines))
if show:
    for name in survivors:
        print(subprocess.run([mutmut, "show", name], capture_output=True, text=True).stdout)
EOF
