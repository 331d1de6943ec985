// Package config loads Beacon's configuration from environment variables into
// one typed struct, with every default in one place.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/beaconhq/beacon/internal/netguard"
)

// Environment names the deployment environment. Some safety checks are
// relaxed only in development.
type Environment string

// Known environments.
const (
	Development Environment = "development"
	Production  Environment = "production"
)

// Config is Beacon's whole configuration. Field comments name the variable.
type Config struct {
	Env         Environment // BEACON_ENV
	DatabaseURL string      // DATABASE_URL (a secret: never log it unmasked)

	HTTPAddr      string // BEACON_HTTP_ADDR: public API
	OpsAddr       string // BEACON_OPS_ADDR: health, pprof (and metrics); never public
	DashboardAddr string // BEACON_DASHBOARD_ADDR: the web dashboard
	APIURL        string // BEACON_API_URL: where `beacon dashboard` finds the API

	ShutdownTimeout time.Duration // BEACON_SHUTDOWN_TIMEOUT
	LogLevel        string        // BEACON_LOG_LEVEL: debug|info|warn|error
	LogFormat       string        // BEACON_LOG_FORMAT: json|text

	WorkerConcurrency int           // BEACON_WORKER_CONCURRENCY: parallel checks per worker process
	SchedulerInterval time.Duration // BEACON_SCHEDULER_INTERVAL: how often due checks are enqueued
	SchedulerBatch    int           // BEACON_SCHEDULER_BATCH: monitors enqueued per transaction
	ResultRetention   time.Duration // BEACON_RESULT_RETENTION: check results older than this are dropped (whole daily partitions)

	JobFetchCooldown     time.Duration // BEACON_JOB_FETCH_COOLDOWN: least time between two fetches of a queue
	JobFetchPollInterval time.Duration // BEACON_JOB_FETCH_POLL_INTERVAL: fetch at least this often without a notification
	JobRescueAfter       time.Duration // BEACON_JOB_RESCUE_AFTER: 0 means derived from the longest job timeout
	DBMaxConns           int           // BEACON_DB_MAX_CONNS: the API's pool (and the only pool of `migrate`)
	DBWorkerMaxConns     int           // BEACON_DB_WORKER_MAX_CONNS: the workers' pool
	CheckAllow           []netip.Prefix
	CheckAllowRaw        string         // BEACON_CHECK_ALLOW_CIDRS: private ranges checks may reach (empty: none)
	TrustedProxies       []netip.Prefix // BEACON_TRUSTED_PROXIES: peers whose X-Forwarded-For is believed
	MigrateOnStart       bool           // BEACON_MIGRATE_ON_START: `beacon all` applies migrations before serving

	JWTSecret     string        // BEACON_JWT_SECRET (a secret)
	AdminEmail    string        // BEACON_ADMIN_EMAIL
	AdminPassword string        // BEACON_ADMIN_PASSWORD (a secret)
	AccessTTL     time.Duration // BEACON_ACCESS_TOKEN_TTL
	RefreshTTL    time.Duration // BEACON_REFRESH_TOKEN_TTL

	PyroscopeURL string // BEACON_PYROSCOPE_URL: continuous profiling off when empty (may hold credentials: never log it)

	IncidentConfirmations  int           // BEACON_INCIDENT_CONFIRMATIONS: re-checks that confirm an outage
	IncidentConfirmSpacing time.Duration // BEACON_INCIDENT_CONFIRM_SPACING: time between two re-checks

	SMTPAddr     string // BEACON_SMTP_ADDR: host:port of the mail relay for email channels (empty: email off)
	SMTPFrom     string // BEACON_SMTP_FROM
	SMTPUsername string // BEACON_SMTP_USERNAME
	SMTPPassword string // BEACON_SMTP_PASSWORD (a secret)
	SMTPTLS      string // BEACON_SMTP_TLS: opportunistic|starttls|none
}

// Development defaults for the first admin, so `make run` can log in. They
// are refused in production.
const (
	DevAdminEmail    = "admin@beacon.local"
	DevAdminPassword = "beacon-dev-password"
)

// Var documents one environment variable. The README's table mirrors Vars.
type Var struct {
	Name, Default, Meaning string
}

// Vars lists every variable Beacon reads, with its default.
var Vars = []Var{
	{"DATABASE_URL", "", "PostgreSQL URL (`make run` starts a local server when unset)"},
	{"BEACON_ENV", "development", "`development` or `production`"},
	{"BEACON_HTTP_ADDR", ":8080", "listen address of the public API"},
	{"BEACON_OPS_ADDR", ":9464", "listen address of the internal ops port (health, metrics, pprof); never publish it"},
	{"BEACON_DASHBOARD_ADDR", ":8081", "listen address of the web dashboard (`beacon dashboard` and `beacon all`)"},
	{"BEACON_API_URL", "http://localhost:8080", "the API the dashboard talks to (`beacon dashboard`; `beacon all` uses its own)"},
	{"BEACON_SHUTDOWN_TIMEOUT", "20s", "time allowed to drain HTTP and jobs on SIGINT/SIGTERM"},
	{"BEACON_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"BEACON_LOG_FORMAT", "text in development, json otherwise", "`json` or `text`"},
	{"BEACON_WORKER_CONCURRENCY", "50", "checks run in parallel by one worker process (1-1000)"},
	{"BEACON_SCHEDULER_INTERVAL", "5s", "how often the leader enqueues due checks (1s-1m)"},
	{"BEACON_SCHEDULER_BATCH", "500", "monitors enqueued per scheduler transaction (1-10000)"},
	{"BEACON_RESULT_RETENTION", "720h", "check results are dropped a whole day at a time once older than this, checked hourly (>= 1h)"},
	{"BEACON_JOB_FETCH_COOLDOWN", "5ms", "least time between two job fetches of a queue by one worker process (1ms-1s; see docs/performance.md)"},
	{"BEACON_JOB_FETCH_POLL_INTERVAL", "100ms", "a worker fetches at least this often when no notification came (>= the cooldown, <= 1m)"},
	{"BEACON_JOB_RESCUE_AFTER", "", "a job running this long is taken for a dead worker's and retried (default: the longest job timeout + 15s, i.e. 90s)"},
	{"BEACON_DB_MAX_CONNS", "10", "PostgreSQL connections of the API's pool (2-1000); `beacon all` adds the workers' pool"},
	{"BEACON_DB_WORKER_MAX_CONNS", "10", "PostgreSQL connections of the workers' pool (2-1000)"},
	{"BEACON_CHECK_ALLOW_CIDRS", "", "comma-separated private CIDRs checks may reach (default: none)"},
	{"BEACON_TRUSTED_PROXIES", "127.0.0.0/8,::1/128", "CIDRs of proxies (the dashboard) whose X-Forwarded-For names the client, for sign-in rate limits"},
	{"BEACON_MIGRATE_ON_START", "true", "`beacon all` migrates before serving (`api`/`worker` never do)"},
	{"BEACON_JWT_SECRET", "", "key signing access tokens, >= 32 bytes; required in production (development: random per process)"},
	{"BEACON_ADMIN_EMAIL", "", "first admin, created at migrate/start if absent; required in production (development: " + DevAdminEmail + ")"},
	{"BEACON_ADMIN_PASSWORD", "", "first admin's password, >= 12 characters; required in production (development: " + DevAdminPassword + ")"},
	{"BEACON_ACCESS_TOKEN_TTL", "15m", "lifetime of access tokens (1m-24h)"},
	{"BEACON_REFRESH_TOKEN_TTL", "720h", "lifetime of refresh tokens (1h-8760h)"},
	{"BEACON_PYROSCOPE_URL", "", "Pyroscope server to push CPU, memory, mutex and block profiles to, e.g. `http://pyroscope:4040` (default: profiling off)"},
	{"BEACON_INCIDENT_CONFIRMATIONS", "3", "re-checks run when a monitor goes down; an incident opens when most of them fail (1-10)"},
	{"BEACON_INCIDENT_CONFIRM_SPACING", "5s", "time between two confirmation re-checks (0s-5m)"},
	{"BEACON_SMTP_ADDR", "", "host:port of the SMTP relay that email channels send through (default: email channels off)"},
	{"BEACON_SMTP_FROM", "beacon@localhost", "sender address of notification emails"},
	{"BEACON_SMTP_USERNAME", "", "SMTP user, if the relay wants authentication (sent only over TLS or to localhost)"},
	{"BEACON_SMTP_PASSWORD", "", "SMTP password (a secret)"},
	{"BEACON_SMTP_TLS", "opportunistic", "`opportunistic` (STARTTLS when the relay offers it), `starttls` (required) or `none`"},
}

// Load reads the configuration through getenv. The error names the variable
// at fault in one line.
func Load(getenv func(string) string) (Config, error) {
	get := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		for _, v := range Vars {
			if v.Name == name {
				return v.Default
			}
		}
		return ""
	}
	c := Config{
		Env:           Environment(get("BEACON_ENV")),
		DatabaseURL:   getenv("DATABASE_URL"),
		HTTPAddr:      get("BEACON_HTTP_ADDR"),
		OpsAddr:       get("BEACON_OPS_ADDR"),
		DashboardAddr: get("BEACON_DASHBOARD_ADDR"),
		APIURL:        get("BEACON_API_URL"),
		LogLevel:      get("BEACON_LOG_LEVEL"),
		LogFormat:     strings.TrimSpace(getenv("BEACON_LOG_FORMAT")),
		CheckAllowRaw: get("BEACON_CHECK_ALLOW_CIDRS"),
	}
	var errs []string
	fail := func(name, format string, args ...any) {
		errs = append(errs, name+": "+fmt.Sprintf(format, args...))
	}

	switch c.Env {
	case Development, Production:
	default:
		fail("BEACON_ENV", "%q is not one of development, production", c.Env)
	}
	if c.DatabaseURL != "" {
		if err := checkDatabaseURL(c.DatabaseURL); err != nil {
			fail("DATABASE_URL", "%v", err)
		}
	}
	if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fail("BEACON_API_URL", "%q is not an http(s) URL", c.APIURL)
	}
	for _, a := range []struct{ name, addr string }{{"BEACON_HTTP_ADDR", c.HTTPAddr}, {"BEACON_OPS_ADDR", c.OpsAddr}, {"BEACON_DASHBOARD_ADDR", c.DashboardAddr}} {
		if _, port, err := net.SplitHostPort(a.addr); err != nil {
			fail(a.name, "%q is not host:port", a.addr)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			fail(a.name, "%q has an invalid port", a.addr)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		fail("BEACON_LOG_LEVEL", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	switch c.LogFormat {
	case "":
		c.LogFormat = "json"
		if c.Env == Development {
			c.LogFormat = "text"
		}
	case "json", "text":
	default:
		fail("BEACON_LOG_FORMAT", "%q is not one of json, text", c.LogFormat)
	}

	var err error
	if c.ShutdownTimeout, err = duration(get("BEACON_SHUTDOWN_TIMEOUT"), time.Second, 10*time.Minute); err != nil {
		fail("BEACON_SHUTDOWN_TIMEOUT", "%v", err)
	}
	if c.SchedulerInterval, err = duration(get("BEACON_SCHEDULER_INTERVAL"), time.Second, time.Minute); err != nil {
		fail("BEACON_SCHEDULER_INTERVAL", "%v", err)
	}
	if c.ResultRetention, err = duration(get("BEACON_RESULT_RETENTION"), time.Hour, 100*365*24*time.Hour); err != nil {
		fail("BEACON_RESULT_RETENTION", "%v", err)
	}
	if c.JobFetchCooldown, err = duration(get("BEACON_JOB_FETCH_COOLDOWN"), time.Millisecond, time.Second); err != nil {
		fail("BEACON_JOB_FETCH_COOLDOWN", "%v", err)
	}
	if c.JobFetchPollInterval, err = duration(get("BEACON_JOB_FETCH_POLL_INTERVAL"), time.Millisecond, time.Minute); err != nil {
		fail("BEACON_JOB_FETCH_POLL_INTERVAL", "%v", err)
	} else if c.JobFetchPollInterval < c.JobFetchCooldown {
		fail("BEACON_JOB_FETCH_POLL_INTERVAL", "%s is shorter than BEACON_JOB_FETCH_COOLDOWN (%s)", c.JobFetchPollInterval, c.JobFetchCooldown)
	}
	if v := get("BEACON_JOB_RESCUE_AFTER"); v != "" {
		if c.JobRescueAfter, err = duration(v, 10*time.Second, 24*time.Hour); err != nil {
			fail("BEACON_JOB_RESCUE_AFTER", "%v", err)
		}
	}
	if c.DBMaxConns, err = integer(get("BEACON_DB_MAX_CONNS"), 2, 1000); err != nil {
		fail("BEACON_DB_MAX_CONNS", "%v", err)
	}
	if c.DBWorkerMaxConns, err = integer(get("BEACON_DB_WORKER_MAX_CONNS"), 2, 1000); err != nil {
		fail("BEACON_DB_WORKER_MAX_CONNS", "%v", err)
	}
	if c.WorkerConcurrency, err = integer(get("BEACON_WORKER_CONCURRENCY"), 1, 1000); err != nil {
		fail("BEACON_WORKER_CONCURRENCY", "%v", err)
	}
	if c.SchedulerBatch, err = integer(get("BEACON_SCHEDULER_BATCH"), 1, 10000); err != nil {
		fail("BEACON_SCHEDULER_BATCH", "%v", err)
	}
	if c.CheckAllow, err = netguard.ParsePrefixes(c.CheckAllowRaw); err != nil {
		fail("BEACON_CHECK_ALLOW_CIDRS", "%v", err)
	}
	if c.TrustedProxies, err = netguard.ParsePrefixes(get("BEACON_TRUSTED_PROXIES")); err != nil {
		fail("BEACON_TRUSTED_PROXIES", "%v", err)
	}
	if c.MigrateOnStart, err = strconv.ParseBool(get("BEACON_MIGRATE_ON_START")); err != nil {
		fail("BEACON_MIGRATE_ON_START", "%q is not a boolean", get("BEACON_MIGRATE_ON_START"))
	}
	if c.AccessTTL, err = duration(get("BEACON_ACCESS_TOKEN_TTL"), time.Minute, 24*time.Hour); err != nil {
		fail("BEACON_ACCESS_TOKEN_TTL", "%v", err)
	}
	if c.RefreshTTL, err = duration(get("BEACON_REFRESH_TOKEN_TTL"), time.Hour, 365*24*time.Hour); err != nil {
		fail("BEACON_REFRESH_TOKEN_TTL", "%v", err)
	}
	if c.PyroscopeURL = get("BEACON_PYROSCOPE_URL"); c.PyroscopeURL != "" {
		// Never echo the value: it may carry credentials.
		if u, err := url.Parse(c.PyroscopeURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			fail("BEACON_PYROSCOPE_URL", "is not an http(s) URL like http://pyroscope:4040")
		}
	}
	if c.IncidentConfirmations, err = integer(get("BEACON_INCIDENT_CONFIRMATIONS"), 1, 10); err != nil {
		fail("BEACON_INCIDENT_CONFIRMATIONS", "%v", err)
	}
	if c.IncidentConfirmSpacing, err = duration(get("BEACON_INCIDENT_CONFIRM_SPACING"), 0, 5*time.Minute); err != nil {
		fail("BEACON_INCIDENT_CONFIRM_SPACING", "%v", err)
	}
	c.SMTPAddr, c.SMTPFrom, c.SMTPUsername, c.SMTPTLS = get("BEACON_SMTP_ADDR"), get("BEACON_SMTP_FROM"), get("BEACON_SMTP_USERNAME"), get("BEACON_SMTP_TLS")
	c.SMTPPassword = getenv("BEACON_SMTP_PASSWORD")
	if c.SMTPAddr != "" {
		if _, port, err := net.SplitHostPort(c.SMTPAddr); err != nil || port == "" {
			fail("BEACON_SMTP_ADDR", "%q is not host:port like mailpit:1025", c.SMTPAddr)
		}
	}
	if _, err := mail.ParseAddress(c.SMTPFrom); err != nil {
		fail("BEACON_SMTP_FROM", "%q is not an email address", c.SMTPFrom)
	}
	if c.SMTPTLS != "opportunistic" && c.SMTPTLS != "starttls" && c.SMTPTLS != "none" {
		fail("BEACON_SMTP_TLS", "%q is not opportunistic, starttls or none", c.SMTPTLS)
	}
	c.JWTSecret = getenv("BEACON_JWT_SECRET")
	c.AdminEmail = strings.TrimSpace(getenv("BEACON_ADMIN_EMAIL"))
	c.AdminPassword = getenv("BEACON_ADMIN_PASSWORD")
	if c.Env == Production {
		// Outside development, nothing may run on a secret nobody chose.
		if IsPlaceholder(c.JWTSecret) || len(c.JWTSecret) < 32 {
			fail("BEACON_JWT_SECRET", "must be set to a random value of at least 32 bytes in production (e.g. openssl rand -base64 48)")
		}
		if c.AdminEmail == "" || !strings.Contains(c.AdminEmail, "@") {
			fail("BEACON_ADMIN_EMAIL", "must be set to the first admin's email in production")
		}
		if IsPlaceholder(c.AdminPassword) || len(c.AdminPassword) < 12 || c.AdminPassword == DevAdminPassword {
			fail("BEACON_ADMIN_PASSWORD", "must be set to a real password of at least 12 characters in production")
		}
	} else {
		if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
			fail("BEACON_JWT_SECRET", "must be at least 32 bytes")
		}
		if c.AdminEmail == "" {
			c.AdminEmail = DevAdminEmail
		}
		if c.AdminPassword == "" {
			c.AdminPassword = DevAdminPassword
		}
	}
	if len(errs) > 0 {
		// One line, so the message reads well in a terminal and a log.
		return Config{}, errors.New("config: " + strings.Join(errs, "; "))
	}
	return c, nil
}

// RequireDatabase reports a clear error when a role that needs PostgreSQL has
// no DATABASE_URL.
func (c Config) RequireDatabase() error {
	if c.DatabaseURL == "" {
		return errors.New("config: DATABASE_URL: required (e.g. postgres://user:pass@localhost:5432/beacon); `make run` sets one up")
	}
	return nil
}

// MaskedDatabaseURL returns DATABASE_URL with its password replaced, for logs.
func (c Config) MaskedDatabaseURL() string {
	return MaskURL(c.DatabaseURL)
}

// MaskURL hides the password of a URL; unparsable input is hidden whole.
func MaskURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable>"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// placeholders are values that mean "nobody set this".
var placeholders = []string{"changeme", "change-me", "change_me", "password", "secret", "admin", "example", "placeholder", "xxx", "todo"}

// IsPlaceholder reports whether a secret looks unset or like a sample value.
func IsPlaceholder(s string) bool {
	v := strings.ToLower(strings.TrimSpace(s))
	if v == "" || strings.HasPrefix(v, "<") || strings.HasPrefix(v, "${") {
		return true
	}
	for _, p := range []string{"changeme", "change-me", "change_me", "dev-only", "placeholder"} {
		if strings.Contains(v, p) {
			return true
		}
	}
	for _, p := range placeholders {
		if v == p {
			return true
		}
	}
	return false
}

func checkDatabaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// Do not echo the value: it may hold a password.
		return errors.New("not a valid URL")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("scheme %q is not postgres:// or postgresql://", u.Scheme)
	}
	return nil
}

func duration(s string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 30s or 5m", s)
	}
	if d < lo || d > hi {
		return 0, fmt.Errorf("%s is outside [%s, %s]", d, lo, hi)
	}
	return d, nil
}

func integer(s string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is outside [%d, %d]", n, lo, hi)
	}
	return n, nil
}
