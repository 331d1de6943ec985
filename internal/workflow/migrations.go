package workflow

import (
	"embed"
	"io/fs"

	"github.com/beaconhq/beacon/internal/database"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// The workflow tables are this package's: every binary and test that links
// it migrates them (see database.RegisterMigrations).
func init() {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err)
	}
	database.RegisterMigrations("workflow", sub)
}
