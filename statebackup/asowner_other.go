//go:build !linux

package statebackup

// asOwner runs fn (filesystem rights are switched on Linux only).
func asOwner(o Owner, fn func() error) error { return fn() }
