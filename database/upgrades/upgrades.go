// Package upgrades holds the numbered SQL migrations of the bridge database.
//
// 00-latest.sql creates a fresh database at the newest version; each later
// file moves an existing database one version up. A shipped file is never
// edited: fix it with the next one.
package upgrades

import (
	"embed"
	"strings"

	"go.mau.fi/util/dbutil"
)

//go:embed *.sql
var rawUpgrades embed.FS

// Table is the upgrade table that database.Open runs at start.
var Table = dbutil.BuildUpgradeTable().WithFS(rawUpgrades).Finish()

// TableComments returns, per table of the latest schema, the comment lines
// written above its CREATE TABLE, joined: what the table holds, in the
// schema's own words, so that a description of the database (the privacy
// report) cannot drift from it.
func TableComments() map[string]string {
	raw, err := rawUpgrades.ReadFile("00-latest.sql")
	if err != nil {
		panic(err) // embedded at build time
	}
	out := map[string]string{}
	var comment []string
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "-- v"):
			// The version header is not about a table.
		case strings.HasPrefix(line, "--"):
			comment = append(comment, strings.TrimSpace(strings.TrimPrefix(line, "--")))
		case strings.HasPrefix(line, "CREATE TABLE "):
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "CREATE TABLE "), " ")
			out[name] = strings.Join(comment, " ")
			comment = nil
		default:
			comment = nil
		}
	}
	return out
}
