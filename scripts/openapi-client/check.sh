#!/usr/bin/env bash
# Type-checks client.ts against the committed OpenAPI document of
# examples/accounts: generates TypeScript types from docs/openapi.json with
# openapi-typescript, then runs tsc on a client that uses them. A breaking
# change to the contract (a member renamed or retyped, a route or a status
# gone) fails here. Needs Node.js (20 or later) and npm; installs the pinned
# tools from package-lock.json.
set -euo pipefail
cd "$(dirname "$0")"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool is not installed; the OpenAPI client check needs Node.js 20+ and npm" >&2
    exit 1
  fi
done

major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
  echo "error: Node.js $(node --version) is too old; the OpenAPI client check needs 20 or later" >&2
  exit 1
fi

# Exactly the versions of package-lock.json.
npm ci --no-audit --no-fund --loglevel=error
rm -f generated.ts
npx --no-install openapi-typescript ../../docs/openapi.json -o generated.ts
npx --no-install tsc --noEmit -p tsconfig.json
echo "the client type-checks against docs/openapi.json"
