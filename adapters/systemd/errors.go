package systemd

import (
	"errors"
	"fmt"
)

// ErrJobFailed matches every *JobError with errors.Is.
var ErrJobFailed = errors.New("systemd job failed")

// JobError is a start, stop or restart whose job did not end "done", or a
// start or restart whose job ended "done" with the unit not running
// (failed, inactive, deactivating, or activating towards an auto-restart).
type JobError struct {
	Op     string // "start", "stop" or "restart"
	Unit   string
	Result string // the job result: canceled, timeout, failed, dependency, skipped, or done
	State  string // the unit's ActiveState after the job, when it was the reason
	// SubState is the unit's SubState with State, e.g. "auto-restart".
	SubState string
}

func (e *JobError) Error() string {
	if e.SubState != "" {
		return fmt.Sprintf("%s %s: job %s but the unit is %s (%s)", e.Op, e.Unit, e.Result, e.State, e.SubState)
	}
	if e.State != "" {
		return fmt.Sprintf("%s %s: job %s but the unit is %s", e.Op, e.Unit, e.Result, e.State)
	}
	return fmt.Sprintf("%s %s: job %s", e.Op, e.Unit, e.Result)
}

// Is reports whether target is ErrJobFailed.
func (e *JobError) Is(target error) bool { return target == ErrJobFailed }
