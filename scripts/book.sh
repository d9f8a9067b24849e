#!/usr/bin/env bash
# Builds or serves the book with the pinned tools, installing them first if they are missing.
#
#   scripts/book.sh build          render into target/book (open target/book/index.html)
#   scripts/book.sh serve [ARGS]   live preview on http://localhost:3000, re-running a chapter's
#                                  program whenever its Markdown or its Rust changes
#
# mdbook 0.5 changed the JSON that preprocessors read, and mdbook-cmdrun 0.7.3 (the newest) cannot
# parse it: both versions are pinned. They are installed with `cargo install --locked` into
# $VMBOOK_TOOLS (default: ~/.cargo), unless that directory already has exactly these versions.
set -euo pipefail

MDBOOK_VERSION=0.4.52
CMDRUN_VERSION=0.7.3
tools="${VMBOOK_TOOLS:-${CARGO_HOME:-$HOME/.cargo}}"
export PATH="$tools/bin:$PATH"

cd "$(dirname "$0")/.."   # mdbook-cmdrun reads ./book.toml: always run from the book root

# mdbook-cmdrun has no --version: ask cargo what it installed into $tools.
installed() { cargo install --list --root "$tools" 2>/dev/null | grep -q "^$1 v$2:"; }

if ! installed mdbook "$MDBOOK_VERSION"; then
  echo "installing mdbook $MDBOOK_VERSION into $tools (a few minutes, once)" >&2
  cargo install --locked --quiet --root "$tools" --version "$MDBOOK_VERSION" mdbook
fi
if ! installed mdbook-cmdrun "$CMDRUN_VERSION"; then
  echo "installing mdbook-cmdrun $CMDRUN_VERSION into $tools (a few minutes, once)" >&2
  cargo install --locked --quiet --root "$tools" --version "$CMDRUN_VERSION" mdbook-cmdrun
fi

# Build the chapter programs first, so that the first page does not wait for the compiler.
cargo build --quiet --bins

command="${1:-build}"
shift || true
case "$command" in
  build)
    mdbook build "$@"
    echo "built: $(pwd)/target/book/index.html"
    ;;
  serve)
    exec mdbook serve "$@"
    ;;
  *)
    echo "usage: scripts/book.sh build | serve [mdbook serve options]" >&2
    exit 2
    ;;
esac
