package systemd_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/t3fleet/t3fleet/adapters/systemd"
	"github.com/t3fleet/t3fleet/rollout"
)

func ExampleManager_UnitName() {
	// No connection is needed to name units; calls that reach systemd need
	// a Client (DialSystem, DialUser, DialSocket).
	m, err := systemd.New(nil, systemd.Options{Template: "t3-serve@.service"})
	if err != nil {
		log.Fatal(err)
	}
	name, err := m.UnitName("emil")
	fmt.Println(name, err)
	_, err = m.UnitName("../root")
	fmt.Println(err != nil)
	// Output:
	// t3-serve@emil.service <nil>
	// true
}

func ExampleDialSocket() {
	ctx := context.Background()
	// A rootless deployment's own user manager, reached the way systemctl
	// --user reaches it.
	sock := filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "systemd", "private")
	m, err := systemd.DialSocket(ctx, sock, systemd.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	var um rollout.UnitManager = m
	units, err := um.Units(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, u := range units {
		st, err := um.Status(ctx, u)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(u.User, st.State, st.MainPID, st.ActiveSince)
	}
}
