package npmtest_test

import (
	"context"
	"fmt"
	"os"

	"github.com/t3fleet/t3fleet/adapters/npm/npmtest"
)

// A bin script that runs a fake t3 CLI of era B as version 0.0.25.
func ExampleBinScript() {
	fmt.Print(npmtest.BinScript("0.0.25", npmtest.PublishOptions{CLI: "/tmp/t3fake", Era: "B"}))
	// Output:
	// #!/bin/sh
	// T3FAKE_VERSION='0.0.25'
	// export T3FAKE_VERSION
	// T3FAKE_ERA='B'
	// export T3FAKE_ERA
	// exec '/tmp/t3fake' "$@"
}

// Outside a test (a demo): start a registry, publish, move a tag, stop.
func ExampleStart() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "registry-")
	defer os.RemoveAll(dir)
	reg, err := npmtest.Start(ctx, dir, npmtest.Options{})
	if err != nil {
		fmt.Println(err) // e.g. verdaccio not found
		return
	}
	defer reg.Close()
	_ = reg.PublishT3(ctx, "0.0.30-nightly.20260902.101", "nightly", npmtest.PublishOptions{})
	_ = reg.MoveTag(ctx, "nightly", "0.0.30-nightly.20260902.101")
	fmt.Println(reg.Env()) // for exec.Cmd.Env, after os.Environ()
}
