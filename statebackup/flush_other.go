//go:build !linux

package statebackup

// writeBack makes a snapshot durable once it is complete.
type writeBack struct{ path string }

func startWriteBack(path string) *writeBack { return &writeBack{path: path} }

// finish fsyncs the file.
func (w *writeBack) finish() error { return fsyncPath(w.path) }

// abort does nothing.
func (w *writeBack) abort() {}
