#!/usr/bin/env bash
# The lab in containers: builds the image (no registry needed), then runs docker compose in the
# foreground. Ctrl-C stops it; `./scripts/compose-up.sh down` removes containers and volumes.
#
#   ./scripts/compose-up.sh            ledger, payments and auditor tell the story
#   ./scripts/compose-up.sh --attacks  ... and every intruder tries its attack
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/compose.sh

case "${1:-}" in
  down) exec "${COMPOSE[@]}" --profile attacks down --volumes --remove-orphans ;;
  --attacks) profile=(--profile attacks) ;;
  "") profile=() ;;
  *) echo "usage: $0 [--attacks | down]" >&2; exit 2 ;;
esac

./scripts/build-image.sh && ./scripts/build-postgres-image.sh
"${COMPOSE[@]}" "${profile[@]}" up --remove-orphans
