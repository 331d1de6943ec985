package beacon_test

// No Docker engine runs where these tests run, so the compose files and the
// Dockerfile are checked statically: compose-go loads them as `docker compose`
// would (schema, interpolation, profiles, undefined references), then the
// checks below enforce the architecture's "Networks and exposure" rules and
// the hardening of Beacon's own containers. Every check returns the
// problems it found, so TestComposeChecksCatchProblems can prove each one
// fails on a bad file.

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/beaconhq/beacon/internal/config"
	"github.com/beaconhq/beacon/internal/netguard"
)

const (
	frontTier = "front-tier"
	backTier  = "back-tier"
	// opsPort serves health, metrics and pprof: never published.
	opsPort = 9464
	// beaconImage is the repository name of the image built from ./Dockerfile.
	beaconImage = "beacon"
)

// publicServices may join front-tier and publish ports on every interface.
// Everything else publishes on 127.0.0.1 only, if at all.
var publicServices = []string{"api", "dashboard", "grafana"}

// composeFileSets are the combinations of compose files that must load and
// pass every check. Each is loaded with no profile, with each profile that any
// of its services declares, and with all profiles at once ("*"). A row without
// files takes every docker-compose*.yml in the repository root, so a new
// compose file is covered without touching this table; add a row only for
// another combination that users are told to run.
var composeFileSets = []struct {
	name  string
	files []string
}{
	{name: "core", files: []string{"docker-compose.yml"}},
	{name: "all-files"},
}

// projectCheck inspects a loaded project and returns one line per problem.
type projectCheck struct {
	name  string
	check func(*types.Project) []string
}

// genericChecks hold for every service in every compose file.
var genericChecks = []projectCheck{
	{"images are pinned", checkImagesPinned},
	{"long-running services have healthchecks", checkHealthchecks},
	{"networks and published ports", checkExposure},
	{"startup order can complete", checkStartupOrder},
	{"hardening", checkHardening},
	{"bind mounts exist and are read-only", checkBindMounts},
	{"grafana is read-only for visitors", checkGrafana},
	{"every secret a started service needs is set", checkSecretsSet},
}

// roleChecks hold for the Beacon roles of the core file.
var roleChecks = []projectCheck{
	{"beacon roles", checkBeaconRoles},
}

func TestComposeProjects(t *testing.T) {
	t.Parallel()

	for _, set := range composeFileSets {
		t.Run(set.name, func(t *testing.T) {
			t.Parallel()

			files := set.files
			if len(files) == 0 {
				files = allComposeFiles(t)
			}
			require.NotEmpty(t, files)
			require.Equal(t, "docker-compose.yml", files[0])

			base, err := loadCompose(t.Context(), files)
			require.NoError(t, err, "load %v", files)

			profileSets := [][]string{nil}
			for _, p := range declaredProfiles(base) {
				profileSets = append(profileSets, []string{p})
			}
			if len(profileSets) > 1 {
				profileSets = append(profileSets, []string{"*"})
			}

			for _, profiles := range profileSets {
				name := "no-profile"
				if profiles != nil {
					name = "profile=" + strings.Join(profiles, ",")
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()

					project, err := loadCompose(t.Context(), files, profiles...)
					require.NoError(t, err, "load %v with profiles %v", files, profiles)
					require.NotEmpty(t, project.Services)

					for _, c := range slices.Concat(genericChecks, roleChecks) {
						problems := c.check(project)
						assert.Empty(t, problems, "%s:\n%s", c.name, strings.Join(problems, "\n"))
					}
				})
			}
		})
	}
}

func TestComposeLoaderRejects(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, yaml, wantErr string
	}{
		{
			name: "unknown key",
			yaml: `
services:
  api:
    image: beacon:dev
    healthchek: {test: ["CMD", "true"]}
`,
			wantErr: "healthchek",
		},
		{
			name: "undefined dependency",
			yaml: `
services:
  api:
    image: beacon:dev
    depends_on:
      migrate: {condition: service_completed_successfully}
`,
			wantErr: "undefined service",
		},
		{
			name: "undefined network",
			yaml: `
services:
  api:
    image: beacon:dev
    networks: [front-tier]
`,
			wantErr: "undefined network",
		},
		{
			name: "dependency on a service outside the active profiles",
			yaml: `
services:
  grafana:
    image: grafana/grafana:13.2.0
    depends_on: [prometheus]
  prometheus:
    image: prom/prometheus:v3.14.0
    profiles: [monitoring]
`,
			wantErr: "undefined service",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			_, err := loadCompose(t.Context(), []string{writeFile(t, "docker-compose.yml", tt.yaml)})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

// TestComposeRequiresSecrets: a secret is asked for only where it is used.
// The core stack's stop compose with their message when unset, for any
// profile (compose interpolates every service before it applies profiles,
// and the core services run in every one). A profile's own (Grafana's,
// pgAdmin's) are no `:?`, so loading never asks for them; what refuses to
// start without them (compose for a secret, pgAdmin's entrypoint) does so
// only when their service is started, which checkSecretsSet models.
func TestComposeRequiresSecrets(t *testing.T) {
	t.Parallel()

	files := allComposeFiles(t)
	for _, name := range coreSecrets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()

			for _, profiles := range [][]string{nil, {"monitoring"}, {"*"}} {
				_, err := loadComposeEnv(t.Context(), files, composeEnv(name), profiles...)
				require.Error(t, err, "profiles %v", profiles)
				assert.Contains(t, err.Error(), name, "profiles %v", profiles)
			}
		})
	}
	for name, usedBy := range profileSecrets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()

			for _, profiles := range [][]string{nil, {"monitoring"}, {"admin"}, {"elastic"}, {"*"}} {
				p, err := loadComposeEnv(t.Context(), files, composeEnv(name), profiles...)
				require.NoError(t, err, "profiles %v: loading must not ask for %s", profiles, name)
				_, started := p.Services[usedBy]
				missing := slices.ContainsFunc(checkSecretsSet(p), func(problem string) bool { return strings.Contains(problem, name) })
				assert.Equal(t, started, missing, "profiles %v: %s missing must stop %s, and only it:\n%s",
					profiles, name, usedBy, strings.Join(checkSecretsSet(p), "\n"))
			}
		})
	}
}

// TestSecretsCheckCatchesProblems: checkSecretsSet reports a secret whose
// variable is unset or empty, and an empty variable a service needs at start.
func TestSecretsCheckCatchesProblems(t *testing.T) {
	t.Parallel()

	const file = `
services:
  grafana:
    image: grafana/grafana:13.2.0
    secrets: [grafana_admin_password]
  pgadmin:
    image: dpage/pgadmin4:9.8
    environment:
      PGADMIN_DEFAULT_EMAIL: ${PGADMIN_DEFAULT_EMAIL:-}
      PGADMIN_DEFAULT_PASSWORD: ${PGADMIN_DEFAULT_PASSWORD:-}
secrets:
  grafana_admin_password:
    environment: GRAFANA_ADMIN_PASSWORD
`
	path := writeFile(t, "docker-compose.yml", file)
	for _, tt := range []struct {
		env  []string
		want []string
	}{
		{nil, []string{"grafana: secret grafana_admin_password: GRAFANA_ADMIN_PASSWORD is unset or empty",
			"pgadmin: PGADMIN_DEFAULT_EMAIL is empty", "pgadmin: PGADMIN_DEFAULT_PASSWORD is empty"}},
		{[]string{"GRAFANA_ADMIN_PASSWORD=", "PGADMIN_DEFAULT_EMAIL=a@example.com"}, []string{
			"grafana: secret grafana_admin_password: GRAFANA_ADMIN_PASSWORD is unset or empty",
			"pgadmin: PGADMIN_DEFAULT_PASSWORD is empty"}},
		{[]string{"GRAFANA_ADMIN_PASSWORD=x", "PGADMIN_DEFAULT_EMAIL=a@example.com", "PGADMIN_DEFAULT_PASSWORD=y"}, nil},
	} {
		p, err := loadComposeEnv(t.Context(), []string{path}, tt.env)
		require.NoError(t, err)
		assert.Equal(t, tt.want, checkSecretsSet(p), "env %v", tt.env)
	}
}

// TestObservabilityFile: docker-compose.observability.yml adds services only
// behind its profiles (loaded without a profile, the stack is the core one),
// and it points api and worker at the collector and the workers' mail at
// mailpit.
func TestObservabilityFile(t *testing.T) {
	t.Parallel()

	const obs = "docker-compose.observability.yml"
	env := composeEnv("BEACON_OTLP_ENDPOINT", "COLLECTOR_OVERLAY")
	core, err := loadComposeEnv(t.Context(), []string{"docker-compose.yml"}, env)
	require.NoError(t, err)
	plain, err := loadComposeEnv(t.Context(), []string{"docker-compose.yml", obs}, env)
	require.NoError(t, err)
	all, err := loadComposeEnv(t.Context(), []string{"docker-compose.yml", obs}, env, "*")
	require.NoError(t, err)

	assert.Equal(t, sortedServiceNames(core), sortedServiceNames(plain), "%s adds a service without a profile", obs)
	for _, name := range sortedServiceNames(all) {
		if _, inCore := core.Services[name]; inCore {
			continue
		}
		profiles := all.Services[name].Profiles
		assert.NotEmpty(t, profiles, "%s: no profile", name)
		for _, p := range profiles {
			assert.Contains(t, []string{"monitoring", "admin", "elastic"}, p, "%s: undocumented profile", name)
		}
	}

	for _, name := range []string{"api", "worker"} {
		_, set := core.Services[name].Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]
		assert.False(t, set, "%s: the core stack exports nothing", name)
		endpoint := plain.Services[name].Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]
		if assert.NotNil(t, endpoint, "%s: no OTLP endpoint with %s", name, obs) {
			assert.Equal(t, "http://collector:4317", *endpoint, name)
		}
	}

	// The workers mail notifications to mailpit (checkBeaconRefs: reachable, listening).
	for k, want := range map[string]string{"BEACON_SMTP_ADDR": "mailpit:1025", "BEACON_SMTP_FROM": "beacon@localhost"} {
		_, set := core.Services["worker"].Environment[k]
		assert.False(t, set, "worker: %s is set in the core stack", k)
		if v := plain.Services["worker"].Environment[k]; assert.NotNil(t, v, "worker: no %s with %s", k, obs) {
			assert.Equal(t, want, *v, "worker: %s", k)
		}
	}

	// Each collector --config is a file the service mounts.
	collector := all.Services["collector"]
	mounted := map[string]bool{}
	for _, v := range collector.Volumes {
		mounted[v.Target] = true
	}
	for _, overlay := range []string{"", "elastic"} {
		overlayEnv := append(slices.Clone(env), "COLLECTOR_OVERLAY="+overlay)
		p, err := loadComposeEnv(t.Context(), []string{"docker-compose.yml", obs}, overlayEnv, "monitoring")
		require.NoError(t, err)
		for _, arg := range p.Services["collector"].Command {
			if cfg, ok := strings.CutPrefix(arg, "--config="); ok {
				assert.True(t, mounted[cfg], "collector: --config %s is not mounted (COLLECTOR_OVERLAY=%q)", cfg, overlay)
			}
		}
	}
}

// TestComposeChecksCatchProblems proves the checks are not vacuous: each
// mistake in this file must be reported by the check that owns it.
func TestComposeChecksCatchProblems(t *testing.T) {
	t.Parallel()

	const bad = `
name: bad
services:
  prometheus:
    image: prom/prometheus:latest
    restart: unless-stopped
    ports:
      - "9090:9090"
    networks: [front-tier, back-tier]
    privileged: true
    healthcheck: {test: ["CMD", "true"]}
  exporter:
    image: example/exporter
    restart: unless-stopped
    ports:
      - "127.0.0.1:9464:9464"
    networks: [back-tier]
  loki:
    image: grafana/loki:3.7.6
    restart: always
    healthcheck: {disable: true}
    networks: [back-tier]
  stray:
    image: example/stray@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    healthcheck: {test: ["CMD", "true"]}
  postgres:
    image: postgres:17.6-bookworm
    restart: unless-stopped
    healthcheck: {test: ["CMD", "pg_isready"]}
    ports:
      - "5432:5432"
    networks: [front-tier, back-tier]
  migrate:
    build: .
    image: beacon:latest
    command: ["migrate"]
    restart: unless-stopped
    depends_on:
      postgres: {condition: service_healthy}
      exporter: {condition: service_healthy}
    networks: [back-tier]
  worker:
    build: .
    command: ["worker"]
    restart: unless-stopped
    healthcheck: {test: ["CMD", "/beacon", "healthcheck", "http://127.0.0.1:9464/readyz"]}
    cap_drop: [NET_RAW]
    depends_on:
      migrate: {condition: service_completed_successfully}
    networks: [back-tier]
  grafana:
    image: grafana/grafana:13.2.0
    restart: unless-stopped
    healthcheck: {test: ["CMD", "true"]}
    environment:
      GF_AUTH_ANONYMOUS_ENABLED: "true"
      GF_AUTH_ANONYMOUS_ORG_ROLE: Admin
      GF_INSTALL_PLUGINS: grafana-clock-panel
    volumes:
      - ./grafana.ini:/etc/grafana/grafana.ini
    networks: [front-tier, back-tier]
networks:
  front-tier: {}
  back-tier: {internal: true}
`
	project, err := loadCompose(t.Context(), []string{writeFile(t, "docker-compose.yml", bad)})
	require.NoError(t, err, "the bad file must still be valid compose")

	tests := []struct {
		check func(*types.Project) []string
		want  []string
	}{
		{checkImagesPinned, []string{
			`prometheus: image "prom/prometheus:latest" is not pinned`,
			`exporter: image "example/exporter" is not pinned`,
			`migrate: image "beacon:latest" is not pinned`,
			`worker: builds an image without naming it`,
		}},
		{checkHealthchecks, []string{
			"exporter: long-running service has no healthcheck",
			"loki: healthcheck is disabled",
			"stray: long-running service has no restart policy",
		}},
		{checkExposure, []string{
			"back-tier is internal",
			"prometheus: on front-tier",
			"prometheus: publishes 9090 on all interfaces",
			"exporter: publishes the ops port 9464",
			"postgres: on front-tier",
			"postgres: must be on back-tier only",
			"postgres: publishes 5432 on all interfaces",
			"stray: on the implicit default network",
		}},
		{checkStartupOrder, []string{
			`migrate: waits for exporter to be healthy but exporter has no healthcheck`,
			`worker: waits for migrate to complete but migrate restarts "unless-stopped"`,
		}},
		{checkHardening, []string{
			"prometheus: runs privileged",
			"worker: must drop ALL capabilities",
			"worker: must set no-new-privileges",
			"worker: must run with a read-only root filesystem",
		}},
		{checkBindMounts, []string{
			"grafana: bind mount",
			"is writable: add :ro",
			"grafana: mounts grafana.ini, which does not exist",
		}},
		{checkGrafana, []string{
			`grafana: anonymous visitors get role "Admin"`,
			"grafana: sign-up must be off",
			"grafana: the admin password must come from the environment",
			"grafana: downloads plugins at start",
		}},
		{checkBeaconRoles, []string{
			"api: service is missing",
			`worker: must depend on postgres with condition "service_healthy"`,
			"worker: wants 2 replicas, has 1",
			`migrate: restart policy must be "no"`,
		}},
	}
	for _, tt := range tests {
		problems := tt.check(project)
		for _, want := range tt.want {
			assert.True(t, slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }),
				"want a problem containing %q, got:\n%s", want, strings.Join(problems, "\n"))
		}
	}
}

func TestDockerfile(t *testing.T) {
	t.Parallel()

	dockerfile, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	gomod, err := os.ReadFile("go.mod")
	require.NoError(t, err)

	assert.Empty(t, checkDockerfile(string(dockerfile), string(gomod)))

	t.Run("catches problems", func(t *testing.T) {
		t.Parallel()

		const bad = `
FROM golang:1.25-bookworm AS build
RUN go build -o /out/beacon ./cmd/beacon
FROM alpine
COPY --from=build /out/beacon /beacon
EXPOSE 8080 9464
ENTRYPOINT ["/beacon"]
`
		problems := checkDockerfile(bad, "module x\n\ngo 1.26.8\n")
		for _, want := range []string{
			`image "alpine" is not pinned`,
			"builder Go 1.25 is older than go.mod's go 1.26.8",
			"EXPOSE publishes the ops port 9464",
			"final stage must set USER nonroot",
		} {
			assert.True(t, slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }),
				"want a problem containing %q, got:\n%s", want, strings.Join(problems, "\n"))
		}
	})
}

// loadCompose loads files as `docker compose -p beacon -f ... --profile ...`
// would, with the process environment for interpolation (a .env file is not
// read, so a developer's local settings do not change the result) completed
// by composeTestEnv. Loading validates against the Compose Specification
// schema (unknown keys fail) and checks references (dependencies, networks,
// volumes).
func loadCompose(ctx context.Context, files []string, profiles ...string) (*types.Project, error) {
	return loadComposeEnv(ctx, files, composeEnv(), profiles...)
}

// loadComposeEnv is loadCompose with exactly the environment env (KEY=value).
func loadComposeEnv(ctx context.Context, files, env []string, profiles ...string) (*types.Project, error) {
	opts, err := cli.NewProjectOptions(files,
		cli.WithEnv(env),
		cli.WithProfiles(profiles),
		cli.WithName("beacon"),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(ctx)
}

// coreSecrets are the core stack's `${VAR:?message}`: compose refuses to
// load without them, whatever the profiles.
var coreSecrets = []string{"BEACON_JWT_SECRET", "BEACON_ADMIN_EMAIL", "BEACON_ADMIN_PASSWORD"}

// profileSecrets are needed by one service of a profile, and asked for only
// when it starts (see checkSecretsSet): variable -> service.
var profileSecrets = map[string]string{
	"GRAFANA_ADMIN_PASSWORD":   "grafana",
	"PGADMIN_DEFAULT_EMAIL":    "pgadmin",
	"PGADMIN_DEFAULT_PASSWORD": "pgadmin",
}

// composeTestEnv gives coreSecrets and profileSecrets a value for the tests,
// unless the environment sets them.
var composeTestEnv = map[string]string{
	"GRAFANA_ADMIN_PASSWORD":   "test-only-grafana-password",
	"PGADMIN_DEFAULT_EMAIL":    "pgadmin@example.com",
	"PGADMIN_DEFAULT_PASSWORD": "test-only-pgadmin-password",
	"BEACON_JWT_SECRET":        "test-only-secret-test-only-secret-0123",
	"BEACON_ADMIN_EMAIL":       "admin@example.com",
	"BEACON_ADMIN_PASSWORD":    "test-only-admin-password",
}

// composeEnv is the process environment completed by composeTestEnv, minus
// the variables named in without.
func composeEnv(without ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains(without, k)
	})
	for _, k := range slices.Sorted(maps.Keys(composeTestEnv)) {
		if _, set := os.LookupEnv(k); !set && !slices.Contains(without, k) {
			env = append(env, k+"="+composeTestEnv[k])
		}
	}
	return env
}

// allComposeFiles lists every docker-compose*.yml of the repository root,
// docker-compose.yml first: later files override earlier ones.
func allComposeFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("docker-compose*.yml")
	require.NoError(t, err)
	slices.SortFunc(files, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == "docker-compose.yml":
			return -1
		case b == "docker-compose.yml":
			return 1
		}
		return strings.Compare(a, b)
	})
	return files
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// declaredProfiles lists, sorted, every profile any service or job declares.
func declaredProfiles(p *types.Project) []string {
	var profiles []string
	for _, s := range p.AllServices() {
		profiles = append(profiles, s.Profiles...)
	}
	for _, j := range p.AllJobs() {
		profiles = append(profiles, j.Profiles...)
	}
	slices.Sort(profiles)
	return slices.Compact(profiles)
}

// workload is a service or a job: anything that runs a container.
type workload struct {
	label string
	types.ContainerSpec
	types.WorkloadSpec
}

// workloads returns the enabled services and jobs, sorted for stable output.
func workloads(p *types.Project) []workload {
	var ws []workload
	for _, name := range sortedServiceNames(p) {
		s := p.Services[name]
		ws = append(ws, workload{name, s.ContainerSpec, s.WorkloadSpec})
	}
	for name, j := range p.Jobs {
		ws = append(ws, workload{"job " + name, j.ContainerSpec, j.WorkloadSpec})
	}
	slices.SortFunc(ws, func(a, b workload) int { return strings.Compare(a.label, b.label) })
	return ws
}

func sortedServiceNames(p *types.Project) []string {
	names := make([]string, 0, len(p.Services))
	for name := range p.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// checkImagesPinned: every image names a tag other than latest, or a digest,
// so what runs is what was reviewed. A service that builds must name its image
// too, or Compose invents a name and other services cannot share it.
func checkImagesPinned(p *types.Project) []string {
	var problems []string
	for _, w := range workloads(p) {
		switch {
		case w.Image == "" && w.Build != nil:
			problems = append(problems, w.label+": builds an image without naming it: set image: with a tag")
		case w.Image != "" && !imagePinned(w.Image):
			problems = append(problems, fmt.Sprintf("%s: image %q is not pinned: give it a tag other than latest, or a digest", w.label, w.Image))
		}
	}
	return problems
}

func imagePinned(ref string) bool {
	if name, digest, ok := strings.Cut(ref, "@"); ok {
		return name != "" && regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(digest)
	}
	_, tag, ok := strings.Cut(path.Base(ref), ":")
	return ok && tag != "" && tag != "latest"
}

// imageRepository returns ref without its tag or digest.
func imageRepository(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// oneShot reports the services meant to run once and exit: those that declare
// `restart: "no"` and those another service waits on to complete.
func oneShot(p *types.Project) map[string]bool {
	once := map[string]bool{}
	for name, s := range p.Services {
		if s.Restart == types.RestartPolicyNo {
			once[name] = true
		}
		for dep, cfg := range s.DependsOn {
			if cfg.Condition == types.ServiceConditionCompletedSuccessfully {
				once[dep] = true
			}
		}
	}
	return once
}

func healthcheckEnabled(hc *types.HealthCheckConfig) bool {
	return hc != nil && !hc.Disable && len(hc.Test) > 0 && hc.Test[0] != "NONE"
}

// checkHealthchecks: a long-running service has a healthcheck (Compose's
// service_healthy and operators rely on it) and a restart policy; no
// healthcheck, even a one-shot's, is switched off.
func checkHealthchecks(p *types.Project) []string {
	var problems []string
	once := oneShot(p)
	for _, name := range sortedServiceNames(p) {
		s := p.Services[name]
		hc := s.HealthCheck
		if hc != nil && (hc.Disable || (len(hc.Test) > 0 && hc.Test[0] == "NONE")) {
			problems = append(problems, name+": healthcheck is disabled")
			continue
		}
		if once[name] {
			continue
		}
		switch {
		case hc == nil || len(hc.Test) == 0:
			problems = append(problems, name+": long-running service has no healthcheck test")
		case (hc.Test[0] == "CMD" || hc.Test[0] == "CMD-SHELL") && len(hc.Test) < 2:
			problems = append(problems, name+": healthcheck "+hc.Test[0]+" has no command")
		}
		if s.Restart == "" {
			problems = append(problems, name+": long-running service has no restart policy (unless-stopped, always or on-failure)")
		}
	}
	return problems
}

// checkExposure: the network layout and published ports of "Networks and
// exposure".
func checkExposure(p *types.Project) []string {
	var problems []string
	if n, ok := p.Networks[backTier]; ok && n.Internal {
		problems = append(problems, backTier+" is internal: the workers could not reach the endpoints they probe")
	}
	for _, w := range workloads(p) {
		public := slices.Contains(publicServices, w.label)
		if w.NetworkMode == "host" {
			problems = append(problems, w.label+": network_mode host bypasses the networks and exposes every port, the ops port included")
		}
		if _, ok := w.Networks["default"]; ok {
			problems = append(problems, w.label+": on the implicit default network: list front-tier and/or back-tier")
		}
		if _, ok := w.Networks[frontTier]; ok && !public {
			problems = append(problems, fmt.Sprintf("%s: on %s, which is for %v only", w.label, frontTier, publicServices))
		}
		for _, port := range w.Ports {
			// Compose expands port ranges, so one entry is one container port.
			if port.Target == opsPort {
				problems = append(problems, fmt.Sprintf("%s: publishes the ops port %d (health, metrics, pprof)", w.label, opsPort))
				continue
			}
			if !public && !loopback(port.HostIP) {
				published := port.Published
				if published == "" {
					published = strconv.Itoa(int(port.Target))
				}
				problems = append(problems, fmt.Sprintf("%s: publishes %s on all interfaces: bind it to 127.0.0.1", w.label, published))
			}
		}
	}
	if pg, ok := p.Services["postgres"]; ok {
		if _, on := pg.Networks[backTier]; !on || len(pg.Networks) != 1 {
			problems = append(problems, fmt.Sprintf("postgres: must be on %s only, is on %v", backTier, slices.Sorted(maps.Keys(pg.Networks))))
		}
	}
	return problems
}

func loopback(hostIP string) bool {
	ip := net.ParseIP(hostIP)
	return ip != nil && ip.IsLoopback()
}

// rangeContains reports whether a published port ("8080" or "8000-8100")
// includes port.
func rangeContains(published string, port int) bool {
	lo, hi, isRange := strings.Cut(published, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := strconv.Atoi(lo)
	h, err2 := strconv.Atoi(hi)
	return err1 == nil && err2 == nil && l <= port && port <= h
}

// checkBindMounts: nothing a container does changes the host, so every bind
// mount is read-only; and a bind mount from the repository (a config file or
// folder) names something that exists, or Docker would silently mount an
// empty directory created in its place.
func checkBindMounts(p *types.Project) []string {
	var problems []string
	for _, w := range workloads(p) {
		for _, v := range w.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if !v.ReadOnly {
				problems = append(problems, fmt.Sprintf("%s: bind mount %s -> %s is writable: add :ro", w.label, v.Source, v.Target))
			}
			rel, err := filepath.Rel(p.WorkingDir, v.Source)
			if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				continue // a host path such as /proc, outside the repository
			}
			if _, err := os.Stat(v.Source); err != nil {
				problems = append(problems, fmt.Sprintf("%s: mounts %s, which does not exist in the repository", w.label, rel))
			}
		}
	}
	return problems
}

// checkGrafana: Grafana is published on every interface, so a visitor may
// look but never change: anonymous access, if on, has the Viewer role;
// sign-up is off; the admin password is set and is not Grafana's default;
// nothing is downloaded at start (plugins).
func checkGrafana(p *types.Project) []string {
	s, ok := p.Services["grafana"]
	if !ok {
		return nil
	}
	env := func(k string) string {
		if v := s.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
	var problems []string
	if strings.EqualFold(env("GF_AUTH_ANONYMOUS_ENABLED"), "true") && env("GF_AUTH_ANONYMOUS_ORG_ROLE") != "Viewer" {
		problems = append(problems, fmt.Sprintf("grafana: anonymous visitors get role %q: set GF_AUTH_ANONYMOUS_ORG_ROLE=Viewer", env("GF_AUTH_ANONYMOUS_ORG_ROLE")))
	}
	if !strings.EqualFold(env("GF_USERS_ALLOW_SIGN_UP"), "false") {
		problems = append(problems, "grafana: sign-up must be off (GF_USERS_ALLOW_SIGN_UP=false)")
	}
	// The image's run.sh reads GF_<KEY>__FILE into GF_<KEY>; a compose secret
	// is mounted at /run/secrets/<name> (checkSecretsSet sees it is set).
	pw, pwFile := env("GF_SECURITY_ADMIN_PASSWORD"), env("GF_SECURITY_ADMIN_PASSWORD__FILE")
	switch {
	case pw != "" && pwFile != "":
		problems = append(problems, "grafana: GF_SECURITY_ADMIN_PASSWORD and its __FILE are both set: the image refuses to start")
	case pwFile != "":
		if !slices.ContainsFunc(s.Secrets, func(ref types.ServiceSecretConfig) bool { return secretTarget(ref) == pwFile }) {
			problems = append(problems, "grafana: GF_SECURITY_ADMIN_PASSWORD__FILE is "+pwFile+", which is no secret of the service")
		}
	case pw == "" || pw == "admin":
		problems = append(problems, "grafana: the admin password must come from the environment or a secret (GF_SECURITY_ADMIN_PASSWORD or its __FILE), not Grafana's default")
	}
	if env("GF_INSTALL_PLUGINS") != "" || env("GF_PLUGINS_PREINSTALL") != "" || !strings.EqualFold(env("GF_PLUGINS_PREINSTALL_DISABLED"), "true") {
		problems = append(problems, "grafana: downloads plugins at start: leave GF_INSTALL_PLUGINS unset and set GF_PLUGINS_PREINSTALL_DISABLED=true")
	}
	return problems
}

// needsAtStart lists, per service, variables its image refuses to start
// without (pgAdmin's entrypoint: "You need to define..."), which the compose
// file therefore leaves empty when unset instead of requiring with `:?`.
var needsAtStart = map[string][]string{
	"pgadmin": {"PGADMIN_DEFAULT_EMAIL", "PGADMIN_DEFAULT_PASSWORD"},
}

// checkSecretsSet: what `docker compose up` or the containers refuse to
// start without, for the services of the active profiles only. Compose reads
// an `environment:` secret when it creates a service that uses it, and fails
// if the variable is unset (recent versions also if empty).
func checkSecretsSet(p *types.Project) []string {
	var problems []string
	for _, name := range sortedServiceNames(p) {
		s := p.Services[name]
		for _, ref := range s.Secrets {
			secret, ok := p.Secrets[ref.Source]
			if ok && secret.Environment != "" && secret.Content == "" {
				problems = append(problems, fmt.Sprintf("%s: secret %s: %s is unset or empty", name, ref.Source, secret.Environment))
			}
		}
		for _, k := range needsAtStart[name] {
			if v := s.Environment[k]; v == nil || *v == "" {
				problems = append(problems, fmt.Sprintf("%s: %s is empty", name, k))
			}
		}
	}
	return problems
}

// secretTarget is where compose mounts a service's secret.
func secretTarget(ref types.ServiceSecretConfig) string {
	switch {
	case ref.Target == "":
		return "/run/secrets/" + ref.Source
	case strings.HasPrefix(ref.Target, "/"):
		return ref.Target
	}
	return "/run/secrets/" + ref.Target
}

// checkStartupOrder: every depends_on condition can be met, or `docker
// compose up` waits forever (or fails).
func checkStartupOrder(p *types.Project) []string {
	var problems []string
	for _, name := range sortedServiceNames(p) {
		deps := p.Services[name].DependsOn
		for _, dep := range slices.Sorted(maps.Keys(deps)) {
			target, ok := p.Services[dep]
			if !ok {
				continue // an optional dependency outside the active profiles
			}
			switch deps[dep].Condition {
			case types.ServiceConditionHealthy:
				if !healthcheckEnabled(target.HealthCheck) {
					problems = append(problems, fmt.Sprintf("%s: waits for %s to be healthy but %s has no healthcheck", name, dep, dep))
				}
			case types.ServiceConditionCompletedSuccessfully:
				if r := target.Restart; r == types.RestartPolicyAlways || r == types.RestartPolicyUnlessStopped {
					problems = append(problems, fmt.Sprintf("%s: waits for %s to complete but %s restarts %q", name, dep, dep, r))
				}
			}
		}
	}
	return problems
}

// isBeaconService reports whether s runs an image this repository builds
// (Beacon's ./Dockerfile, the collector's, the demo's): those are ours to harden.
func isBeaconService(s types.ServiceConfig) bool {
	return s.Build != nil || path.Base(imageRepository(s.Image)) == beaconImage
}

// checkHardening: nothing is privileged; the containers of images built here
// drop every capability, cannot gain privileges and have a read-only root
// filesystem.
func checkHardening(p *types.Project) []string {
	var problems []string
	for _, w := range workloads(p) {
		if w.Privileged {
			problems = append(problems, w.label+": runs privileged")
		}
	}
	for _, name := range sortedServiceNames(p) {
		s := p.Services[name]
		if !isBeaconService(s) {
			continue
		}
		if !slices.ContainsFunc(s.CapDrop, func(c string) bool { return strings.EqualFold(c, "ALL") }) {
			problems = append(problems, name+": must drop ALL capabilities (cap_drop: [ALL])")
		}
		if len(s.CapAdd) > 0 {
			problems = append(problems, fmt.Sprintf("%s: adds capabilities %v", name, s.CapAdd))
		}
		if !slices.ContainsFunc(s.SecurityOpt, func(o string) bool {
			return o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true"
		}) {
			problems = append(problems, name+`: must set no-new-privileges (security_opt: ["no-new-privileges:true"])`)
		}
		if !s.ReadOnly {
			problems = append(problems, name+": must run with a read-only root filesystem (read_only: true)")
		}
		if u, _, _ := strings.Cut(s.User, ":"); u == "root" || u == "0" {
			problems = append(problems, name+": runs as root; the image's nonroot user is meant")
		}
	}
	return problems
}

// checkBeaconRoles: migrations run once, to completion, before api and worker
// start on a healthy database; the workers are replicated.
func checkBeaconRoles(p *types.Project) []string {
	var problems []string
	service := func(name string) (types.ServiceConfig, bool) {
		s, ok := p.Services[name]
		if !ok {
			problems = append(problems, name+": service is missing")
		}
		return s, ok
	}
	role := func(name string, s types.ServiceConfig) {
		if !slices.Equal(s.Command, types.ShellCommand{name}) {
			problems = append(problems, fmt.Sprintf("%s: command must be [%q], is %q", name, name, s.Command))
		}
	}

	if migrate, ok := service("migrate"); ok {
		role("migrate", migrate)
		if migrate.Restart != types.RestartPolicyNo {
			problems = append(problems, fmt.Sprintf(`migrate: restart policy must be "no", is %q`, migrate.Restart))
		}
	}
	for _, name := range []string{"api", "worker"} {
		s, ok := service(name)
		if !ok {
			continue
		}
		role(name, s)
		for _, want := range []struct{ dep, condition string }{
			{"migrate", types.ServiceConditionCompletedSuccessfully},
			{"postgres", types.ServiceConditionHealthy},
		} {
			if got, ok := s.DependsOn[want.dep]; !ok || got.Condition != want.condition {
				problems = append(problems, fmt.Sprintf("%s: must depend on %s with condition %q", name, want.dep, want.condition))
			}
		}
	}
	if worker, ok := p.Services["worker"]; ok {
		if n := worker.GetScale(); n != 2 {
			problems = append(problems, fmt.Sprintf("worker: wants 2 replicas, has %d", n))
		}
	}
	return problems
}

// checkDockerfile: base images are pinned, the builder's Go is at least the
// one go.mod asks for (the build sets GOTOOLCHAIN=local, so an older one
// fails instead of downloading another), the final stage runs as nonroot and
// does not EXPOSE the ops port.
func checkDockerfile(dockerfile, gomod string) []string {
	var problems []string
	// Join continuation lines, drop comments and blank lines.
	joined := regexp.MustCompile(`\\\r?\n`).ReplaceAllString(dockerfile, " ")
	var lines [][]string
	for line := range strings.Lines(joined) {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		fields[0] = strings.ToUpper(fields[0])
		lines = append(lines, fields)
	}

	stages := map[string]bool{}
	var builderGo, finalUser string
	for _, fields := range lines {
		switch fields[0] {
		case "FROM":
			args := slices.DeleteFunc(slices.Clone(fields[1:]), func(a string) bool { return strings.HasPrefix(a, "--") })
			if len(args) == 0 {
				problems = append(problems, "FROM without an image")
				continue
			}
			image := args[0]
			earlierStage := stages[strings.ToLower(image)]
			if len(args) >= 3 && strings.EqualFold(args[1], "AS") {
				stages[strings.ToLower(args[2])] = true
			}
			finalUser = ""
			if earlierStage || image == "scratch" {
				continue
			}
			if !imagePinned(image) {
				problems = append(problems, fmt.Sprintf("FROM: image %q is not pinned", image))
			}
			if imageRepository(image) == "golang" {
				tag := image[strings.LastIndex(image, ":")+1:]
				builderGo, _, _ = strings.Cut(tag, "-")
			}
		case "USER":
			if len(fields) > 1 {
				finalUser = fields[1]
			}
		case "EXPOSE":
			for _, port := range fields[1:] {
				p, _, _ := strings.Cut(port, "/")
				if rangeContains(p, opsPort) {
					problems = append(problems, fmt.Sprintf("EXPOSE publishes the ops port %d with `docker run -P`", opsPort))
				}
			}
		}
	}
	if u, _, _ := strings.Cut(finalUser, ":"); u != "nonroot" && u != "65532" {
		problems = append(problems, fmt.Sprintf("final stage must set USER nonroot, has %q", finalUser))
	}

	goVersion := regexp.MustCompile(`(?m)^go\s+(\S+)`).FindStringSubmatch(gomod)
	switch {
	case goVersion == nil:
		problems = append(problems, "go.mod has no go directive")
	case builderGo == "":
		problems = append(problems, "no golang builder stage found")
	case compareVersions(builderGo, goVersion[1]) < 0:
		problems = append(problems, fmt.Sprintf("builder Go %s is older than go.mod's go %s", builderGo, goVersion[1]))
	}
	return problems
}

// compareVersions compares dotted numeric versions like 1.26 and 1.26.8.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

// The API believes X-Forwarded-For (which names the client for sign-in
// limits) from loopback and the dashboard's fixed address only: a private
// range would let anyone on the compose networks choose their address.
func TestComposeTrustsOnlyTheDashboard(t *testing.T) {
	t.Parallel()
	p, err := loadCompose(t.Context(), []string{"docker-compose.yml"})
	require.NoError(t, err)
	api, err := p.GetService("api")
	require.NoError(t, err)
	dash, err := p.GetService("dashboard")
	require.NoError(t, err)
	front := dash.Networks["front-tier"]
	require.NotNil(t, front, "the dashboard is on front-tier")
	require.NotEmpty(t, front.Ipv4Address, "the dashboard has a fixed address")
	trusted := api.Environment["BEACON_TRUSTED_PROXIES"]
	require.NotNil(t, trusted)
	prefixes, err := netguard.ParsePrefixes(*trusted)
	require.NoError(t, err)
	dashAddr := netip.MustParseAddr(front.Ipv4Address)
	for _, pfx := range prefixes {
		if pfx.Addr().IsLoopback() {
			continue
		}
		require.Equal(t, netip.PrefixFrom(dashAddr, 32), pfx, "trusted: %s", *trusted)
	}
	subnet := p.Networks["front-tier"].Ipam.Config
	require.Len(t, subnet, 1)
	require.True(t, netip.MustParsePrefix(subnet[0].Subnet).Contains(dashAddr), "the address is in front-tier's subnet")
}

// ---- `make up`: scripts/env-init.sh writes the .env that compose reads.

// envInitKeys are the keys scripts/env-init.sh writes (POSTGRES_PASSWORD
// unless a database volume exists already).
var envInitKeys = []string{
	"BEACON_JWT_SECRET", "BEACON_ADMIN_EMAIL", "BEACON_ADMIN_PASSWORD",
	"GRAFANA_ADMIN_PASSWORD", "PGADMIN_DEFAULT_EMAIL", "PGADMIN_DEFAULT_PASSWORD",
	"POSTGRES_PASSWORD",
}

// fakeDocker returns a folder holding a `docker` that appends its arguments
// to the returned log and answers `docker volume inspect` as if the volume
// existed or not; nothing else touches a Docker engine.
func fakeDocker(t *testing.T, volumeExists bool) (bin, log string) {
	t.Helper()
	bin = t.TempDir()
	log = filepath.Join(bin, "docker.log")
	status := 1
	if volumeExists {
		status = 0
	}
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$*\" >>%q\n[ \"$1 $2\" = 'volume inspect' ] && exit %d\nexit 0\n", log, status)
	require.NoError(t, os.WriteFile(filepath.Join(bin, "docker"), []byte(script), 0o755))
	return bin, log
}

// envWithout is the process environment without the variables a developer
// may have exported for compose (the scripts must not depend on them), with
// extra appended.
func envWithout(extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains(envInitKeys, k) || k == "PATH"
	})
	return append(env, extra...)
}

// runEnvInit runs scripts/env-init.sh FILE under POSIX sh with bin first on
// PATH and returns its output.
func runEnvInit(t *testing.T, bin, file string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "sh", "scripts/env-init.sh", file)
	cmd.Env = envWithout("PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "env-init: %s", out)
	return string(out)
}

// readDotEnv parses an env file the way compose does.
func readDotEnv(t *testing.T, file string) map[string]string {
	t.Helper()
	env, err := dotenv.Read(file)
	require.NoError(t, err)
	return env
}

func isSecretKey(k string) bool {
	return strings.Contains(k, "PASSWORD") || strings.Contains(k, "SECRET")
}

// TestEnvInit: the first run writes every key with random secrets to a
// private file and prints none of them; production accepts them; a second
// run keeps every value and line, adds a key that was removed and makes the
// file private again; a run with nothing to add changes nothing.
func TestEnvInit(t *testing.T) {
	t.Parallel()

	bin, _ := fakeDocker(t, false)
	file := filepath.Join(t.TempDir(), ".env")
	out := runEnvInit(t, bin, file)

	first := readDotEnv(t, file)
	for _, k := range envInitKeys {
		assert.NotEmpty(t, first[k], k)
		if isSecretKey(k) {
			assert.NotContains(t, out, first[k], "%s is printed", k)
		}
	}
	assert.Contains(t, out, "grep BEACON_ADMIN_PASSWORD "+file, "says where the admin password is")
	st, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// Production refuses placeholders and short secrets: the generated ones pass.
	prod := map[string]string{"BEACON_ENV": "production", "DATABASE_URL": "postgres://beacon@localhost/beacon"}
	for _, k := range coreSecrets {
		prod[k] = first[k]
	}
	_, err = config.Load(func(k string) string { return prod[k] })
	require.NoError(t, err, "production refuses the generated values")
	for _, k := range envInitKeys {
		if isSecretKey(k) {
			assert.False(t, config.IsPlaceholder(first[k]), k)
			assert.GreaterOrEqual(t, len(first[k]), 32, k)
		}
	}

	// Another run on another file: other secrets.
	other := filepath.Join(t.TempDir(), ".env")
	runEnvInit(t, bin, other)
	assert.NotEqual(t, first["BEACON_JWT_SECRET"], readDotEnv(t, other)["BEACON_JWT_SECRET"])

	// Remove a key, add a line of one's own (no final newline), loosen the mode.
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	var kept []string
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, "GRAFANA_ADMIN_PASSWORD=") {
			kept = append(kept, line)
		}
	}
	edited := strings.Join(kept, "") + "# mine\nBEACON_VERSION=1.2.3"
	require.NoError(t, os.WriteFile(file, []byte(edited), 0o644))
	require.NoError(t, os.Chmod(file, 0o644))

	out = runEnvInit(t, bin, file)
	assert.Contains(t, out, "GRAFANA_ADMIN_PASSWORD")
	second := readDotEnv(t, file)
	for _, k := range envInitKeys {
		if k == "GRAFANA_ADMIN_PASSWORD" {
			assert.NotEmpty(t, second[k])
			assert.NotEqual(t, first[k], second[k], "a removed secret comes back as a new one")
			continue
		}
		assert.Equal(t, first[k], second[k], "%s changed", k)
	}
	assert.Equal(t, "1.2.3", second["BEACON_VERSION"], "a line of one's own is kept")
	b, err = os.ReadFile(file)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(b), edited+"\n"), "lines are only appended:\n%s", b)
	st, err = os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "made private again")

	// Nothing to add: nothing changes.
	runEnvInit(t, bin, file)
	again, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, string(b), string(again))
}

// TestEnvInitKeepsAnExistingDatabasePassword: PostgreSQL reads its password
// when its volume is created, so with a volume there already no new
// POSTGRES_PASSWORD is written (it would lock Beacon out of its database).
func TestEnvInitKeepsAnExistingDatabasePassword(t *testing.T) {
	t.Parallel()

	bin, log := fakeDocker(t, true)
	file := filepath.Join(t.TempDir(), ".env")
	out := runEnvInit(t, bin, file)
	env := readDotEnv(t, file)
	_, has := env["POSTGRES_PASSWORD"]
	assert.False(t, has, "POSTGRES_PASSWORD written although the volume exists")
	assert.Contains(t, out, "beacon_postgres-data exists")
	assert.NotEmpty(t, env["BEACON_JWT_SECRET"])
	calls, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.Equal(t, "volume inspect beacon_postgres-data\n", string(calls))
}

func TestGitIgnoresDotEnv(t *testing.T) {
	t.Parallel()

	out, err := exec.CommandContext(t.Context(), "git", "check-ignore", "-v", ".env").CombinedOutput()
	require.NoError(t, err, "git check-ignore .env: %s (.gitignore must cover the .env of make up)", out)
}

// TestComposeWithGeneratedEnv: with nothing but the .env that env-init
// writes (no other environment), every compose file loads for every profile,
// no variable the files use without a default is missing, and every secret a
// started service needs is set.
func TestComposeWithGeneratedEnv(t *testing.T) {
	t.Parallel()

	bin, _ := fakeDocker(t, false)
	file := filepath.Join(t.TempDir(), ".env")
	runEnvInit(t, bin, file)
	env := readDotEnv(t, file)

	files := allComposeFiles(t)
	for _, f := range files {
		for _, name := range variablesWithoutDefault(t, f) {
			assert.Contains(t, env, name, "%s uses %s without a default and .env lacks it", f, name)
		}
	}

	for _, tt := range []struct {
		name     string
		profiles []string
	}{
		{"core", nil},
		{"monitoring", []string{"monitoring"}},
		{"admin", []string{"admin"}},
		{"elastic", []string{"elastic"}},
		{"all", []string{"*"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			opts, err := cli.NewProjectOptions(files,
				cli.WithEnvFiles(file),
				cli.WithDotEnv,
				cli.WithProfiles(tt.profiles),
				cli.WithName("beacon"),
			)
			require.NoError(t, err)
			p, err := opts.LoadProject(t.Context())
			require.NoError(t, err, "load %v with profiles %v and the generated .env", files, tt.profiles)
			assert.Empty(t, checkSecretsSet(p))
			if tt.profiles != nil {
				assert.Greater(t, len(p.Services), 5, "the profile adds services")
			}
		})
	}
}

// composeVariable matches ${NAME...} and $NAME; $$ is an escaped dollar.
var composeVariable = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// variablesWithoutDefault lists the variables a compose file uses with no
// default (`${VAR}`, `$VAR`, `${VAR:?...}`), from its YAML values (comments
// do not count).
func variablesWithoutDefault(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	var doc any
	require.NoError(t, yaml.Unmarshal(b, &doc), file)
	var names []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			for _, m := range composeVariable.FindAllStringSubmatch(v, -1) {
				switch {
				case m[0] == "$$":
				case m[3] != "":
					names = append(names, m[3])
				case m[2] == "" || strings.HasPrefix(m[2], "?") || strings.HasPrefix(m[2], ":?"):
					names = append(names, m[1])
				}
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
	slices.Sort(names)
	return slices.Compact(names)
}

func TestVariablesWithoutDefault(t *testing.T) {
	t.Parallel()

	f := writeFile(t, "docker-compose.yml", `
# ${IN_A_COMMENT}
services:
  a:
    image: x:${TAG:-1}
    command: ["sh", "-c", "echo $$ESCAPED $${ESCAPED2}"]
    environment:
      A: ${PLAIN}
      B: $BARE
      C: ${REQUIRED:?say so}
      D: ${EMPTY_DEFAULT:-}
      E: ${SET_OR_NOT-x}
      F: ${PRESENT:+yes}
`)
	assert.Equal(t, []string{"BARE", "PLAIN", "REQUIRED"}, variablesWithoutDefault(t, f))
}

// TestMakeUp runs the Makefile's up and down targets with a fake docker:
// .env is written on the first run and kept on the next, the compose files
// and PROFILES become the documented command, a demo file joins when
// present, and without docker make up stops with one line and writes
// nothing.
func TestMakeUp(t *testing.T) {
	t.Parallel()

	makeBin, err := exec.LookPath("make")
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "scripts"), 0o755))
	// Without docker-compose.demo.yml at first: it is added below.
	for _, f := range []string{"docker-compose.yml", "docker-compose.observability.yml", "Makefile", "scripts/env-init.sh"} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, 0o755))
	}
	bin, log := fakeDocker(t, false)
	runMake := func(path string, args ...string) (string, error) {
		cmd := exec.CommandContext(t.Context(), makeBin, append([]string{"-s", "-C", dir}, args...)...)
		cmd.Env = slices.DeleteFunc(envWithout("PATH="+path), func(kv string) bool {
			return strings.HasPrefix(kv, "PROFILES=") || strings.HasPrefix(kv, "MAKEFLAGS=") || strings.HasPrefix(kv, "MAKELEVEL=")
		})
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	lastCall := func() string {
		b, err := os.ReadFile(log)
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		return lines[len(lines)-1]
	}
	path := bin + string(os.PathListSeparator) + os.Getenv("PATH")
	const files = "-f docker-compose.yml -f docker-compose.observability.yml"

	// No docker: one line, no .env.
	out, err := runMake(t.TempDir(), "up")
	require.Error(t, err)
	assert.Contains(t, out, "docker not found")
	ours := slices.DeleteFunc(strings.Split(strings.TrimSpace(out), "\n"), func(l string) bool { return strings.HasPrefix(l, "make: ***") })
	assert.Len(t, ours, 1, "one line besides make's own:\n%s", out)
	assert.NoFileExists(t, filepath.Join(dir, ".env"))

	out, err = runMake(path, "up")
	require.NoError(t, err, out)
	assert.Equal(t, "compose "+files+" --profile monitoring up --build -d", lastCall())
	env := readDotEnv(t, filepath.Join(dir, ".env"))
	for _, k := range envInitKeys {
		require.NotEmpty(t, env[k], k)
		if isSecretKey(k) {
			assert.NotContains(t, out, env[k], "make up prints %s", k)
		}
	}
	assert.Contains(t, out, "grep BEACON_ADMIN_PASSWORD")

	out, err = runMake(path, "up", "PROFILES=monitoring admin")
	require.NoError(t, err, out)
	assert.Equal(t, "compose "+files+" --profile monitoring --profile admin up --build -d", lastCall())
	assert.Equal(t, env, readDotEnv(t, filepath.Join(dir, ".env")), "the second make up changed .env")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "docker-compose.demo.yml"), []byte("services: {}\n"), 0o644))
	out, err = runMake(path, "up", "PROFILES=")
	require.NoError(t, err, out)
	assert.Equal(t, "compose "+files+" -f docker-compose.demo.yml up --build -d", lastCall())

	out, err = runMake(path, "down")
	require.NoError(t, err, out)
	assert.Equal(t, "compose "+files+" -f docker-compose.demo.yml --profile * down", lastCall())
}
