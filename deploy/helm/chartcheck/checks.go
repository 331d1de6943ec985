package chartcheck

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	kedav1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/beaconhq/beacon/internal/config"
)

// Beacon describes what the binary reads and serves, as the tests found it.
type Beacon struct {
	Roles      []string          // commands of `beacon --help`
	Vars       []config.Var      // config.Vars
	OtherEnv   []string          // standard variables of libraries Beacon uses (OTEL_*)
	MaxCheck   time.Duration     // the longest a check may run (monitors.MaxTimeout)
	Secrets    map[string]string // values for secretKeyRefs to Secrets the chart does not create
	FlushGrace time.Duration     // what Beacon spends after the drain (telemetry flush)
}

// ComponentLabel names the Beacon role of a pod.
const ComponentLabel = "app.kubernetes.io/component"

// beaconRoles are the components that run the beacon binary.
var beaconRoles = []string{"api", "worker", "dashboard", "migrate"}

// Env resolves a container's environment: literal values and secretKeyRefs (to the
// rendered Secrets, else to b.Secrets). $(VAR) references are not used by the chart and
// are refused.
func (b Beacon) Env(objs []Object, c corev1.Container) (map[string]string, []error) {
	secrets := map[string]map[string]string{}
	for _, s := range All[*corev1.Secret](objs) {
		secrets[s.Name] = s.StringData
	}
	env := map[string]string{}
	var errs []error
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			errs = append(errs, fmt.Errorf("env %s set twice", e.Name))
		}
		switch {
		case e.ValueFrom == nil:
			if strings.Contains(e.Value, "$(") {
				errs = append(errs, fmt.Errorf("env %s: $(...) expansion is not expected", e.Name))
			}
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if data, ok := secrets[ref.Name]; ok {
				v, ok := data[ref.Key]
				if !ok {
					errs = append(errs, fmt.Errorf("env %s: Secret %s has no key %s", e.Name, ref.Name, ref.Key))
				}
				env[e.Name] = v
			} else if v, ok := b.Secrets[ref.Key]; ok {
				env[e.Name] = v
			} else {
				errs = append(errs, fmt.Errorf("env %s: key %s of Secret %s is not one the tests know", e.Name, ref.Key, ref.Name))
			}
		default:
			errs = append(errs, fmt.Errorf("env %s: only value and secretKeyRef are expected", e.Name))
		}
	}
	return env, errs
}

// CheckBeacon checks every container running Beacon: role, environment names and
// values (config.Load must accept them), ports against BEACON_*_ADDR, probes on the ops
// port's /healthz and /readyz, and a grace period that covers the drain.
func (b Beacon) CheckBeacon(objs []Object) []error {
	var errs []error
	known := map[string]bool{}
	for _, v := range b.Vars {
		known[v.Name] = true
	}
	for _, n := range b.OtherEnv {
		known[n] = true
	}
	seen := 0
	for _, w := range Workloads(objs) {
		role := w.Labels[ComponentLabel]
		if !slices.Contains(beaconRoles, role) {
			continue
		}
		seen++
		at := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s %s: "+format, append([]any{w.Kind, w.Name}, args...)...))
		}
		if len(w.Spec.Containers) != 1 {
			at("%d containers, want 1", len(w.Spec.Containers))
			continue
		}
		c := w.Spec.Containers[0]
		if len(c.Args) != 1 || c.Args[0] != role {
			at("args %q, want [%s]", c.Args, role)
		}
		if !slices.Contains(b.Roles, role) {
			at("role %q is not a command of `beacon --help` (%v)", role, b.Roles)
		}
		for _, e := range c.Env {
			if !known[e.Name] {
				at("env %s is not a variable Beacon reads (config.Vars) nor an allowed OTEL_* one", e.Name)
			}
		}
		env, envErrs := b.Env(objs, c)
		for _, err := range envErrs {
			at("%v", err)
		}
		cfg, err := config.Load(func(k string) string { return env[k] })
		if err != nil {
			at("Beacon would refuse this environment: %v", err)
			continue
		}
		if role != "dashboard" {
			if err := cfg.RequireDatabase(); err != nil {
				at("%v", err)
			}
		}
		if cfg.Env != config.Production {
			at("BEACON_ENV is %q, want production", cfg.Env)
		}
		if role == "migrate" {
			if len(c.Ports) > 0 || c.ReadinessProbe != nil || c.LivenessProbe != nil {
				at("migrate exits when done: no ports or probes")
			}
			continue
		}

		// Ports: what the container declares is what Beacon listens on.
		want := map[string]string{"ops": cfg.OpsAddr}
		switch role {
		case "api":
			want["http"] = cfg.HTTPAddr
		case "dashboard":
			want["http"] = cfg.DashboardAddr
		}
		declared := map[string]int32{}
		for _, p := range c.Ports {
			declared[p.Name] = p.ContainerPort
		}
		for name, addr := range want {
			_, port, _ := net.SplitHostPort(addr)
			if strconv.Itoa(int(declared[name])) != port {
				at("containerPort %q is %d, but Beacon listens on %s", name, declared[name], addr)
			}
		}
		if len(declared) != len(want) {
			at("ports %v, want exactly %v", declared, want)
		}

		// Probes: the ops port's /healthz (liveness) and /readyz (readiness).
		for _, p := range []struct {
			kind, path string
			probe      *corev1.Probe
		}{{"liveness", "/healthz", c.LivenessProbe}, {"readiness", "/readyz", c.ReadinessProbe}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				at("no HTTP %s probe", p.kind)
				continue
			}
			g := p.probe.HTTPGet
			port, ok := resolve(&corev1.PodSpec{Containers: []corev1.Container{c}}, g.Port)
			if g.Path != p.path || !ok || port != declared["ops"] {
				at("%s probe GET %s on port %s, want %s on the ops port (%d)", p.kind, g.Path, g.Port.String(), p.path, declared["ops"])
			}
		}

		// Grace: preStop sleep + BEACON_SHUTDOWN_TIMEOUT + the flush after it.
		need := cfg.ShutdownTimeout + b.FlushGrace
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			need += time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
		grace := 30 * time.Second // the Kubernetes default
		if w.Spec.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*w.Spec.TerminationGracePeriodSeconds) * time.Second
		}
		if grace < need {
			at("terminationGracePeriodSeconds %s < preStop + BEACON_SHUTDOWN_TIMEOUT + flush (%s): pods would be killed mid-drain", grace, need)
		}
		// Workers give running jobs 4/5 of the timeout (cmd/beacon/serve.go).
		if role == "worker" && cfg.ShutdownTimeout*4/5 < b.MaxCheck {
			at("BEACON_SHUTDOWN_TIMEOUT %s leaves running checks %s, less than the longest check (%s)", cfg.ShutdownTimeout, cfg.ShutdownTimeout*4/5, b.MaxCheck)
		}
	}
	if seen == 0 {
		errs = append(errs, fmt.Errorf("no Beacon workload rendered"))
	}
	return errs
}

// resolve finds the container port a probe or Service names.
func resolve(spec *corev1.PodSpec, p intstr.IntOrString) (int32, bool) {
	if p.Type == intstr.String {
		return containerPort(spec, p.StrVal, 0)
	}
	return containerPort(spec, "", p.IntVal)
}

// CheckSecurity checks every pod: non-root, read-only root filesystem, no privilege
// escalation, every capability dropped, no service account token, pinned images.
func CheckSecurity(objs []Object) []error {
	var errs []error
	for _, w := range Workloads(objs) {
		at := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s %s: "+format, append([]any{w.Kind, w.Name}, args...)...))
		}
		ps := w.Spec.SecurityContext
		if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
			at("pod must run as a non-root uid (runAsNonRoot, runAsUser)")
		}
		if ps == nil || ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			at("pod must use the RuntimeDefault seccomp profile")
		}
		if w.Spec.AutomountServiceAccountToken == nil || *w.Spec.AutomountServiceAccountToken {
			at("automountServiceAccountToken must be false")
		}
		for _, c := range append(append([]corev1.Container{}, w.Spec.InitContainers...), w.Spec.Containers...) {
			sc := c.SecurityContext
			switch {
			case sc == nil:
				at("container %s: no securityContext", c.Name)
				continue
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				at("container %s: root filesystem must be read-only", c.Name)
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				at("container %s: allowPrivilegeEscalation must be false", c.Name)
			case sc.Privileged != nil && *sc.Privileged:
				at("container %s: privileged", c.Name)
			case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
				at("container %s: must drop ALL capabilities and add none", c.Name)
			}
			ref := c.Image
			if i := strings.Index(ref, "@"); i >= 0 {
				ref = ref[:i]
			}
			slash := strings.LastIndex(ref, "/")
			colon := strings.LastIndex(ref, ":")
			if colon < slash || colon < 0 || ref[colon+1:] == "latest" {
				at("container %s: image %q is not pinned to a tag", c.Name, c.Image)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
				at("container %s: needs a CPU request and a memory limit", c.Name)
			}
		}
	}
	return errs
}

// CheckReferences checks that what points at pods finds them: Services and monitors
// (selectors and named ports), autoscalers (targets), NetworkPolicies (named ports, and
// the ops port open to monitoring only).
func CheckReferences(objs []Object) []error {
	var errs []error
	workloads := Workloads(objs)
	selected := func(sel map[string]string) []Workload {
		var out []Workload
		for _, w := range workloads {
			if matches(sel, w.Labels) {
				out = append(out, w)
			}
		}
		return out
	}
	services := All[*corev1.Service](objs)
	for _, s := range services {
		ws := selected(s.Spec.Selector)
		if len(ws) != 1 || ws[0].Kind != "Deployment" {
			errs = append(errs, fmt.Errorf("service %s selects %d Deployments, want 1", s.Name, len(ws)))
			continue
		}
		for _, p := range s.Spec.Ports {
			if _, ok := resolve(ws[0].Spec, p.TargetPort); !ok {
				errs = append(errs, fmt.Errorf("service %s: targetPort %s is not a port of %s", s.Name, p.TargetPort.String(), ws[0].Name))
			}
		}
	}
	for _, pm := range All[*monv1.PodMonitor](objs) {
		var ws []Workload
		for _, w := range workloads {
			if matches(pm.Spec.Selector.MatchLabels, w.Labels) && selectorExpressions(pm.Spec.Selector.MatchExpressions, w.Labels) {
				ws = append(ws, w)
			}
		}
		if len(ws) == 0 {
			errs = append(errs, fmt.Errorf("PodMonitor %s selects no pods", pm.Name))
		}
		for _, ep := range pm.Spec.PodMetricsEndpoints {
			if ep.Port == nil || ep.Path != "/metrics" {
				errs = append(errs, fmt.Errorf("PodMonitor %s: endpoint must be a named port and /metrics", pm.Name))
				continue
			}
			for _, w := range ws {
				if _, ok := containerPort(w.Spec, *ep.Port, 0); !ok || *ep.Port != "ops" {
					errs = append(errs, fmt.Errorf("PodMonitor %s: port %q is not the ops port of %s", pm.Name, *ep.Port, w.Name))
				}
			}
		}
	}
	for _, sm := range All[*monv1.ServiceMonitor](objs) {
		var found *corev1.Service
		for _, s := range services {
			if matches(sm.Spec.Selector.MatchLabels, s.Labels) {
				found = s
			}
		}
		if found == nil {
			errs = append(errs, fmt.Errorf("ServiceMonitor %s selects no Service", sm.Name))
			continue
		}
		for _, ep := range sm.Spec.Endpoints {
			if !slices.ContainsFunc(found.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
				errs = append(errs, fmt.Errorf("ServiceMonitor %s: port %q is not a port of Service %s", sm.Name, ep.Port, found.Name))
			}
		}
	}
	deployments := map[string]bool{}
	for _, d := range All[*appsv1.Deployment](objs) {
		deployments[d.Name] = true
	}
	scaled := map[string]string{}
	target := func(by, kind, name string) {
		if kind != "Deployment" || !deployments[name] {
			errs = append(errs, fmt.Errorf("%s scales %s %s, which is not rendered", by, kind, name))
		}
		if prev, dup := scaled[name]; dup {
			errs = append(errs, fmt.Errorf("%s and %s both scale %s", prev, by, name))
		}
		scaled[name] = by
	}
	for _, h := range All[*autoscalingv2.HorizontalPodAutoscaler](objs) {
		target("HorizontalPodAutoscaler "+h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
	}
	for _, so := range All[*kedav1.ScaledObject](objs) {
		target("ScaledObject "+so.Name, so.Spec.ScaleTargetRef.Kind, so.Spec.ScaleTargetRef.Name)
		for _, d := range All[*appsv1.Deployment](objs) {
			if d.Name == so.Spec.ScaleTargetRef.Name && d.Spec.Replicas != nil {
				errs = append(errs, fmt.Errorf("deployment %s sets replicas while ScaledObject %s scales it (every upgrade would reset it)", d.Name, so.Name))
			}
		}
	}
	for _, np := range All[*networkingv1.NetworkPolicy](objs) {
		ws := selected(np.Spec.PodSelector.MatchLabels)
		if len(ws) == 0 {
			errs = append(errs, fmt.Errorf("NetworkPolicy %s selects no pods", np.Name))
		}
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port == nil {
					continue
				}
				for _, w := range ws {
					if _, ok := resolve(w.Spec, *p.Port); !ok {
						errs = append(errs, fmt.Errorf("NetworkPolicy %s: port %s is not a port of %s", np.Name, p.Port.String(), w.Name))
					}
				}
				if p.Port.StrVal == "ops" && (len(rule.From) != 1 || rule.From[0].NamespaceSelector == nil) {
					errs = append(errs, fmt.Errorf("NetworkPolicy %s: the ops port must be open to the monitoring namespace only", np.Name))
				}
			}
		}
	}
	return errs
}

func selectorExpressions(exprs []metav1.LabelSelectorRequirement, labels map[string]string) bool {
	for _, e := range exprs {
		v, has := labels[e.Key]
		switch e.Operator {
		case "In":
			if !has || !slices.Contains(e.Values, v) {
				return false
			}
		case "NotIn":
			if has && slices.Contains(e.Values, v) {
				return false
			}
		case "Exists":
			if !has {
				return false
			}
		case "DoesNotExist":
			if has {
				return false
			}
		}
	}
	return true
}

// CheckKEDA runs KEDA's own offline validations on each ScaledObject, and checks that a
// Prometheus trigger's query names metrics Beacon exports.
func CheckKEDA(objs []Object, metrics []string) []error {
	var errs []error
	for _, so := range All[*kedav1.ScaledObject](objs) {
		at := func(err error) { errs = append(errs, fmt.Errorf("ScaledObject %s: %w", so.Name, err)) }
		if err := kedav1.CheckReplicaCountBoundsAreValid(so); err != nil {
			at(err)
		}
		if err := kedav1.CheckFallbackValid(so); err != nil {
			at(err)
		}
		if err := kedav1.ValidateTriggers(so.Spec.Triggers); err != nil {
			at(err)
		}
		if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount < 1 {
			at(fmt.Errorf("minReplicaCount must be at least 1: the scheduler runs in the workers"))
		}
		for _, t := range so.Spec.Triggers {
			switch t.Type {
			case "prometheus":
				q := t.Metadata["query"]
				if !slices.ContainsFunc(metrics, func(m string) bool { return strings.Contains(q, m+"{") }) {
					at(fmt.Errorf("trigger %s: query %q names none of Beacon's metrics %v", t.Name, q, metrics))
				}
				if t.Metadata["serverAddress"] == "" || t.Metadata["threshold"] == "" {
					at(fmt.Errorf("trigger %s: serverAddress and threshold are required", t.Name))
				}
			case "postgresql":
				if t.Metadata["query"] == "" || t.Metadata["targetQueryValue"] == "" || t.AuthenticationRef == nil {
					at(fmt.Errorf("trigger %s: query, targetQueryValue and authenticationRef are required", t.Name))
				}
			default:
				at(fmt.Errorf("trigger %s: unexpected type %q", t.Name, t.Type))
			}
		}
	}
	return errs
}
