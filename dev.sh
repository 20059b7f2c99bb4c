#!/usr/bin/env bash
# The project's entry points (see README.md):
#   ./dev.sh demo [--no-ui]   set up, run the main job on embedded defaults (throwaway MariaDB, DataHub Lite,
#                             local Dagster home), print a summary, then open Dagit (unless --no-ui)
#   ./dev.sh test [ARGS]      set up, check lint and format (ruff), and run the whole test suite (pytest ARGS)
#   ./dev.sh setup            only install: .venv with pinned packages, mariadb-server, postgresql and chromium from
#                             Debian
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3}

need_apt=()
[ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null 2>&1 || need_apt+=(mariadb-server)
# PostgreSQL: Dagster's storage in bench/deployed.py (Cloud SQL for PostgreSQL on GKE); metadata_assets/local_postgres.py
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need_apt+=(postgresql)
# Debian splits venv/ensurepip out of python3
[ -x "$VENV/bin/python" ] || "$PY" -c "import venv, ensurepip" >/dev/null 2>&1 || need_apt+=(python3-venv)

install_system() {
  if [ "${1:-}" = with-browser ]; then
    command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need_apt+=(chromium)
  fi
  if [ ${#need_apt[@]} -gt 0 ]; then
    echo "[setup] installing ${need_apt[*]} from Debian's packages" >&2
    local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  fi
}

install_python() {
  local stamp=$VENV/.installed lock_sum
  lock_sum=$( (cat requirements-uv.lock requirements-dev.lock pyproject.toml; echo compiled-1) | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ]; then return; fi
  echo "[setup] creating $VENV from requirements-dev.lock (pinned)" >&2
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r requirements-uv.lock
  # every file checked against the lock's sha256 (uv refuses a package whose hash is not listed)
  "$VENV/bin/uv" pip sync -q --require-hashes --python "$VENV/bin/python" requirements-dev.lock
  # the project itself, editable, nothing else (its dependencies are the lock's)
  "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps -e .
  # Bytecode once, as the Dockerfile does: with PYTHONDONTWRITEBYTECODE set (this machine, many CI images) every
  # Dagster process (webserver, daemon, code server, each run) would otherwise compile dagster and acryl-datahub
  # from source at start, ~5 s each.
  "$VENV/bin/python" -m compileall -q -j 0 "$VENV/lib" >/dev/null
  echo "$lock_sum" > "$stamp"
}

export DATAHUB_TELEMETRY_ENABLED=false DAGSTER_DISABLE_TELEMETRY=1
cmd=${1:-help}; shift || true
case "$cmd" in
  setup) install_system with-browser; install_python ;;
  demo) install_system; install_python; exec "$VENV/bin/metadata-assets" demo "$@" ;;
  test) install_system with-browser; install_python
    # lint and format first (pinned ruff, settings in pyproject.toml): a finding fails the command before any test
    "$VENV/bin/ruff" check --quiet . && "$VENV/bin/ruff" format --check --quiet . \
      || { echo "[test] ruff found the above (fix: .venv/bin/ruff format . && .venv/bin/ruff check --fix .)" >&2; exit 1; }
    exec "$VENV/bin/python" -m pytest "$@" ;;
  *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
