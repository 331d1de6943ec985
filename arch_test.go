package beacon_test

// The layers of docs/architecture.md, checked: what may import what, and that
// the generic parts stand without the example domain.

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const modulePath = "github.com/beaconhq/beacon/"

// domains are the example domains: plug-ins that the generic packages
// never import. A new domain is added here and in cmd/beacon/domains.go.
// internal/workflow/workflowapi is the workflow engine's module: like a
// domain's HTTP package it imports the platform, and nothing generic
// imports it.
var domains = []string{"internal/monitors", "internal/workflow/workflowapi"}

// layers of the generic packages, lowest first: a package imports only
// packages of its layer or lower ones (a subpackage is in its parent's).
var layers = [][]string{
	{"internal/apperr", "internal/problem", "internal/page", "internal/netguard", "internal/notify", "internal/webasset",
		"internal/httpx", "internal/harness", "internal/telemetry", "internal/config"},
	{"internal/database", "internal/pgtest"},
	{"internal/jobs", "internal/idempotency", "internal/auth"},
	{"internal/realtime", "internal/httpapi", "internal/dashboard", "internal/workflow"},
	{"internal/platform"},
}

type goPackage struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func listPackages(t *testing.T, dir string, patterns ...string) []goPackage {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json"}, patterns...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", stderr.String())
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p goPackage
		require.NoError(t, dec.Decode(&p))
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func rel(path string) string { return strings.TrimPrefix(path, modulePath) }

func under(pkg, root string) bool { return pkg == root || strings.HasPrefix(pkg, root+"/") }

func isDomain(pkg string) bool {
	return slices.ContainsFunc(domains, func(d string) bool { return under(pkg, d) })
}

func layerOf(pkg string) int {
	for i, l := range layers {
		if slices.ContainsFunc(l, func(root string) bool { return under(pkg, root) }) {
			return i
		}
	}
	return -1
}

// importProblems lists the imports that break the layering.
func importProblems(pkgs []goPackage) []string {
	var problems []string
	for _, p := range pkgs {
		from := rel(p.ImportPath)
		if !strings.HasPrefix(from, "internal/") || isDomain(from) {
			continue // commands, scripts and domains may import the generic parts
		}
		layer := layerOf(from)
		if layer < 0 {
			problems = append(problems, from+": not in any layer of arch_test.go (and docs/architecture.md)")
			continue
		}
		check := func(imports []string, what string) {
			for _, imp := range imports {
				to := rel(imp)
				switch {
				case !strings.HasPrefix(imp, modulePath):
				case isDomain(to):
					problems = append(problems, from+": "+what+"imports the domain package "+to)
				case under(to, from):
				case layerOf(to) > layer:
					problems = append(problems, from+": "+what+"imports "+to+", a higher layer")
				}
			}
		}
		check(p.Imports, "")
		check(p.TestImports, "test ")
		check(p.XTestImports, "test ")
	}
	return problems
}

func TestLayers(t *testing.T) {
	t.Parallel()
	problems := importProblems(listPackages(t, ".", "./..."))
	require.Empty(t, problems)

	// The check catches what it is meant to.
	bad := []goPackage{
		{ImportPath: modulePath + "internal/realtime", Imports: []string{modulePath + "internal/monitors"}},
		{ImportPath: modulePath + "internal/database", Imports: []string{modulePath + "internal/httpapi"}},
		{ImportPath: modulePath + "internal/httpapi", XTestImports: []string{modulePath + "internal/monitors/monitorsapi"}},
		{ImportPath: modulePath + "internal/newthing"},
	}
	require.Len(t, importProblems(bad), 4, "%q", importProblems(bad))
}

// Every domain is registered with one line in cmd/beacon/domains.go.
func TestDomainsAreRegistered(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("cmd/beacon/domains.go")
	require.NoError(t, err)
	for _, d := range domains {
		require.Contains(t, string(src), modulePath+d, "domain %s is not registered", d)
	}
}

// Deleting the example domain (its package, its registration line and its
// load test) leaves a Beacon that builds, whose generic packages and their
// tests compile, whose generic tests pass, and whose API has no trace of it.
func TestGenericPartsStandAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("copies and builds the repository")
	}
	t.Parallel()
	dir := t.TempDir()
	skip := regexp.MustCompile(`^(\.git|\.data|bin|test-results|node_modules)$|^internal/monitors$|^scripts/loadtest$`)
	require.NoError(t, filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if skip.MatchString(path) || d.Name() == "node_modules" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dir, path)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, in)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		return err
	}))
	// The registration line and its import go; nothing else is edited.
	reg := filepath.Join(dir, "cmd/beacon/domains.go")
	src, err := os.ReadFile(reg)
	require.NoError(t, err)
	var kept []string
	for _, line := range strings.Split(string(src), "\n") {
		if !strings.Contains(line, "monitorsapi") {
			kept = append(kept, line)
		}
	}
	require.NoError(t, os.WriteFile(reg, []byte(strings.Join(kept, "\n")), 0o644))

	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go %s:\n%s", strings.Join(args, " "), out)
		return string(out)
	}
	run("build", "-o", filepath.Join(dir, "beacon.bin"), "./cmd/beacon")
	run("build", "./...")
	run("vet", "./internal/...")
	run("test", "-count=1", "./internal/platform/", "./internal/httpapi/", "./internal/database/", "./internal/page/")
	cmd := exec.Command(filepath.Join(dir, "beacon.bin"), "openapi")
	doc, err := cmd.Output()
	require.NoError(t, err)
	require.Contains(t, string(doc), "/v1/oauth/token")
	require.NotContains(t, string(doc), "/v1/monitors")
}
