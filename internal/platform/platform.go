// Package platform is what a domain plugs into: the contract (Module, Env,
// Parts) and the assembly of Beacon's generic parts around the modules
// (job queue, API, accounts, live updates). cmd/beacon lists the modules,
// one line each, and every process and test is built by Assemble.
//
// A module is a package that owns its tables (its migrations, registered
// with database.RegisterMigrations), its service, its workers and its
// routes. The generic packages (database, jobs, httpapi, realtime, auth)
// know no module.
package platform

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/metric"
	"riverqueue.com/riverui"

	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/config"
	"github.com/beaconhq/beacon/internal/httpapi"
	"github.com/beaconhq/beacon/internal/idempotency"
	"github.com/beaconhq/beacon/internal/jobs"
	"github.com/beaconhq/beacon/internal/realtime"
	"github.com/beaconhq/beacon/internal/telemetry"
	"github.com/beaconhq/beacon/internal/workflow"
)

// Module is a domain plugged into Beacon.
type Module interface {
	// Name identifies the module in logs and errors.
	Name() string
	// Build wires the module on env. It does no I/O: `beacon openapi` builds
	// modules without a database to describe their routes.
	Build(env Env) (Parts, error)
}

// Env is what a module builds on. Pools and clients are nil where the
// process's role does not need them.
type Env struct {
	Config    config.Config
	Log       *slog.Logger
	Telemetry *telemetry.Telemetry
	Version   string
	// Pool serves requests (and is the only pool of a worker process).
	Pool *pgxpool.Pool
	// WorkPool runs jobs; nil unless the process works jobs.
	WorkPool *pgxpool.Pool
	// Jobs inserts jobs from requests, in the caller's transaction; nil
	// unless the process serves the API. Workers insert with
	// river.ClientFromContext.
	Jobs *river.Client[pgx.Tx]
	// Workflows is the workflow engine every module shares: a module
	// defines its step kinds on Workflows.Registry() in Build and starts
	// workflows from its services. The platform runs the engine's workers.
	Workflows *workflow.Engine
}

// Parts are what a module plugs in; every field is optional.
type Parts struct {
	// AddWorkers registers the module's River workers.
	AddWorkers func(*river.Workers)
	// Queues the module's jobs use, besides River's default queue.
	Queues map[string]river.QueueConfig
	// PeriodicJobs run on the elected leader among working processes.
	PeriodicJobs []*river.PeriodicJob
	// LongestJob is the longest any of the module's jobs may run: River
	// must not rescue a job running for less (BEACON_JOB_RESCUE_AFTER).
	LongestJob time.Duration
	// API is the module's part of the HTTP API.
	API *httpapi.Routes
	// Gauges observe the database; reported by the processes that work jobs.
	Gauges func(metric.MeterProvider) ([]metric.Registration, error)
	// Bootstrap runs at startup once the first admin exists (adopting data
	// from before accounts, seeding...). It must be idempotent.
	Bootstrap func(ctx context.Context, admin int64) error
}

// Options are what Assemble needs.
type Options struct {
	Config    config.Config
	Telemetry *telemetry.Telemetry
	Version   string
	Modules   []Module
	// Pool serves requests, or is a worker process's only pool; WorkPool
	// runs jobs when Work is set (default: Pool).
	Pool, WorkPool *pgxpool.Pool
	// Serve builds the API; Work builds a client that works jobs.
	Serve, Work bool
	// Ready and Gate are the API's readiness probe and per-request gate
	// (httpapi.Deps); nil: always ready.
	Ready func(context.Context) error
	Gate  func() error
	// Auth is the identity service; nil: built from Config.
	Auth *auth.Service
	// RiverUI serves River's UI under /riverui/ (admins only).
	RiverUI bool
}

// Stack is Beacon assembled: what a process runs.
type Stack struct {
	// Jobs inserts jobs (nil unless Serve); Worker works them (nil unless Work).
	Jobs, Worker *river.Client[pgx.Tx]
	// Waiter wakes requests waiting on a job (nil unless Serve).
	Waiter *jobs.Waiter
	// Workflows is the workflow engine the modules share.
	Workflows *workflow.Engine
	Auth      *auth.Service
	// Hub fans live events out to websockets (nil unless Serve).
	Hub     *realtime.Hub
	RiverUI *riverui.Handler // nil unless Options.RiverUI
	// API is the HTTP API (nil unless Serve); OpenAPI describes it; Deps
	// built it (tests rebuild it with changes).
	API     http.Handler
	OpenAPI huma.API
	Deps    httpapi.Deps
	// Gauges must be unregistered before the pools close.
	Gauges []metric.Registration

	log   *slog.Logger
	cfg   config.Config
	parts []namedParts
}

type namedParts struct {
	name string
	Parts
}

// platformQueues are the queues of the platform's own jobs. Workflow steps
// run on the engine's queue unless their kind names another; most are
// short (a step holds a database connection only to read its inputs, and
// completions share one transaction per process).
var platformQueues = map[string]river.QueueConfig{
	river.QueueDefault:    {MaxWorkers: 5},
	workflow.DefaultQueue: {MaxWorkers: WorkflowWorkers},
}

// WorkflowWorkers run workflow steps at once in a worker process.
const WorkflowWorkers = 10

// Assemble builds the modules and Beacon's generic parts around them.
func Assemble(ctx context.Context, o Options) (_ *Stack, err error) {
	tel := o.Telemetry
	if tel == nil {
		tel = telemetry.Noop(slog.New(slog.DiscardHandler))
	}
	s := &Stack{log: tel.Logger, cfg: o.Config}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	workPool := o.WorkPool
	if workPool == nil {
		workPool = o.Pool
	}
	if o.Serve && o.Pool != nil {
		// Insert-only, with the telemetry plugins: a job's trace continues
		// the request's that inserted it.
		s.Jobs, err = jobs.NewClient(o.Pool, jobs.Options{
			Logger: riverLogger(tel.Logger, "river"), Plugins: jobs.Middleware(tel.TracerProvider, tel.MeterProvider)})
		if err != nil {
			return nil, err
		}
	}
	env := Env{Config: o.Config, Log: tel.Logger, Telemetry: tel, Version: o.Version, Pool: o.Pool, Jobs: s.Jobs}
	if o.Work {
		env.WorkPool = workPool
	}
	wfMetrics, err := workflow.NewMetrics(tel.MeterProvider)
	if err != nil {
		return nil, err
	}
	env.Workflows, err = workflow.New(workflow.Options{
		Registry: workflow.NewRegistry(), Pool: o.Pool, WorkPool: env.WorkPool, Jobs: s.Jobs,
		Metrics: wfMetrics, Log: tel.Logger.With("component", "workflow"),
	})
	if err != nil {
		return nil, err
	}
	s.Workflows = env.Workflows
	for _, m := range o.Modules {
		p, err := m.Build(env)
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", m.Name(), err)
		}
		s.parts = append(s.parts, namedParts{name: m.Name(), Parts: p})
	}

	// ---- Jobs.
	longest := max(time.Minute, // River's default timeout, for jobs that set none
		env.Workflows.LongestJob())
	queues := maps.Clone(platformQueues)
	workers := river.NewWorkers()
	env.Workflows.AddWorkers(workers)
	periodic := env.Workflows.PeriodicJobs()
	for _, p := range s.parts {
		longest = max(longest, p.LongestJob)
		for q, c := range p.Queues {
			if _, dup := queues[q]; dup {
				return nil, fmt.Errorf("module %s: queue %q is already used", p.name, q)
			}
			queues[q] = c
		}
		if p.AddWorkers != nil {
			p.AddWorkers(workers)
		}
		periodic = append(periodic, p.PeriodicJobs...)
	}
	rescueAfter := o.Config.JobRescueAfter
	if rescueAfter == 0 {
		rescueAfter = longest + 15*time.Second
	} else if rescueAfter <= longest {
		return nil, fmt.Errorf("config: BEACON_JOB_RESCUE_AFTER: %s must exceed the longest job timeout (%s), or running jobs would be run twice",
			rescueAfter, longest)
	}
	if o.Work {
		s.Worker, err = jobs.NewClient(workPool, jobs.Options{
			Work: true, Workers: workers, Queues: queues, PeriodicJobs: periodic,
			Plugins:           jobs.Middleware(tel.TracerProvider, tel.MeterProvider),
			Logger:            riverLogger(tel.Logger, "river"),
			RescueAfter:       rescueAfter,
			FetchCooldown:     o.Config.JobFetchCooldown,
			FetchPollInterval: o.Config.JobFetchPollInterval,
		})
		if err != nil {
			return nil, err
		}
		backlog, err := jobs.ObserveBacklog(tel.MeterProvider, workPool, slices.Sorted(maps.Keys(queues)))
		if err != nil {
			return nil, err
		}
		s.Gauges = append(s.Gauges, backlog)
		wfGauges, err := env.Workflows.ObserveGauges(tel.MeterProvider)
		if err != nil {
			return nil, err
		}
		s.Gauges = append(s.Gauges, wfGauges)
		for _, p := range s.parts {
			if p.Gauges == nil {
				continue
			}
			gs, err := p.Gauges(tel.MeterProvider)
			if err != nil {
				return nil, fmt.Errorf("module %s: gauges: %w", p.name, err)
			}
			s.Gauges = append(s.Gauges, gs...)
		}
	}

	// ---- Identity.
	if s.Auth = o.Auth; s.Auth == nil && o.Pool != nil {
		if s.Auth, err = newAuth(o.Pool, o.Config, tel.Logger); err != nil {
			return nil, err
		}
	}

	// ---- API.
	if !o.Serve {
		return s, nil
	}
	deps := httpapi.Deps{
		Log: tel.Logger, Version: o.Version, Telemetry: tel,
		Jobs: s.Jobs, Ready: o.Ready, Gate: o.Gate, Auth: s.Auth,
		TrustedProxies: o.Config.TrustedProxies,
	}
	for _, p := range s.parts {
		if p.API != nil {
			deps.Routes = append(deps.Routes, *p.API)
		}
	}
	if o.Pool != nil {
		s.Waiter = jobs.NewWaiter(s.Jobs, o.Pool, tel.Logger.With("component", "jobs"))
		deps.Waiter = s.Waiter
		deps.Idempotency = idempotency.New(o.Pool)
		s.Hub = realtime.NewHub(o.Pool, tel.Logger.With("component", "realtime"), realtime.Options{})
		deps.Events = realtime.Handler(s.Hub, func(r *http.Request) (auth.Principal, error) {
			return httpapi.AuthenticateRequest(s.Auth, r)
		})
	}
	if o.RiverUI && s.Jobs != nil {
		s.RiverUI, err = riverui.NewHandler(&riverui.HandlerOpts{
			Endpoints: riverui.NewEndpoints(s.Jobs, nil),
			Logger:    riverLogger(tel.Logger, "riverui"),
			Prefix:    "/riverui",
		})
		if err != nil {
			return nil, fmt.Errorf("river ui: %w", err)
		}
		deps.RiverUI = s.RiverUI
	}
	s.Deps = deps
	s.API, s.OpenAPI = httpapi.NewServer(deps)
	return s, nil
}

// Describe builds the API of modules without a database, for its OpenAPI
// document.
func Describe(version string, modules []Module) (huma.API, error) {
	s, err := Assemble(context.Background(), Options{Version: version, Modules: modules, Serve: true})
	if err != nil {
		return nil, err
	}
	return s.OpenAPI, nil
}

// riverLogger passes River's records at warn and above, each repeated
// record at most once a minute.
func riverLogger(log *slog.Logger, component string) *slog.Logger {
	return telemetry.Quieter(log.With("component", component), slog.LevelWarn)
}

// newAuth builds the identity service. Without BEACON_JWT_SECRET (allowed
// only in development) tokens are signed with a random key: they stop
// working when the process restarts.
func newAuth(pool *pgxpool.Pool, cfg config.Config, log *slog.Logger) (*auth.Service, error) {
	secret := []byte(cfg.JWTSecret)
	if len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
		log.Warn("BEACON_JWT_SECRET is unset: tokens are signed with a random key and end with this process (development only)")
	}
	return auth.NewService(pool, auth.Config{Secret: secret, AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL})
}

// Bootstrap creates the first admin from configuration if absent, then runs
// the modules' bootstrap hooks.
func (s *Stack) Bootstrap(ctx context.Context) error {
	if s.Auth == nil {
		return errors.New("bootstrap: no identity service")
	}
	id, created, err := s.Auth.EnsureAdmin(ctx, s.cfg.AdminEmail, s.cfg.AdminPassword)
	if err != nil {
		return err
	}
	if created {
		s.log.Info("created the first admin", "email", s.cfg.AdminEmail)
	}
	for _, p := range s.parts {
		if p.Bootstrap == nil {
			continue
		}
		if err := p.Bootstrap(ctx, id); err != nil {
			return fmt.Errorf("bootstrap of module %s: %w", p.name, err)
		}
	}
	return nil
}

// Close unregisters the gauges; the caller closes the pools after.
func (s *Stack) Close() {
	for _, g := range s.Gauges {
		_ = g.Unregister()
	}
	s.Gauges = nil
}
