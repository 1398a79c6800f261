# Sourced by the other scripts: make .venv with everything brownout's demo, tests and
# benchmarks need, reinstalling only when pyproject.toml changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.brownout-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # This machine's pip config names local mirrors that may be absent; their warnings are noise.
  .venv/bin/python -m pip install --quiet --upgrade pip 2> >(grep -v "^WARNING: Location" >&2)
  .venv/bin/python -m pip install --quiet \
    -e ".[redis,sqlalchemy,boto3,aiobotocore,openai,prometheus,test,dev,bench]" \
    2> >(grep -v "^WARNING: Location" >&2)
  touch "$stamp"
fi
export PATH="$root/.venv/bin:$PATH"
