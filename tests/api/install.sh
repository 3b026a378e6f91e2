#!/usr/bin/env bash
# Installs the pinned openai client (package-lock.json) into tests/api/node_modules (git-ignored).
# Needs Node >= 20 and npm with access to the npm registry.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
node -e "console.log('openai', require('./node_modules/openai/package.json').version, 'installed for node', process.version)"
