#!/usr/bin/env bash
# The main job: the retail example service under a chaos script, shown live
# (`brownout demo`; pass --profile short, --forever, --plain or --database-url URL).
source "$(dirname "$0")/venv.sh"
python -m brownout demo "$@"
