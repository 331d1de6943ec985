package chartcheck

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	kedav1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/beaconhq/beacon/internal/config"
)

const (
	root  = "../../.."
	chart = "../beacon"
	// The oldest Kubernetes the chart claims (Chart.yaml kubeVersion).
	kubeVersion = "1.30.0"
)

var (
	beaconBin string // built once by TestMain
	facts     Beacon
	metrics   []string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chartcheck")
	if err != nil {
		panic(err)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		beaconBin = filepath.Join(dir, "beacon")
		build := exec.Command("go", "build", "-o", beaconBin, "./cmd/beacon")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "chartcheck: go build ./cmd/beacon: %v\n%s", err, out)
			return 1
		}
		if facts, err = beaconFacts(); err != nil {
			fmt.Fprintln(os.Stderr, "chartcheck:", err)
			return 1
		}
		if metrics, err = backlogMetrics(); err != nil {
			fmt.Fprintln(os.Stderr, "chartcheck:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// beaconFacts asks the binary for its roles and the sources for the longest check.
func beaconFacts() (Beacon, error) {
	out, err := exec.Command(beaconBin, "--help").Output()
	if err != nil {
		return Beacon{}, fmt.Errorf("beacon --help: %w", err)
	}
	var roles []string
	inCommands := false
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "Commands:"):
			inCommands = true
		case inCommands && strings.HasPrefix(line, "  "):
			roles = append(roles, strings.Fields(line)[0])
		case inCommands:
			inCommands = len(roles) == 0
		}
	}
	if len(roles) < 4 {
		return Beacon{}, fmt.Errorf("beacon --help listed commands %v", roles)
	}
	src, err := os.ReadFile(filepath.Join(root, "internal/monitors/monitor.go"))
	if err != nil {
		return Beacon{}, err
	}
	m := regexp.MustCompile(`MaxTimeout\s*=\s*(\d+) \* time\.Second`).FindSubmatch(src)
	if m == nil {
		return Beacon{}, fmt.Errorf("internal/monitors/monitor.go: MaxTimeout = N * time.Second not found")
	}
	maxCheck, _ := time.ParseDuration(string(m[1]) + "s")
	return Beacon{
		Roles: roles,
		Vars:  config.Vars,
		// The OpenTelemetry SDK's variables the chart may set (README, Telemetry).
		OtherEnv: []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_METRICS_EXPORTER",
			"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"},
		MaxCheck:   maxCheck,
		FlushGrace: 5 * time.Second,
		// Values of Secrets the chart is told exist (existingSecret).
		Secrets: map[string]string{
			"BEACON_JWT_SECRET":     "k7Qv2dXb9LmN4pRs8TuW1yZa3cEf6gHj0iKo5qSx",
			"BEACON_ADMIN_EMAIL":    "ops@beacon.test",
			"BEACON_ADMIN_PASSWORD": "correct-horse-battery-staple",
			"DATABASE_URL":          "postgres://beacon:pw@db.beacon.svc:5432/beacon?sslmode=require",
		},
	}, nil
}

// backlogMetrics reads the Prometheus names of the backlog gauges from their source
// (OTel name with dots as underscores, plus _seconds for unit s).
func backlogMetrics() ([]string, error) {
	src, err := os.ReadFile(filepath.Join(root, "internal/jobs/metrics.go"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?s)ObservableGauge\("([a-z0-9_.]+)",.*?WithUnit\("([^"]*)"\)`).FindAllSubmatch(src, -1) {
		name := strings.ReplaceAll(string(m[1]), ".", "_")
		if string(m[2]) == "s" {
			name += "_seconds"
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("internal/jobs/metrics.go: no observable gauges found")
	}
	return names, nil
}

// helm runs scripts/helm.sh (Helm built from the module proxy, cached).
func helm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(root, "scripts/helm.sh")}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

func render(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	return helm(t, append([]string{"template", "beacon", chart, "--namespace", "beacon", "--kube-version", kubeVersion}, args...)...)
}

func valuesFiles(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join(chart, "ci", "*-values.yaml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("values files: %v %v", files, err)
	}
	return files
}

func allChecks(objs []Object) []error {
	var errs []error
	errs = append(errs, facts.CheckBeacon(objs)...)
	errs = append(errs, CheckSecurity(objs)...)
	errs = append(errs, CheckReferences(objs)...)
	errs = append(errs, CheckKEDA(objs, metrics)...)
	return errs
}

func report(t *testing.T, errs []error) {
	t.Helper()
	for _, err := range errs {
		t.Error(err)
	}
}

// Every values file lints, renders, decodes strictly and passes every check.
func TestValuesFiles(t *testing.T) {
	collectorConfig, err := os.ReadFile(filepath.Join(root, "otel-collector/config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range valuesFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			if out, err := helm(t, "lint", "--strict", chart, "-f", file); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			out, err := render(t, "-f", file)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := Decode(out)
			if err != nil {
				t.Fatal(err)
			}
			report(t, allChecks(objs))

			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.Kind]++
			}
			t.Logf("%d objects: %v", len(objs), kinds)
			if kinds["Deployment"] < 2 || kinds["Job"] != 1 {
				t.Errorf("want the api and worker Deployments and the migrate Job, got %v", kinds)
			}
			for _, j := range All[*batchv1.Job](objs) {
				if !strings.Contains(j.Annotations["helm.sh/hook"], "pre-install") || !strings.Contains(j.Annotations["helm.sh/hook"], "pre-upgrade") {
					t.Errorf("Job %s is not a pre-install/pre-upgrade hook", j.Name)
				}
			}
			for _, cm := range All[*corev1.ConfigMap](objs) {
				if got := cm.Data["config.yaml"]; got != string(collectorConfig) {
					t.Errorf("ConfigMap %s: config.yaml differs from otel-collector/config.yaml", cm.Name)
				}
			}
			// No secret value outside Secret objects.
			var secretValues []string
			for _, s := range All[*corev1.Secret](objs) {
				for _, v := range s.StringData {
					secretValues = append(secretValues, v)
				}
			}
			for _, doc := range docSep.Split(string(out), -1) {
				if strings.Contains(doc, "\nkind: Secret\n") {
					continue
				}
				for _, v := range secretValues {
					if strings.Contains(doc, v) {
						t.Errorf("a secret value appears outside a Secret:\n%s", doc)
					}
				}
			}
		})
	}
}

// The chart refuses what would run insecurely or not at all, with one clear line.
func TestRefusals(t *testing.T) {
	existing := []string{"--set", "secrets.existingSecret=app", "--set", "database.existingSecret=db"}
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"defaults", "secrets.jwtSecret: set a random value", nil},
		{"placeholder secret", "secrets.jwtSecret: set a random value", []string{"--set", "secrets.jwtSecret=changeme-changeme-changeme-changeme-1234", "--set", "database.existingSecret=db"}},
		{"short secret", "at least 32 bytes", []string{"--set", "secrets.jwtSecret=Zx81kQ", "--set", "database.existingSecret=db"}},
		{"dev password", "secrets.adminPassword", []string{"--set", "secrets.jwtSecret=k7Qv2dXb9LmN4pRs8TuW1yZa3cEf6gHj0iKo5qSx", "--set", "secrets.adminEmail=a@b.c", "--set", "secrets.adminPassword=beacon-dev-password", "--set", "database.existingSecret=db"}},
		{"no database", "database.url: set a postgres:// URL", []string{"--set", "secrets.existingSecret=app"}},
		{"latest", `image.tag "latest" moves`, append(slices.Clone(existing), "--set", "image.tag=latest")},
		{"keda without scheduler", "worker.keda.minReplicas: must be at least 1", append(slices.Clone(existing), "--set", "worker.keda.enabled=true", "--set", "worker.keda.source=postgresql", "--set", "worker.keda.minReplicas=0")},
		{"keda prometheus without podMonitor", "enable metrics.podMonitor", append(slices.Clone(existing), "--set", "worker.keda.enabled=true", "--set", "worker.keda.prometheus.serverAddress=http://p:9090")},
		{"keda unknown source", `"redis" is not prometheus or postgresql`, append(slices.Clone(existing), "--set", "worker.keda.enabled=true", "--set", "worker.keda.source=redis")},
		{"bad digest", "image.digest must look like sha256", append(slices.Clone(existing), "--set", "image.digest=md5:abc")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := render(t, tc.args...)
			if err == nil {
				t.Fatalf("rendered; want a refusal containing %q\n%.400s", tc.want, out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("refused with %v; want %q", err, tc.want)
			}
		})
	}
	// A digest pins further.
	out, err := render(t, append(slices.Clone(existing), "--set", "image.digest=sha256:"+strings.Repeat("ab", 32))...)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("image: ghcr.io/beaconhq/beacon:0.1.0@sha256:abab")) {
		t.Error("image.digest is not in the image reference")
	}
}

// The checks fail on the mistakes they exist for: each case breaks one rendered object.
func TestChecksCatchMistakes(t *testing.T) {
	file := filepath.Join(chart, "ci", "keda-postgresql-values.yaml")
	out, err := render(t, "-f", file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(out); err != nil {
		t.Fatal(err)
	}
	// Unknown and misplaced fields fail decoding.
	for _, bad := range []struct{ from, to string }{
		{"  revisionHistoryLimit: 5\n", "  revisionHistoryLimit: 5\n  replica: 2\n"},
		{"          readinessProbe:\n", "          readinesProbe:\n"},
		{"  minReplicaCount:", "  minReplicas:"},
		{"  podSelector:\n", "  podSelectors:\n"},
	} {
		if !bytes.Contains(out, []byte(bad.from)) {
			t.Fatalf("fixture: %q not in the rendering", bad.from)
		}
		if _, err := Decode(bytes.Replace(out, []byte(bad.from), []byte(bad.to), 1)); err == nil {
			t.Errorf("%q -> %q decoded without error", bad.from, bad.to)
		}
	}

	for _, tc := range []struct {
		name, want string
		mutate     func(objs []Object)
	}{
		{"unknown env", "BEACON_NOPE is not a variable Beacon reads", func(objs []Object) {
			c := &deployment(t, objs, "api").Spec.Template.Spec.Containers[0]
			c.Env = append(c.Env, corev1.EnvVar{Name: "BEACON_NOPE", Value: "1"})
		}},
		{"value Beacon refuses", "Beacon would refuse this environment: config: BEACON_WORKER_CONCURRENCY", func(objs []Object) {
			c := &deployment(t, objs, "worker").Spec.Template.Spec.Containers[0]
			for i := range c.Env {
				if c.Env[i].Name == "BEACON_WORKER_CONCURRENCY" {
					c.Env[i].Value = "5000"
				}
			}
		}},
		{"probe path", "readiness probe GET /ready", func(objs []Object) {
			deployment(t, objs, "api").Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Path = "/ready"
		}},
		{"port", `containerPort "http" is 8000`, func(objs []Object) {
			deployment(t, objs, "api").Spec.Template.Spec.Containers[0].Ports[0].ContainerPort = 8000
		}},
		{"role", `args ["serve"], want [worker]`, func(objs []Object) {
			deployment(t, objs, "worker").Spec.Template.Spec.Containers[0].Args = []string{"serve"}
		}},
		{"grace", "terminationGracePeriodSeconds 30s < ", func(objs []Object) {
			deployment(t, objs, "worker").Spec.Template.Spec.TerminationGracePeriodSeconds = nil
		}},
		{"writable root", "root filesystem must be read-only", func(objs []Object) {
			f := false
			deployment(t, objs, "dashboard").Spec.Template.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = &f
		}},
		{"service port", "targetPort metrics is not a port", func(objs []Object) {
			for _, s := range All[*corev1.Service](objs) {
				if strings.HasSuffix(s.Name, "-api") {
					s.Spec.Ports[0].TargetPort.StrVal = "metrics"
				}
			}
		}},
		{"replicas under KEDA", "sets replicas while ScaledObject", func(objs []Object) {
			n := int32(3)
			deployment(t, objs, "worker").Spec.Replicas = &n
		}},
		{"keda bounds", "MinReplicaCount=9 must be less than MaxReplicaCount=8", func(objs []Object) {
			n := int32(9)
			All[*kedav1.ScaledObject](objs)[0].Spec.MinReplicaCount = &n
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := Decode(out)
			if err != nil {
				t.Fatal(err)
			}
			if errs := allChecks(objs); len(errs) > 0 {
				t.Fatalf("fixture already fails: %v", errs)
			}
			tc.mutate(objs)
			errs := allChecks(objs)
			if !slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), tc.want) }) {
				t.Errorf("want an error containing %q, got %v", tc.want, errs)
			}
		})
	}

	// A values change that leaves checks too little time is caught too.
	short, err := render(t, "-f", file, "--set", "worker.shutdownTimeoutSeconds=30")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode(short)
	if err != nil {
		t.Fatal(err)
	}
	if errs := facts.CheckBeacon(objs); !slices.ContainsFunc(errs, func(err error) bool {
		return strings.Contains(err.Error(), "less than the longest check")
	}) {
		t.Errorf("worker.shutdownTimeoutSeconds=30 passed: %v", errs)
	}
}

// Beacon itself runs with the rendered environments: the migrate Job's against a real
// PostgreSQL, then api and worker answer the probes the chart declares, and KEDA's
// postgresql queries run against the migrated schema.
func TestBeaconRunsWithRenderedEnv(t *testing.T) {
	server := os.Getenv("TEST_DATABASE_URL")
	if server == "" {
		t.Fatal("TEST_DATABASE_URL is unset: run through scripts/with-testdb.sh (make helm does)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dbURL := freshDatabase(t, ctx, server)

	out, err := render(t, "-f", filepath.Join(chart, "ci", "keda-postgresql-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	envOf := func(role string) []string {
		for _, w := range Workloads(objs) {
			if w.Labels[ComponentLabel] == role {
				env, errs := facts.Env(objs, w.Spec.Containers[0])
				report(t, errs)
				env["DATABASE_URL"] = dbURL
				delete(env, "OTEL_EXPORTER_OTLP_ENDPOINT") // no collector here
				var list []string
				for k, v := range env {
					list = append(list, k+"="+v)
				}
				return append(list, "PATH="+os.Getenv("PATH"))
			}
		}
		t.Fatalf("no %s workload", role)
		return nil
	}

	migrate := exec.CommandContext(ctx, beaconBin, "migrate")
	migrate.Env = envOf("migrate")
	if b, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("beacon migrate with the Job's environment: %v\n%s", err, b)
	}

	// KEDA's queries, as rendered, on the migrated schema.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	queries := map[string]string{}
	for _, tr := range All[*kedav1.ScaledObject](objs)[0].Spec.Triggers {
		queries[tr.Name] = tr.Metadata["query"]
	}
	value := func(name string) float64 {
		var v float64
		if err := conn.QueryRow(ctx, queries[name]).Scan(&v); err != nil {
			t.Fatalf("trigger %s: %q: %v", name, queries[name], err)
		}
		return v
	}
	if b, a := value("backlog"), value("oldest-available-age"); b != 0 || a != 0 {
		t.Errorf("empty queue: backlog %v, age %v; want 0, 0", b, a)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO river_job (kind, args, queue, state, scheduled_at, finalized_at, max_attempts, priority)
		VALUES ('check', '{}', 'checks', 'available', now() - interval '42 seconds', NULL, 3, 1),
		       ('check', '{}', 'checks', 'running', now(), NULL, 3, 1),
		       ('check', '{}', 'checks', 'completed', now() - interval '1 hour', now(), 3, 1),
		       ('prune', '{}', 'default', 'available', now() - interval '1 hour', NULL, 3, 1)`); err != nil {
		t.Fatal(err)
	}
	if b := value("backlog"); b != 2 {
		t.Errorf("backlog %v, want 2 (one available and one running check)", b)
	}
	if a := value("oldest-available-age"); a < 41 || a > 100 {
		t.Errorf("oldest available age %v, want about 42", a)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM river_job`); err != nil {
		t.Fatal(err)
	}

	// api and worker with the rendered environments, on free local ports.
	apiPort, apiOps, workerOps := freePort(t), freePort(t), freePort(t)
	start := func(role string, extra ...string) *syncBuffer {
		cmd := exec.Command(beaconBin, role)
		cmd.Env = append(envOf(role), extra...)
		log := new(syncBuffer)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
		})
		return log
	}
	apiLog := start("api", "BEACON_HTTP_ADDR=127.0.0.1:"+apiPort, "BEACON_OPS_ADDR=127.0.0.1:"+apiOps)
	workerLog := start("worker", "BEACON_OPS_ADDR=127.0.0.1:"+workerOps)

	for _, p := range []struct {
		role, port string
		log        *syncBuffer
	}{{"api", apiOps, apiLog}, {"worker", workerOps, workerLog}} {
		d := deployment(t, objs, p.role)
		c := d.Spec.Template.Spec.Containers[0]
		for _, path := range []string{c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path, "/metrics"} {
			waitOK(t, ctx, "http://127.0.0.1:"+p.port+path, p.log)
		}
	}
	waitOK(t, ctx, "http://127.0.0.1:"+apiPort+"/healthz", apiLog)
}

func deployment(t *testing.T, objs []Object, role string) *appsv1.Deployment {
	for _, d := range All[*appsv1.Deployment](objs) {
		if d.Spec.Template.Labels[ComponentLabel] == role {
			return d
		}
	}
	t.Fatalf("no %s Deployment", role)
	return nil
}

// freshDatabase creates an empty database on the test server, dropped after the test.
func freshDatabase(t *testing.T, ctx context.Context, server string) string {
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	defer conn.Close(context.Background())
	name := fmt.Sprintf("chartcheck_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), server)
		if err != nil {
			t.Log(err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Log(err)
		}
	})
	return replaceDatabase(server, name)
}

// replaceDatabase swaps the database of a postgres:// URL (or adds ?dbname= for other forms).
func replaceDatabase(server, name string) string {
	if i := strings.Index(server, "://"); i >= 0 {
		rest := server[i+3:]
		q := ""
		if j := strings.IndexByte(rest, '?'); j >= 0 {
			rest, q = rest[:j], rest[j:]
		}
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			rest = rest[:j]
		}
		return server[:i+3] + rest + "/" + name + q
	}
	return server + " dbname=" + name
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// waitOK polls url until it answers 200; on timeout it prints the last answer and the log.
func waitOK(t *testing.T, ctx context.Context, url string, log *syncBuffer) {
	t.Helper()
	last := "no answer"
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("GET %s: last %s\nserver log:\n%s", url, last, log.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// syncBuffer collects a process's output while the test may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
