package beacon_test

// The README's "Quick start" executed as written: its shell blocks are read
// from README.md itself, so the README and this test cannot drift. The block
// with `make run` starts Beacon (on a throwaway database and free ports,
// through the environment variables make run honours); every other block
// runs in bash, where each curl must answer 2xx with JSON.
//
// Also here: make run's PostgreSQL detection (scripts/run-local.sh), with a
// fake PATH.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/harness"
	"github.com/beaconhq/beacon/internal/pgtest"
)

// markdownSection returns the text under the heading "## title", up to the
// next heading of the same or a higher level (a `# ` line in a fenced
// block is a shell comment, not a heading).
func markdownSection(doc, title string) (string, error) {
	var out []string
	in, fenced, found := false, false, false
	for line := range strings.Lines(doc) {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		if !fenced && (strings.HasPrefix(line, "## ") || strings.HasPrefix(line, "# ")) {
			if in {
				break
			}
			in = strings.TrimSpace(strings.TrimPrefix(line, "## ")) == title
			found = found || in
			continue
		}
		if in {
			out = append(out, line)
		}
	}
	if !found {
		return "", fmt.Errorf("no section %q", title)
	}
	return strings.Join(out, ""), nil
}

// shellBlocks returns the bodies of the ```sh (or ```bash, ```shell) fenced
// blocks of a markdown text, in order.
func shellBlocks(md string) []string {
	var blocks []string
	var cur []string
	in := false
	for line := range strings.Lines(md) {
		trimmed := strings.TrimSpace(line)
		switch {
		case !in && slices.Contains([]string{"```sh", "```bash", "```shell"}, trimmed):
			in, cur = true, nil
		case in && trimmed == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, ""))
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

func TestMarkdownBlocks(t *testing.T) {
	t.Parallel()

	doc := "# T\n\n## Quick start\n\ntext\n\n```sh\n# a comment\nmake run\n```\n\n```go\nx := 1\n```\n\n" +
		"```bash\ncurl a \\\n  -d b\n```\n\n## Next\n\n```sh\nnot this\n```\n"
	section, err := markdownSection(doc, "Quick start")
	require.NoError(t, err)
	assert.Equal(t, []string{"# a comment\nmake run\n", "curl a \\\n  -d b\n"}, shellBlocks(section))
	_, err = markdownSection(doc, "Missing")
	require.Error(t, err)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// quickstartEnv is the process environment without Beacon's and the
// telemetry's variables (the README's commands must work without them),
// with extra appended.
func quickstartEnv(extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return strings.HasPrefix(k, "BEACON_") || strings.HasPrefix(k, "OTEL_") ||
			slices.Contains([]string{"DATABASE_URL", "API", "TOKEN", "MAKEFLAGS", "MAKELEVEL"}, k)
	})
	return append(env, extra...)
}

// curlRecord is what the curl wrapper below writes for each request.
var curlRecord = regexp.MustCompile(`(?m)^QUICKSTART-CURL (\d{3}) (\S*) (\S+)$`)

func TestQuickStart(t *testing.T) {
	t.Parallel()

	for _, tool := range []string{"make", "bash", "curl", "jq", "go"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "the quick start needs %s (.ci/run installs it)", tool)
	}
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	section, err := markdownSection(string(readme), "Quick start")
	require.NoError(t, err)
	blocks := shellBlocks(section)
	require.GreaterOrEqual(t, len(blocks), 2, "Quick start: a block that starts Beacon and one with requests")
	start := blocks[0]
	require.Equal(t, "make run", strings.TrimSpace(start), "the first block starts Beacon")

	// Beacon as the README starts it, on a throwaway database and free ports.
	api := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	server := exec.Command("bash", "-c", start)
	server.Env = quickstartEnv(
		"DATABASE_URL="+pgtest.NewEmptyURL(t),
		"BEACON_HTTP_ADDR="+api,
		fmt.Sprintf("BEACON_DASHBOARD_ADDR=127.0.0.1:%d", freePort(t)),
		fmt.Sprintf("BEACON_OPS_ADDR=127.0.0.1:%d", freePort(t)),
	)
	log := &harness.Tail{Max: 64 << 10}
	server.Stdout, server.Stderr = log, log
	// Its own process group, so that make, the script and beacon all get
	// the SIGTERM (Ctrl-C in a terminal reaches them all the same way).
	server.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, server.Start())
	exited := make(chan error, 1)
	go func() { exited <- server.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-server.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = syscall.Kill(-server.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})

	// Ready: make run builds Beacon first, which takes a while cold.
	began := time.Now()
	deadline := time.Now().Add(5 * time.Minute)
	client := &http.Client{Timeout: 5 * time.Second}
	var last string
	for {
		resp, err := client.Get("http://" + api + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("make run exited (%v) before %s/readyz answered 200; its output:\n%s", err, api, log.Last(60))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/readyz did not answer 200 within 5 minutes; last: %s; make run's output:\n%s", api, last, log.Last(60))
		}
	}
	t.Logf("make run: ready after %s", time.Since(began).Round(100*time.Millisecond))

	// The requests, in one bash so that variables carry over. Each curl
	// also writes its status, content type and URL to stderr.
	const prelude = `set -euo pipefail
curl() { command curl -w '%{stderr}QUICKSTART-CURL %{http_code} %{content_type} %{url_effective}\n' "$@"; }
`
	for i, block := range blocks[1:] {
		began := time.Now()
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(t.Context(), "bash", "-c", prelude+block)
		cmd.Env = quickstartEnv("API=" + api)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.WaitDelay = 5 * time.Second
		err := cmd.Run()
		require.NoError(t, err, "Quick start block %d failed:\n%s\nstderr:\n%s\nstdout:\n%s\nserver:\n%s",
			i+2, block, stderr.String(), stdout.String(), log.Last(40))

		// Every curl of the block ran and answered 2xx with JSON.
		// A curl command starts a line or a $(...); comments do not count.
		wantCurls := len(regexp.MustCompile(`(?m)(^\s*|\$\(\s*)curl\s`).FindAllString(block, -1))
		records := curlRecord.FindAllStringSubmatch(stderr.String(), -1)
		require.Len(t, records, wantCurls, "block %d: %d curl commands, %d ran; stderr:\n%s", i+2, wantCurls, len(records), stderr.String())
		for _, r := range records {
			status, contentType, url := r[1], r[2], r[3]
			assert.True(t, status[0] == '2', "%s answered %s; stdout:\n%s", url, status, stdout.String())
			assert.True(t, strings.HasPrefix(contentType, "application/json"), "%s answered %q, not JSON", url, contentType)
		}

		// What reached the terminal is JSON documents, one per curl whose
		// output is not captured by $(...).
		dec := json.NewDecoder(&stdout)
		docs := 0
		for {
			var v any
			err := dec.Decode(&v)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, "block %d printed something that is not JSON", i+2)
			docs++
		}
		captured := len(regexp.MustCompile(`\$\(\s*curl\s`).FindAllString(block, -1))
		assert.Equal(t, wantCurls-captured, docs, "block %d: JSON documents printed", i+2)
		t.Logf("Quick start block %d: %d requests in %s", i+2, len(records), time.Since(began).Round(10*time.Millisecond))
	}
}

// runLocal runs a copy of scripts/run-local.sh in a fake repository whose
// scripts/pg.sh only records that it was called, with PATH = bin alone.
// env is added last (a later value wins). It returns the output, pg.sh's
// calls and how the script ended.
func runLocal(t *testing.T, bin string, env ...string) (out, pgCalls string, err error) {
	t.Helper()
	return runLocalTyping(t, bin, "", env...)
}

// runLocalTyping is runLocal on a terminal (util-linux's script) where
// answer is typed, when answer is not "".
func runLocalTyping(t *testing.T, bin, answer string, env ...string) (out, pgCalls string, err error) {
	t.Helper()
	repo := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(repo, "scripts"), 0o755))
	script, err := os.ReadFile("scripts/run-local.sh")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(repo, "scripts", "run-local.sh"), script, 0o755))
	calls := filepath.Join(repo, "pg.calls")
	fakePG := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$*\" >>%q\nexit 3\n", calls)
	require.NoError(t, os.WriteFile(filepath.Join(repo, "scripts", "pg.sh"), []byte(fakePG), 0o755))

	bash, err := exec.LookPath("bash")
	require.NoError(t, err)
	cmd := exec.CommandContext(t.Context(), bash, filepath.Join(repo, "scripts", "run-local.sh"))
	if answer != "" {
		script, err := exec.LookPath("script")
		require.NoError(t, err, "util-linux's script runs make run on a terminal")
		cmd = exec.CommandContext(t.Context(), script, "-qec", bash+" "+filepath.Join(repo, "scripts", "run-local.sh"), "/dev/null")
		cmd.Stdin = strings.NewReader(answer)
	}
	base := slices.DeleteFunc(quickstartEnv(), func(kv string) bool {
		return strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "PG_BIN=") || strings.HasPrefix(kv, "PG_LIBDIR=")
	})
	cmd.Env = append(append(base, "PATH="+bin, "PG_LIBDIR="+filepath.Join(repo, "no-postgresql")), env...)
	b, runErr := cmd.CombinedOutput()
	c, err := os.ReadFile(calls)
	if !errors.Is(err, os.ErrNotExist) {
		require.NoError(t, err)
	}
	return string(b), string(c), runErr
}

// fakeTools returns a folder for PATH with what run-local.sh needs before
// it starts PostgreSQL (dirname), a fake `id` for uid, and, unless aptLog
// is "", a fake apt-get that appends its arguments to aptLog and, for
// install, creates an initdb under installTo (when not "").
func fakeTools(t *testing.T, uid int, aptLog, installTo string) string {
	t.Helper()
	bin := t.TempDir()
	for _, tool := range []string{"dirname"} {
		p, err := exec.LookPath(tool)
		require.NoError(t, err)
		require.NoError(t, os.Symlink(p, filepath.Join(bin, tool)))
	}
	write := func(name, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body), 0o755))
	}
	write("id", fmt.Sprintf("[ \"$1\" = -u ] && echo %d\n", uid))
	if aptLog != "" {
		install := ""
		if installTo != "" {
			install = fmt.Sprintf("[ \"$1\" = install ] && /bin/mkdir -p %q && printf '#!/bin/sh\\n' >%q && /bin/chmod +x %q\n",
				filepath.Join(installTo, "17", "bin"), filepath.Join(installTo, "17", "bin", "initdb"), filepath.Join(installTo, "17", "bin", "initdb"))
		}
		write("apt-get", fmt.Sprintf("printf '%%s\\n' \"$*\" >>%q\n%sexit 0\n", aptLog, install))
	}
	return bin
}

// TestRunLocalFindsOrInstallsPostgreSQL: with DATABASE_URL unset, make run
// needs PostgreSQL's server binaries. Found, it starts the local cluster;
// missing, it says the exact command, or installs them on Debian as root
// when BEACON_INSTALL_PG=1.
func TestRunLocalFindsOrInstallsPostgreSQL(t *testing.T) {
	t.Parallel()

	t.Run("found", func(t *testing.T) {
		t.Parallel()
		lib := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(lib, "16", "bin"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(lib, "16", "bin", "initdb"), []byte("#!/bin/sh\n"), 0o755))
		out, pg, err := runLocal(t, fakeTools(t, 0, "", ""), "PG_LIBDIR="+lib)
		require.Error(t, err) // the fake pg.sh fails on purpose
		assert.Equal(t, "start .data 55432\n", pg, "output:\n%s", out)
		assert.NotContains(t, out, "not found")
	})
	t.Run("PG_BIN", func(t *testing.T) {
		t.Parallel()
		out, pg, _ := runLocal(t, fakeTools(t, 0, "", ""), "PG_BIN=/opt/pg/bin")
		assert.Equal(t, "start .data 55432\n", pg, "output:\n%s", out)
	})
	t.Run("no apt-get", func(t *testing.T) {
		t.Parallel()
		out, pg, err := runLocal(t, fakeTools(t, 0, "", ""))
		require.Error(t, err)
		assert.Empty(t, pg)
		assert.Equal(t, "run: PostgreSQL's server binaries (initdb, postgres) not found: install PostgreSQL's server package, "+
			"set PG_BIN to its bin folder, or set DATABASE_URL to a server of yours\n", out)
	})
	t.Run("Debian, not root", func(t *testing.T) {
		t.Parallel()
		apt := filepath.Join(t.TempDir(), "apt.log")
		out, pg, err := runLocal(t, fakeTools(t, 1000, apt, ""))
		require.Error(t, err)
		assert.Empty(t, pg)
		assert.Contains(t, out, "install them with: sudo apt-get update && sudo apt-get install -y postgresql")
		assert.NoFileExists(t, apt)
	})
	t.Run("Debian, root, not asked to install", func(t *testing.T) {
		t.Parallel()
		apt := filepath.Join(t.TempDir(), "apt.log")
		for _, env := range [][]string{nil, {"BEACON_INSTALL_PG=0"}} {
			out, pg, err := runLocal(t, fakeTools(t, 0, apt, ""), env...)
			require.Error(t, err)
			assert.Empty(t, pg)
			assert.Contains(t, out, "install them with: apt-get update && apt-get install -y postgresql (BEACON_INSTALL_PG=1 make run does it;")
			assert.Equal(t, 1, strings.Count(out, "\n"), "one line:\n%s", out)
			assert.NoFileExists(t, apt)
		}
	})
	t.Run("Debian, root, BEACON_INSTALL_PG=1", func(t *testing.T) {
		t.Parallel()
		apt := filepath.Join(t.TempDir(), "apt.log")
		lib := filepath.Join(t.TempDir(), "postgresql")
		out, pg, _ := runLocal(t, fakeTools(t, 0, apt, lib), "BEACON_INSTALL_PG=1", "PG_LIBDIR="+lib)
		calls, err := os.ReadFile(apt)
		require.NoError(t, err, "apt-get was not run; output:\n%s", out)
		assert.Equal(t, "update -qq\ninstall -y -qq postgresql\n", string(calls))
		assert.Equal(t, "start .data 55432\n", pg, "after the install, make run goes on; output:\n%s", out)
	})
	t.Run("Debian, root, asked on a terminal", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			answer  string
			install bool
		}{{"y\n", true}, {"n\n", false}, {"\n", false}} {
			apt := filepath.Join(t.TempDir(), "apt.log")
			lib := filepath.Join(t.TempDir(), "postgresql")
			out, pg, _ := runLocalTyping(t, fakeTools(t, 0, apt, lib), tt.answer, "PG_LIBDIR="+lib)
			assert.Contains(t, out, "Install them now (apt-get update && apt-get install -y postgresql)? [y/N]")
			if tt.install {
				assert.FileExists(t, apt, "answered %q; output:\n%s", tt.answer, out)
				assert.Equal(t, "start .data 55432\n", pg, "output:\n%s", out)
			} else {
				assert.NoFileExists(t, apt, "answered %q; output:\n%s", tt.answer, out)
				assert.Empty(t, pg)
			}
		}
	})
	t.Run("Debian, root, install finds nothing", func(t *testing.T) {
		t.Parallel()
		apt := filepath.Join(t.TempDir(), "apt.log")
		out, pg, err := runLocal(t, fakeTools(t, 0, apt, ""), "BEACON_INSTALL_PG=1")
		require.Error(t, err)
		assert.Empty(t, pg)
		assert.Contains(t, out, "not found, even after installing postgresql")
	})
}
