//go:build linux

// Command backupbench measures statebackup and idlegate on this machine and
// prints ratios, never bare absolutes alone (the machines running it are
// shared, so only a comparison inside one run means something):
//
//   - snapshot throughput of statebackup.Store.Backup with each copy method
//     (copy, chunked write-back and fsync, quick_check, sha256, rename) and
//     of a bare
//     zombiezen VACUUM INTO, synced by SQLite in one flush or written back by
//     us in 8 MB chunks, each
//     as a ratio to the sqlite3 CLI's VACUUM INTO of the same live WAL
//     database, while a writer keeps inserting (target >= 0.8x);
//   - the writer's insert latency (p99, max) while each snapshot runs, next
//     to the same writer with no snapshot running in the same run: the
//     target is a longest stall < 100 ms, but on a shared disk the writer
//     stalls on its own flushes too, so only the comparison says what the
//     snapshot adds;
//   - one idle verdict (idlegate.DBOracle) on a database with 100k threads
//     (target < 20 ms), next to the sqlite3 CLI running the same scan.
//
// Usage:
//
//	go run ./examples/backupbench [-size-mb 200] [-rounds 3] [-rate 840] [-threads 100000]
package main
