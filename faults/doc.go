// Package faults is Beacon's fault-injection suite: real beacon processes
// (built from cmd/beacon) on a throwaway PostgreSQL, with workers killed,
// PostgreSQL restarted under load, replicas restarted behind haproxy, the
// telemetry collector gone, users revoked mid-session and the API fuzzed
// from its own OpenAPI document.
//
// The tests are behind the build tag "faults", so `go test ./...` skips
// them. Run them with `make faults`, or:
//
//	go test -tags faults -v -count=1 -timeout 20m ./faults/
//
// They need the PostgreSQL server binaries (scripts/pg.sh finds them) and
// haproxy (Debian: apt-get install haproxy). Every address is on loopback.
// FAULTS_WORKDIR names the folder for the clusters and the binary (default:
// a new folder in the system's temporary directory, removed after);
// FAULTS_BEACON runs a given beacon binary instead of building cmd/beacon.
package faults
