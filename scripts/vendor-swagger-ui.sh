#!/usr/bin/env bash
# Vendors swagger-ui-dist into internal/httpapi/docsui/assets so the API docs
# UI is embedded in the binary and works offline (no CDN at run time).
#
# Usage: scripts/vendor-swagger-ui.sh [VERSION]
# Pin an exact version so the vendored files are reproducible; bump it here
# deliberately and re-run.
set -euo pipefail

VERSION="${1:-5.35.0}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${repo_root}/internal/httpapi/docsui/assets"

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT

(cd "${tmp}" && npm pack --silent "swagger-ui-dist@${VERSION}" >/dev/null)
tarball="$(find "${tmp}" -maxdepth 1 -name 'swagger-ui-dist-*.tgz' -print -quit)"
if [[ -z "${tarball}" ]]; then
	echo "npm pack did not produce a tarball" >&2
	exit 1
fi
tar -xzf "${tarball}" -C "${tmp}"
pkg="${tmp}/package"

actual="$(node -p "require('${pkg}/package.json').version")"
if [[ "${actual}" != "${VERSION}" ]]; then
	echo "expected swagger-ui-dist ${VERSION}, got ${actual}" >&2
	exit 1
fi

mkdir -p "${dest}"
# Drop previously vendored files so nothing stale survives a version bump.
find "${dest}" -mindepth 1 -maxdepth 1 -type f -delete

# Source maps are not vendored; strip the references so browsers don't
# request missing .map files.
for f in swagger-ui-bundle.js swagger-ui.css oauth2-redirect.js; do
	sed -E '/^[[:space:]]*(\/\/|\/\*)[#@] sourceMappingURL=/d' "${pkg}/${f}" >"${dest}/${f}"
done
# oauth2-redirect.html loads oauth2-redirect.js, so both are needed for the
# OAuth2 flows to complete.
cp "${pkg}/oauth2-redirect.html" "${pkg}/favicon-32x32.png" "${dest}/"
# The bundle's banner points at this file for the licenses of the third-party
# code bundled into it; ship it alongside to stay license-compliant.
cp "${pkg}/swagger-ui-bundle.js.LICENSE.txt" "${dest}/"

license_found=0
for f in LICENSE LICENSE.md LICENSE.txt NOTICE NOTICE.md NOTICE.txt; do
	if [[ -f "${pkg}/${f}" ]]; then
		cp "${pkg}/${f}" "${dest}/${f}"
		[[ "${f}" == LICENSE* ]] && license_found=1
	fi
done
if [[ "${license_found}" -ne 1 ]]; then
	echo "no LICENSE found in swagger-ui-dist ${VERSION}" >&2
	exit 1
fi

printf '%s\n' "${VERSION}" >"${dest}/VERSION"

# Keep files small enough for the repo's size limit.
max=$((2 * 1024 * 1024))
for f in "${dest}"/*; do
	size="$(stat -c %s "${f}")"
	if ((size >= max)); then
		echo "${f} is ${size} bytes (limit ${max})" >&2
		exit 1
	fi
done

if grep -nE '^[[:space:]]*(//|/\*)[#@] sourceMappingURL=' \
	"${dest}/swagger-ui-bundle.js" "${dest}/swagger-ui.css" "${dest}/oauth2-redirect.js"; then
	echo "sourceMappingURL still present after stripping" >&2
	exit 1
fi

echo "vendored swagger-ui-dist ${VERSION} into ${dest#"${repo_root}"/}"
