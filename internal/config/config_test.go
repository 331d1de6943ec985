package config

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(env(nil))
	require.NoError(t, err)
	require.Equal(t, Development, c.Env)
	require.Equal(t, ":8080", c.HTTPAddr)
	require.Equal(t, ":9464", c.OpsAddr)
	require.Equal(t, 20*time.Second, c.ShutdownTimeout)
	require.Equal(t, 50, c.WorkerConcurrency)
	require.Equal(t, "text", c.LogFormat, "development logs are text by default")
	require.True(t, c.MigrateOnStart)
	require.Empty(t, c.CheckAllow)
	require.Equal(t, 5*time.Millisecond, c.JobFetchCooldown)
	require.Equal(t, 100*time.Millisecond, c.JobFetchPollInterval)
	require.Zero(t, c.JobRescueAfter, "derived from the longest job timeout")
	require.Equal(t, 10, c.DBMaxConns)
	require.Equal(t, 10, c.DBWorkerMaxConns)

	require.Equal(t, DevAdminEmail, c.AdminEmail, "development has a default first admin")
	require.Equal(t, DevAdminPassword, c.AdminPassword)

	c, err = Load(env(production))
	require.NoError(t, err)
	require.Equal(t, "json", c.LogFormat)
}

// production holds the secrets production requires.
var production = map[string]string{
	"BEACON_ENV":            "production",
	"BEACON_JWT_SECRET":     "4bX9q2Lr7vT0wYk1mNc8ZpQ3sJd6HfGa",
	"BEACON_ADMIN_EMAIL":    "ops@example.org",
	"BEACON_ADMIN_PASSWORD": "correct horse battery staple",
}

func TestProductionRefusesPlaceholderSecrets(t *testing.T) {
	t.Parallel()
	for name, bad := range map[string][]string{
		"BEACON_JWT_SECRET":     {"", "changeme", "short", "${BEACON_JWT_SECRET}", "<random>"},
		"BEACON_ADMIN_EMAIL":    {"", "nobody"},
		"BEACON_ADMIN_PASSWORD": {"", "changeme", "password", "short", DevAdminPassword, "change-me-please-now"},
	} {
		for _, v := range bad {
			vars := map[string]string{}
			for k, val := range production {
				vars[k] = val
			}
			vars[name] = v
			_, err := Load(env(vars))
			require.Error(t, err, "%s=%q", name, v)
			require.Contains(t, err.Error(), name)
			if len(v) > 8 {
				require.NotContains(t, err.Error(), v, "the error must not echo the secret")
			}
		}
	}
	_, err := Load(env(map[string]string{"BEACON_JWT_SECRET": "too-short"}))
	require.ErrorContains(t, err, "BEACON_JWT_SECRET", "a set secret is checked in development too")
}

func TestLoadValues(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{
		"DATABASE_URL":              "postgres://u:p@db:5432/beacon",
		"BEACON_HTTP_ADDR":          "127.0.0.1:0",
		"BEACON_WORKER_CONCURRENCY": " 7 ",
		"BEACON_SHUTDOWN_TIMEOUT":   "3s",
		"BEACON_CHECK_ALLOW_CIDRS":  "127.0.0.0/8, ::1",
		"BEACON_MIGRATE_ON_START":   "false",
		"BEACON_JOB_FETCH_COOLDOWN": "20ms",
		"BEACON_JOB_RESCUE_AFTER":   "10m",
		"BEACON_DB_MAX_CONNS":       "25",
	}))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:0", c.HTTPAddr)
	require.Equal(t, 7, c.WorkerConcurrency)
	require.Equal(t, 3*time.Second, c.ShutdownTimeout)
	require.Len(t, c.CheckAllow, 2)
	require.False(t, c.MigrateOnStart)
	require.Equal(t, 20*time.Millisecond, c.JobFetchCooldown)
	require.Equal(t, 10*time.Minute, c.JobRescueAfter)
	require.Equal(t, 25, c.DBMaxConns)
	require.NoError(t, c.RequireDatabase())
}

func TestLoadErrorsNameTheVariableOnOneLine(t *testing.T) {
	t.Parallel()
	for name, value := range map[string]string{
		"BEACON_ENV":                "staging",
		"DATABASE_URL":              "mysql://x",
		"BEACON_HTTP_ADDR":          "8080",
		"BEACON_OPS_ADDR":           "host:99999",
		"BEACON_SHUTDOWN_TIMEOUT":   "soon",
		"BEACON_WORKER_CONCURRENCY": "0",
		"BEACON_SCHEDULER_INTERVAL": "10m",
		"BEACON_SCHEDULER_BATCH":    "many",
		"BEACON_RESULT_RETENTION":   "5m",
		"BEACON_CHECK_ALLOW_CIDRS":  "10.0.0.0/33",
		"BEACON_LOG_LEVEL":          "loud",
		"BEACON_LOG_FORMAT":         "xml",
		"BEACON_MIGRATE_ON_START":   "maybe",
		"BEACON_JOB_FETCH_COOLDOWN": "0s",
		// Polling more often than fetches may happen makes no sense.
		"BEACON_JOB_FETCH_POLL_INTERVAL": "2ms",
		"BEACON_JOB_RESCUE_AFTER":        "1s",
		"BEACON_DB_MAX_CONNS":            "1",
		"BEACON_DB_WORKER_MAX_CONNS":     "x",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(env(map[string]string{name: value}))
			require.Error(t, err)
			require.Contains(t, err.Error(), name)
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestDatabaseURLSecretsStayHidden(t *testing.T) {
	t.Parallel()
	_, err := Load(env(map[string]string{"DATABASE_URL": "postgres://u:s3cret@%zz/db"}))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")

	c := Config{DatabaseURL: "postgres://beacon:s3cret@db:5432/beacon?sslmode=disable"}
	require.NotContains(t, c.MaskedDatabaseURL(), "s3cret")
	require.Equal(t, "postgres://beacon:xxxxx@db:5432/beacon?sslmode=disable", c.MaskedDatabaseURL())
	require.NotContains(t, MaskURL("postgres://db/beacon?password=s3cret"), "s3cret")

	require.ErrorContains(t, Config{}.RequireDatabase(), "DATABASE_URL")
}

func TestVarsDocumentEveryVariable(t *testing.T) {
	t.Parallel()
	// Every variable Load reads must be listed for the README and --help.
	var read []string
	_, _ = Load(func(k string) string { read = append(read, k); return "" })
	listed := map[string]bool{}
	for _, v := range Vars {
		listed[v.Name] = true
	}
	for _, k := range read {
		require.True(t, listed[k], "%s is read but not listed in Vars", k)
	}
}

// The README's configuration table must say what Vars says.
func TestREADMEListsEveryVariable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	for _, v := range Vars {
		def := "`" + v.Default + "` "
		if v.Default == "" {
			def = ""
		} else if strings.Contains(v.Default, " ") {
			def = v.Default + " "
		}
		row := fmt.Sprintf("| `%s` | %s| %s |", v.Name, def, v.Meaning)
		require.True(t, strings.Contains(string(readme), row), "README.md lacks the row %s", row)
	}
}
