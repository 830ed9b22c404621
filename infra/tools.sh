#!/usr/bin/env bash
# Installs what the tests and the local stack need when it is missing.
# Versions are pinned; everything listens on loopback only.
set -euo pipefail
GOBIN=$(go env GOPATH)/bin
need() { command -v "$1" >/dev/null 2>&1 || [ -x "$GOBIN/$1" ]; }

if ! need aws-lambda-rie; then
  echo "installing aws-lambda-rie"
  (cd /tmp && go install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d)
fi
if ! need moto_server; then
  echo "installing moto_server with pip"
  python3 -m pip install --quiet "moto[server]" || { echo "moto_server is missing and pip could not install it: run pip install 'moto[server]'"; exit 1; }
fi
if ! need chromium && [ -n "${REQUIRE_EMULATORS:-}" ]; then
  echo "installing chromium (for the dashboard browser test)"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi
