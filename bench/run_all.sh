#!/usr/bin/env bash
# Run every benchmark and print one markdown table of their results (for docs/benchmarks.md).
#
#   bash bench/run_all.sh                  # full sizes (tens of minutes on a laptop)
#   bash bench/run_all.sh --quick          # CI smoke sizes (a few minutes)
#   bash bench/run_all.sh --viewer         # also time a real napari viewer (uses xvfb-run if
#                                          # there is no display)
#   BENCH_DATA=/big/disk bash bench/run_all.sh   # keep generated images there between runs
#
# Each benchmark prints its own details, then markdown rows; the combined table and the
# machine line come last. Run it on a quiet machine: the numbers are ratios measured in the
# same run, but a loaded machine makes them noisy.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
if [[ -z "${VIRTUAL_ENV:-}" && -f .venv/bin/activate ]]; then
    # shellcheck disable=SC1091
    . .venv/bin/activate
fi

quick=()
viewer=()
for a in "$@"; do
    case "$a" in
        --quick) quick=(--quick) ;;
        --viewer) viewer=(--viewer) ;;
        *) echo "usage: bash bench/run_all.sh [--quick] [--viewer]" >&2; exit 2 ;;
    esac
done
data=()
if [[ -n "${BENCH_DATA:-}" ]]; then
    mkdir -p "$BENCH_DATA"
    data=(--data "$BENCH_DATA")
fi

log="$(mktemp -d)"
trap 'rm -rf "$log"' EXIT

run() {  # run NAME SCRIPT ARGS...: print the command, tee its output to the log
    local name="$1"
    shift
    echo
    echo "## $name"
    echo "\$ python $*"
    python "$@" 2>&1 | tee "$log/$name.txt"
}

open_cmd=(bench/bench_open.py "${quick[@]}" "${viewer[@]}" "${data[@]}")
if [[ ${#viewer[@]} -gt 0 && -z "${DISPLAY:-}" ]]; then
    echo; echo "## open"; echo "\$ xvfb-run -a python ${open_cmd[*]}"
    xvfb-run -a -s "-screen 0 1280x1024x24" python "${open_cmd[@]}" 2>&1 | tee "$log/open.txt"
else
    run open "${open_cmd[@]}"
fi
run segment bench/bench_segment.py "${quick[@]}" "${data[@]}"
run track bench/bench_track.py "${quick[@]}"
run track_ctc bench/bench_track_ctc.py
run nuclei_accuracy bench/bench_nuclei_accuracy.py --timing "${quick[@]}"
run tune bench/bench_tune.py "${quick[@]}"
run record bench/bench_record.py "${quick[@]}"
run shared bench/bench_shared.py "${quick[@]}"
run record_history bench/bench_record_history.py "${quick[@]}"
run export bench/bench_export.py "${quick[@]}"
if [[ ${#quick[@]} -eq 0 ]]; then  # minutes even at smoke sizes: smoke-tested on their own
    run chunked_memory bench/bench_chunked_memory.py "${data[@]}"
    run cellpose_tiles bench/bench_cellpose_tiles.py
fi
# benchmarks owned by other features: run them when present
for extra in cellpose runner_overhead; do
    script="bench/bench_$extra.py"
    [[ -f "$script" ]] || continue
    small=("${quick[@]}")
    if [[ ${#quick[@]} -gt 0 ]] && ! python "$script" --help 2>/dev/null | grep -q -- --quick; then
        case "$extra" in  # their smoke sizes, until they take --quick
            cellpose) small=(--size 128 --images 1 --repeats 1) ;;
            runner_overhead) small=(--size 512 --repeat 1) ;;
            *) echo; echo "## $extra: skipped ($script has no --quick)"; continue ;;
        esac
    fi
    run "$extra" "$script" "${small[@]}"
done

echo
echo "## all results"
echo
echo "Command: \`bash bench/run_all.sh $*\` at $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))," \
    "$(free -g | awk '/^Mem:/ {print $2}') GiB RAM, $(date -u '+%Y-%m-%d %H:%M UTC')," \
    "load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| bench | case | ours | reference | ours / reference | goal | met |"
echo "|---|---|---|---|---|---|---|"
cat "$log"/*.txt | grep '^| ' | grep -v '^| bench | case |' || true
for f in "$log"/*.txt; do  # benchmarks that print no table rows yet: their summary lines
    if ! grep -q '^| ' "$f"; then
        echo
        echo "$(basename "$f" .txt) (no table rows; its last lines):"
        echo '```'
        tail -n 6 "$f"
        echo '```'
    fi
done
echo
echo "Not met:"
cat "$log"/*.txt | grep '^| ' | grep -F '**no**' | sed 's/^/- /' || echo "- (none)"
