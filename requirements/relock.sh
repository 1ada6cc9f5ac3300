#!/usr/bin/env bash
# Regenerate requirements/lock.txt, the pinned set our machines (README commands, .ci/run) install with
# `pip install -c requirements/lock.txt torch==2.13.0 -e '.[dev]'`.
#
# It resolves the same `torch==2.13.0 -e '.[dev]'` (every extra CI installs) in a throw-away venv WITHOUT the
# lock, so every package comes at the newest release pyproject.toml allows today, and pins what got installed
# (`pip freeze --exclude-editable`). Run it, run the suite against the new lock, commit both:
#     bash requirements/relock.sh && .ci/run
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet torch==2.13.0 -e '.[dev]'
{
    echo "# Pinned dependencies of tracekit's own machines (README set-up commands, .ci/run): use as a constraints file,"
    echo "#     pip install -c requirements/lock.txt torch==2.13.0 -e '.[dev]'"
    echo "# Users get pyproject.toml's open ranges instead. Do not edit by hand; regenerate with"
    echo "#     bash requirements/relock.sh"
    echo "# which resolves torch==2.13.0 -e '.[dev]' in a fresh venv without this file (the newest releases allowed)."
    echo "# Generated $(date -u +%Y-%m-%d) with $("$tmp/venv/bin/python" -V) on $(uname -m)."
    echo "# torch is pinned without its local label (+cpu): the CPU wheel where pip finds one (find-links), else PyPI's."
    "$tmp/venv/bin/python" -m pip freeze --exclude-editable | sed -E 's/^(torch==[^+]+)\+.*/\1/'
} >requirements/lock.txt.new
mv requirements/lock.txt.new requirements/lock.txt
echo "requirements/lock.txt: $(grep -vc '^#' requirements/lock.txt) packages"
