#!/usr/bin/env bash
# Runs weft bench through the API and DBOS Transact (PostgreSQL) side by
# side, in one invocation on one machine: the comparison of
# docs/performance.md, "Beside a PostgreSQL engine". Needs Debian's
# postgresql package (initdb, pg_ctl) and is run from the repository root:
#
#	bash internal/bench/peers/run.sh
set -euo pipefail
ROUNDS=${ROUNDS:-2}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
work=$(mktemp -d)
trap 'set +e; [ -n "${wpid:-}" ] && kill $wpid 2>/dev/null; as_pg "$PGBIN/pg_ctl -D $work/pg -m fast stop" >/dev/null 2>&1; rm -rf "$work"' EXIT
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -c "$1"; else sh -c "$1"; fi; }

go build -o "$work/weft" ./cmd/weft
(cd internal/bench/peers/dbos && go build -o "$work/dbos" .)
mkdir "$work/pg" && [ "$(id -u)" = 0 ] && chown postgres "$work" "$work/pg"
as_pg "$PGBIN/initdb -D $work/pg -A trust -U postgres" >/dev/null
# PostgreSQL's defaults: fsync on, synchronous_commit on (each commit on disk).
as_pg "$PGBIN/pg_ctl -D $work/pg -o '-p 15432 -k $work -c listen_addresses=127.0.0.1 -c max_connections=200' -l $work/pg.log -w start" >/dev/null
DB=postgres://postgres@127.0.0.1:15432/postgres

weft_server() { # [--sync always]
	rm -rf "$work/data"
	"$work/weft" server --data "$work/data" --addr 127.0.0.1:18080 --nats-addr 127.0.0.1:14222 "$@" >"$work/weft.log" 2>&1 &
	wpid=$!
	for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:18080/ && return; sleep 0.1; done
	echo "weft server did not start" >&2; exit 1
}
B() { "$work/weft" bench --server http://127.0.0.1:18080 --quiet "$@"; }
stop_weft() { kill $wpid; wait $wpid 2>/dev/null || true; wpid=; }

for r in $(seq "$ROUNDS"); do
	echo "== round $r, $(date -u +%H:%M:%S) UTC"
	weft_server
	B --wait poll -n 2000 -c 64 >/dev/null
	echo "weft (await, -c 64):   $(B --wait await -n 12000 -c 64 | sed -n '2p;3p' | tr '\n' ' ')"
	echo "weft (await, -c 1):    $(B --wait await -n 2000 -c 1 | sed -n '3p')"
	stop_weft
	echo "$("$work/dbos" -db $DB -n 6000 -c 64)"
	echo "$("$work/dbos" -db $DB -n 1000 -c 1 -warm 100)"
	weft_server --sync always
	B --wait await -n 500 -c 64 >/dev/null
	echo "weft --sync always (await, -c 64): $(B --wait await -n 6000 -c 64 | sed -n '2p;3p' | tr '\n' ' ')"
	stop_weft
done
