//go:build !linux

package statebackup

// flushFile makes path durable.
func flushFile(path string) error { return fsyncPath(path) }
