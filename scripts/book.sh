#!/usr/bin/env bash
# Builds or serves the book with the pinned tools, installing them first if they are missing.
#
#   scripts/book.sh build          render into target/book (open target/book/index.html); exits
#                                  non-zero, naming the directive, if a program failed; ends with
#                                  the tally of the findings the programs printed
#   scripts/book.sh serve [ARGS]   live preview on http://localhost:3000, re-running a chapter's
#                                  program whenever its Markdown or its Rust changes
#   scripts/book.sh tools          install the pinned tools if needed; print the directory of each
#
# mdbook 0.5 changed the JSON that preprocessors read, and mdbook-cmdrun 0.7.3 (the newest) cannot
# parse it: both versions are pinned. An mdbook of exactly this version already on PATH is used as
# it is; otherwise both are installed with `cargo install --locked` into $VMBOOK_TOOLS (default:
# target/tools in this project, so that a reader's own mdbook is never replaced).
#
# Fast path: the directives say `cargo run -q --bin NAME -- ARGS`; mdbook runs them with
# scripts/cargo-shim first on PATH, which runs the built program directly (rebuilding first if any
# source is newer than the last build) instead of paying for cargo on each of them. `serve` also
# shows again the output a program already printed when neither the binary nor its arguments
# changed; `build` always runs every program.
set -euo pipefail

MDBOOK_VERSION=0.4.52
CMDRUN_VERSION=0.7.3

cd "$(dirname "$0")/.."   # mdbook-cmdrun reads ./book.toml: always run from the book root
root=$(pwd)
tools="${VMBOOK_TOOLS:-$root/target/tools}"
state="$root/target/book-shim"
real_cargo=$(command -v cargo)

# mdbook-cmdrun has no --version: read what `cargo install` recorded in the install root (the file
# `cargo install --list --root` lists, read directly: it saves a cargo start on every build).
installed_in() { grep -qF "\"$2 $3 " "$1/.crates.toml" 2>/dev/null; }

# The mdbook to use: one already on PATH if it is the pinned version, else the one in $tools.
mdbook_dir() {
  local found
  found=$(command -v mdbook 2>/dev/null) || true
  if [ -n "$found" ] && [ "$("$found" --version 2>/dev/null)" = "mdbook v$MDBOOK_VERSION" ]; then
    dirname "$found"
  else
    echo "$tools/bin"
  fi
}

# The mdbook-cmdrun to use: one on PATH that cargo installed at the pinned version, else $tools's.
cmdrun_dir() {
  local found
  found=$(command -v mdbook-cmdrun 2>/dev/null) || true
  if [ -n "$found" ] && installed_in "$(dirname "$(dirname "$found")")" mdbook-cmdrun "$CMDRUN_VERSION"; then
    dirname "$found"
  else
    echo "$tools/bin"
  fi
}

# Both installs build in one target directory: mdbook-cmdrun is built on the mdbook library, and
# their lock files agree on most crates (237 of mdbook-cmdrun's 267), so the second install reuses
# what the first compiled instead of compiling it again. The directory goes once both are in.
install_tools() {
  local build="$tools/build"
  if [ "$(mdbook_dir)" = "$tools/bin" ] && ! installed_in "$tools" mdbook "$MDBOOK_VERSION"; then
    echo "installing mdbook $MDBOOK_VERSION into $tools (a few minutes, once)" >&2
    cargo install --locked --quiet --root "$tools" --target-dir "$build" --version "$MDBOOK_VERSION" mdbook
  fi
  if [ "$(cmdrun_dir)" = "$tools/bin" ] && ! installed_in "$tools" mdbook-cmdrun "$CMDRUN_VERSION"; then
    echo "installing mdbook-cmdrun $CMDRUN_VERSION into $tools (a few minutes, once)" >&2
    cargo install --locked --quiet --root "$tools" --target-dir "$build" --version "$CMDRUN_VERSION" mdbook-cmdrun
  fi
  rm -rf "$build"
}

command="${1:-build}"
shift || true
case "$command" in
  build | serve | tools) ;;
  *)
    echo "usage: scripts/book.sh build | serve [mdbook serve options] | tools" >&2
    exit 2
    ;;
esac

install_tools
mdbook="$(mdbook_dir)/mdbook"
if [ "$command" = tools ]; then
  echo "mdbook: $mdbook"
  echo "mdbook-cmdrun: $(cmdrun_dir)/mdbook-cmdrun"
  exit 0
fi

# The shim as `cargo`, first on PATH; then mdbook-cmdrun's directory.
mkdir -p "$state/bin"
ln -sf "$root/scripts/cargo-shim" "$state/bin/cargo"
export PATH="$state/bin:$(cmdrun_dir):$PATH"
export VMBOOK_CARGO="$real_cargo" VMBOOK_ROOT="$root" VMBOOK_SHIM_STATE="$state"
unset VMBOOK_BIN_DIR VMBOOK_CACHE VMBOOK_RECORD
# Outputs of binaries that no longer exist are of no use after a while.
find "$state/cache" -type f -mtime +1 -delete 2>/dev/null || true

# Build the chapter programs first (the stamp the shim checks), so that the first page does not wait
# for the compiler, and a compile error shows here, plainly.
touch "$state/started"
"$real_cargo" build --quiet --bins
mv "$state/started" "$state/built"

case "$command" in
  build)
    export VMBOOK_RECORD="$state/record"
    rm -rf "$VMBOOK_RECORD"
    mkdir -p "$VMBOOK_RECORD/failures"
    "$mdbook" build "$@"
    failed=0
    for record in "$VMBOOK_RECORD/failures"/*; do
      [ -e "$record" ] || continue
      failed=$((failed + 1))
      # The record's first line is the program and its arguments as `printf %q` quotes them; find
      # the directives that run exactly that.
      ran=$(head -1 "$record")
      where=$(grep -rnoE '<!--[ ]*cmdrun -0 cargo run -q --bin [a-z0-9-]+( -- [^>]*)?-->' book \
        | while IFS= read -r hit; do
            location=${hit%%:<!--*}
            text=$(sed -E 's/.*--bin ([a-z0-9-]+)( -- )?(.*)-->$/\1 \3/' <<<"$hit")
            # shellcheck disable=SC2086 # split as sh -c splits it
            if [ "$(eval "set -- $text"; printf '%q ' "$@")" = "$ran" ]; then echo "$location"; fi
          done)
      echo "error: ${where:-a directive}: \`cargo run -q --bin ${ran% }\` failed" >&2
      tail -n +2 "$record" | sed 's/^/  /' >&2
    done
    tally() { sed -nE 's/^finding: .* — (confirmed|REFUTED|not checked) \(.*\)$/\1/p' "$VMBOOK_RECORD/runs.log" 2>/dev/null | grep -cx "$1" || true; }
    echo "findings: $(tally confirmed) confirmed, $(tally REFUTED) refuted, $(tally 'not checked') not checked"
    if [ "$failed" -gt 0 ]; then
      echo "error: $failed program run(s) failed; the book in target/book shows a cmdrun error there" >&2
      exit 1
    fi
    echo "built: $root/target/book/index.html"
    ;;
  serve)
    # Unchanged programs show their last output again; an edited one is rebuilt and run.
    export VMBOOK_CACHE=1
    exec "$mdbook" serve "$@"
    ;;
esac
