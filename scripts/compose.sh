# Sourced by the compose scripts: picks Docker Compose v2 (`docker compose`) when the engine
# has it, else v1 (`docker-compose`), into the array COMPOSE.
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  COMPOSE=(docker-compose)
else
  echo "error: neither 'docker compose' nor 'docker-compose' is installed" >&2
  exit 1
fi
