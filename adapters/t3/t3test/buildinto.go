package t3test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// BuildCLIInto builds the fake t3 CLI into dir/t3 and returns its path: the
// non-test twin of BuildCLI, for demos and tools that have no testing.TB.
// It needs the go command (GOROOT's, else the one on PATH).
func BuildCLIInto(ctx context.Context, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build fake CLI: %w", err)
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			return "", errors.New("build fake CLI: no go command")
		}
	}
	bin := filepath.Join(dir, "t3")
	out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, CLIPackage).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", CLIPackage, err, out)
	}
	return bin, nil
}
