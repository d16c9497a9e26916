// Package upgrades holds the numbered SQL migrations of the bridge database.
//
// 00-latest.sql creates a fresh database at the newest version; each later
// file moves an existing database one version up. A shipped file is never
// edited: fix it with the next one.
package upgrades

import (
	"embed"

	"go.mau.fi/util/dbutil"
)

//go:embed *.sql
var rawUpgrades embed.FS

// Table is the upgrade table that database.Open runs at start.
var Table = dbutil.BuildUpgradeTable().WithFS(rawUpgrades).Finish()
