package statebackup_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/t3fleet/t3fleet/adapters/t3/t3test"
	"github.com/t3fleet/t3fleet/statebackup"
)

func ExampleStore() {
	ctx := context.Background()
	tmp, _ := os.MkdirTemp("", "statebackup-example")
	defer os.RemoveAll(tmp)
	base := filepath.Join(tmp, "home", "emil", ".t3")
	if err := t3test.SeedState(base, t3test.EraD, t3test.SeedOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	target := statebackup.Target{User: "emil", UserdataDir: filepath.Join(base, "userdata"), Version: "0.0.40"}

	st := statebackup.NewStore(filepath.Join(tmp, "backups"), statebackup.Options{})
	snap, err := st.Backup(ctx, target, statebackup.PrebumpLabel("0.0.46"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(snap.Label, snap.SchemaLevel, snap.Source, snap.Verified)

	latest, _ := st.LatestPrebump(ctx, target)
	if err := st.Restore(ctx, target, latest); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("restored")
	// Output:
	// prebump-0.0.46 32 state.sqlite true
	// restored
}
