package hostfiles_test

import (
	"fmt"

	"github.com/t3fleet/t3fleet/adapters/hostfiles"
)

func ExampleParseUserMap() {
	m, err := hostfiles.ParseUserMap("/etc/ttyd-user-map", []byte("# sso=os\nemil.barzin=emil\nana=ana\neve=../root\n"))
	fmt.Println(m.OSUsers())
	fmt.Println(err)
	// Output:
	// [ana emil]
	// user map: /etc/ttyd-user-map:4: "eve=../root": invalid user name: OS user "../root" does not match ^[a-z_][a-z0-9_-]{0,31}$
}
