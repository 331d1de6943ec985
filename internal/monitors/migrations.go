package monitors

import (
	"embed"
	"io/fs"

	"github.com/beaconhq/beacon/internal/database"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// The domain's tables are its own: every binary and test that links the
// domain migrates them, after the platform's (see database.RegisterMigrations).
func init() {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err)
	}
	database.RegisterMigrations("monitors", sub)
}
