#!/bin/bash
# Packs what an offline CUDA machine needs to build loramix with -tags cuda
# into .gocarry/ (git-ignored; name it in the device call's carry):
#   .gocarry/go.tar.xz      a trimmed Go toolchain (../shared/tools/pack-go-toolchain.sh)
#   .gocarry/vendor.tar.xz  the vendored modules of the packages we build there
# The module is copied to a temporary folder and vendored there, so the repo's
# own go.mod/go.sum and working tree are never touched.
# Usage: scripts/device/pack.sh [PKG...]   (default: ./engine/cuda/... ./cmd/loramix)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
pkgs=("$@")
[[ ${#pkgs[@]} -gt 0 ]] || pkgs=(./engine/cuda/... ./cmd/loramix)
mkdir -p .gocarry
tools=${LORAMIX_SHARED:-$root/../shared}/tools
"$tools/pack-go-toolchain.sh" .gocarry

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# tracked and untracked-but-not-ignored files: what the device call sends
git ls-files -co --exclude-standard -z | grep -zv '^shared/' | xargs -0 cp --parents -t "$tmp" 2>/dev/null || true
cd "$tmp"
export GOFLAGS=-mod=mod GOWORK=off
go mod vendor
# Prune vendor/ to the packages the chosen builds (with and without the tag,
# tests included) import: list them, then drop every other vendored package.
keep=$(mktemp)
for tags in cuda ""; do
  go list -tags "$tags" -test -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' "${pkgs[@]}" 2>/dev/null || true
done | { grep -v '^loramix' || true; } | sed 's/ .*//' | sort -u >"$keep"
find vendor -name '*.go' -printf '%h\n' | sort -u | sed 's#^vendor/##' | while read -r d; do
  grep -qxF "$d" "$keep" || find "vendor/$d" -maxdepth 1 -type f -delete
done
find vendor -type d -empty -delete
# vendor/modules.txt must keep listing the kept packages; the build checks it.
tar cf - vendor | xz -T2 -6 >"$root/.gocarry/vendor.tar.xz"
echo "vendored $(wc -l <"$keep") packages into .gocarry/vendor.tar.xz ($(du -h "$root/.gocarry/vendor.tar.xz" | cut -f1))"
rm -f "$keep"
