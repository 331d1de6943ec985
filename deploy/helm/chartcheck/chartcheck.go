// Package chartcheck validates what deploy/helm/beacon renders, without a cluster:
// every object decodes strictly into its typed API struct (Kubernetes, Prometheus
// Operator, KEDA; unknown fields fail), and what the chart says about Beacon (roles,
// environment variables, ports, probe paths, shutdown times, metric names) matches what
// Beacon reads and serves. It is its own module so that the Kubernetes dependencies stay
// out of Beacon's.
package chartcheck

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"

	kedav1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// Object is one rendered document, decoded into its typed struct.
type Object struct {
	Kind, Name, Source string
	Value              any // e.g. *appsv1.Deployment
}

// newTyped maps apiVersion/kind to the struct the API server would decode it into.
var newTyped = map[string]func() any{
	"v1/Secret":                               func() any { return new(corev1.Secret) },
	"v1/ServiceAccount":                       func() any { return new(corev1.ServiceAccount) },
	"v1/ConfigMap":                            func() any { return new(corev1.ConfigMap) },
	"v1/Service":                              func() any { return new(corev1.Service) },
	"apps/v1/Deployment":                      func() any { return new(appsv1.Deployment) },
	"batch/v1/Job":                            func() any { return new(batchv1.Job) },
	"policy/v1/PodDisruptionBudget":           func() any { return new(policyv1.PodDisruptionBudget) },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return new(networkingv1.NetworkPolicy) },
	"networking.k8s.io/v1/Ingress":            func() any { return new(networkingv1.Ingress) },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"monitoring.coreos.com/v1/PodMonitor":     func() any { return new(monv1.PodMonitor) },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return new(monv1.ServiceMonitor) },
	"keda.sh/v1alpha1/ScaledObject":           func() any { return new(kedav1.ScaledObject) },
	"keda.sh/v1alpha1/TriggerAuthentication":  func() any { return new(kedav1.TriggerAuthentication) },
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// Decode splits `helm template` output and strictly decodes each document: an unknown
// or misplaced field, a wrong type or an unknown kind is an error.
func Decode(rendered []byte) ([]Object, error) {
	var objs []Object
	var errs []error
	for _, doc := range docSep.Split(string(rendered), -1) {
		source := ""
		if m := regexp.MustCompile(`(?m)^# Source: (.+)$`).FindStringSubmatch(doc); m != nil {
			source = m[1]
		}
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", source, err))
			continue
		}
		mk, ok := newTyped[head.APIVersion+"/"+head.Kind]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: %s %s: no typed struct for this apiVersion/kind", source, head.APIVersion, head.Kind))
			continue
		}
		v := mk()
		if err := yaml.UnmarshalStrict([]byte(doc), v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s %s: %w", source, head.Kind, head.Metadata.Name, err))
			continue
		}
		if head.Metadata.Name == "" {
			errs = append(errs, fmt.Errorf("%s: %s without metadata.name", source, head.Kind))
		}
		objs = append(objs, Object{Kind: head.Kind, Name: head.Metadata.Name, Source: source, Value: v})
	}
	return objs, errors.Join(errs...)
}

func stripComments(doc string) string {
	var b bytes.Buffer
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// All returns the objects of type T.
func All[T any](objs []Object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.Value.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// Workload is a pod template with the name of what owns it.
type Workload struct {
	Kind, Name string
	Labels     map[string]string // the pod template's
	Spec       *corev1.PodSpec
}

// Workloads returns the pod templates of Deployments and Jobs.
func Workloads(objs []Object) []Workload {
	var out []Workload
	for _, d := range All[*appsv1.Deployment](objs) {
		out = append(out, Workload{"Deployment", d.Name, d.Spec.Template.Labels, &d.Spec.Template.Spec})
	}
	for _, j := range All[*batchv1.Job](objs) {
		out = append(out, Workload{"Job", j.Name, j.Spec.Template.Labels, &j.Spec.Template.Spec})
	}
	return out
}

// matches reports whether a label selector (matchLabels only) selects labels.
func matches(sel map[string]string, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// containerPort resolves a port name or number among a pod's containers.
func containerPort(spec *corev1.PodSpec, name string, number int32) (int32, bool) {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if (name != "" && p.Name == name) || (name == "" && p.ContainerPort == number) {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}
