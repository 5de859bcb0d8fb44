package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/t3fleet/t3fleet"
	"github.com/t3fleet/t3fleet/adapters/npm"
	"github.com/t3fleet/t3fleet/adapters/t3"
	"github.com/t3fleet/t3fleet/pairing"
)

// newMinter is the seed's mint command, or, with -mint-versions, a mint with
// the build each instance runs (its serverVersion, found in the side-by-side
// tree the updater stages): a newer CLI would migrate a running older
// instance's database under it (T3-CONTRACT.md, the 2026-06-09 outage).
func newMinter(c config) (pairing.Minter, error) {
	if c.mintVersions == "" {
		argv, err := t3.SplitCommand(c.mintCommand)
		if err != nil {
			return nil, err
		}
		return t3.NewCLIMinter(argv, t3.CLIMinterOptions{})
	}
	tree, err := npm.NewSideBySide(c.mintVersions, npm.SideBySideOptions{})
	if err != nil {
		return nil, err
	}
	runAs, err := t3.SplitCommand(c.mintRunAs)
	if err != nil {
		return nil, fmt.Errorf("-mint-run-as: %w", err)
	}
	m, err := t3.NewVersionMinter(tree.BinFor, t3.VersionMinterOptions{RunAs: runAs})
	if err != nil {
		return nil, err
	}
	return homeStateDir{Minter: m, root: c.homeRoot}, nil
}

// homeStateDir gives an instance with no state_dir in the table the seed's
// default, <home root>/<os user>/.t3.
type homeStateDir struct {
	pairing.Minter
	root string
}

func (h homeStateDir) Mint(ctx context.Context, in t3fleet.Instance) (pairing.Credential, error) {
	if in.StateDir == "" {
		if err := t3fleet.ValidOSUser(in.OSUser); err != nil {
			return pairing.Credential{}, fmt.Errorf("mint for %s: %w", in.User, err)
		}
		in.StateDir = filepath.Join(h.root, in.OSUser, ".t3")
	}
	return h.Minter.Mint(ctx, in)
}
