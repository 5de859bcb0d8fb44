package npm_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/t3fleet/t3fleet/adapters/npm"
)

func ExampleValidVersion() {
	for _, v := range []string{"0.0.30-nightly.20260902.101", "0.0.24", "~0.0.24", "../0.0.24", "latest"} {
		fmt.Println(v, npm.ValidVersion(v) == nil)
	}
	// Output:
	// 0.0.30-nightly.20260902.101 true
	// 0.0.24 true
	// ~0.0.24 false
	// ../0.0.24 false
	// latest false
}

func ExampleRegistry_Resolve() {
	ctx := context.Background()
	reg := npm.NewRegistry(npm.RegistryOptions{}) // registry and token from npm config
	rel, err := reg.Resolve(ctx, "nightly")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rel.Version, rel.Published)
}

func ExampleSideBySide() {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	inst, err := npm.NewSideBySide("/opt/t3", npm.SideBySideOptions{Logger: logger})
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := inst.Stage(ctx, "0.0.30-nightly.20260902.101") // npm install into a temp dir, renamed
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := inst.Activate(ctx, b); err != nil { // /opt/t3/current -> versions/0.0.30-...
		fmt.Println(err)
		return
	}
	bin, _ := inst.BinFor("0.0.30-nightly.20260902.101") // mint with the matching build
	fmt.Println(bin)
}
