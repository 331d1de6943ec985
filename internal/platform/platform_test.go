package platform_test

// These tests hold the platform to its contract with any domain: a fake
// "widgets" module, written here against the same kit a real domain uses,
// plugs in its routes, tags, queues, jobs, job visibility, gauges and
// bootstrap. They link no real domain, so they pass with internal/monitors
// deleted (TestGenericPartsStandAlone checks that too).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/config"
	"github.com/beaconhq/beacon/internal/httpapi"
	"github.com/beaconhq/beacon/internal/platform"
	"github.com/beaconhq/beacon/internal/platform/platformtest"
)

type widgetArgs struct {
	OwnerID int64 `json:"owner_id"`
}

func (widgetArgs) Kind() string { return "widget" }

type widgetWorker struct {
	river.WorkerDefaults[widgetArgs]
}

func (widgetWorker) Work(context.Context, *river.Job[widgetArgs]) error { return nil }

type widgetOutput struct {
	Body struct {
		Caller int64 `json:"caller"`
	}
}

type widgets struct {
	bootstrapped atomic.Int64
	longest      time.Duration
}

func (*widgets) Name() string { return "widgets" }

func (w *widgets) Build(env platform.Env) (platform.Parts, error) {
	return platform.Parts{
		Queues:     map[string]river.QueueConfig{"widgets": {MaxWorkers: 1}},
		LongestJob: w.longest,
		AddWorkers: func(ws *river.Workers) { river.AddWorker(ws, widgetWorker{}) },
		Bootstrap:  func(_ context.Context, admin int64) error { w.bootstrapped.Store(admin); return nil },
		API: &httpapi.Routes{
			Tags: []*huma.Tag{{Name: "Widgets", Description: "Test widgets."}},
			Register: func(v1 huma.API, d httpapi.Deps) {
				huma.Register(v1, httpapi.Private(huma.Operation{
					OperationID: "get-widget", Method: http.MethodGet, Path: "/widgets", Tags: []string{"Widgets"},
				}), func(ctx context.Context, _ *struct{}) (*widgetOutput, error) {
					out := &widgetOutput{}
					out.Body.Caller = httpapi.Caller(ctx).UserID
					return out, nil
				})
			},
			JobAccess: map[string]httpapi.JobAccess{
				"widget": func(_ context.Context, p auth.Principal, row *rivertype.JobRow) (bool, error) {
					var a widgetArgs
					_ = json.Unmarshal(row.EncodedArgs, &a)
					return a.OwnerID == p.UserID, nil
				},
			},
		},
	}, nil
}

func testConfig(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	env["DATABASE_URL"] = "postgres://unused"
	cfg, err := config.Load(func(k string) string { return env[k] })
	require.NoError(t, err)
	return cfg
}

func TestModulePlugsIn(t *testing.T) {
	t.Parallel()
	mod := &widgets{}
	b := platformtest.New(t, platformtest.Options{Modules: []platform.Module{mod}, Work: true, Env: map[string]string{
		"BEACON_ADMIN_EMAIL": "admin@example.org", "BEACON_ADMIN_PASSWORD": "admin password 1234"}})
	ctx := context.Background()

	// Bootstrap: the first admin, then the module's hook with their id.
	require.NoError(t, b.Stack.Bootstrap(ctx))
	require.NotZero(t, mod.bootstrapped.Load())

	// Routes and tags: private by declaration, documented after the platform's.
	platformtest.RequireProblem(t, b.As("").Do(t, http.MethodGet, "/v1/widgets", nil), http.StatusUnauthorized)
	var me int64
	require.NoError(t, b.Pool.QueryRow(ctx, `SELECT id FROM users WHERE email = 'member@example.org'`).Scan(&me))
	r := b.Do(t, http.MethodGet, "/v1/widgets", nil)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.JSONEq(t, fmt.Sprintf(`{"caller":%d}`, me), string(r.Body))
	doc := string(b.Do(t, http.MethodGet, "/openapi.json", nil).Body)
	require.Contains(t, doc, `"name":"Widgets"`)
	require.Less(t, strings.Index(doc, `"name":"Account"`), strings.Index(doc, `"name":"Widgets"`))

	// Job visibility: the module's rule for its kind, admins only otherwise.
	other := b.As(b.SignIn(t, "other@example.org", auth.RoleMember))
	admin := b.As(b.SignIn(t, "boss@example.org", auth.RoleAdmin))
	mine, err := b.Stack.Jobs.Insert(ctx, widgetArgs{OwnerID: me}, &river.InsertOpts{Queue: "widgets"})
	require.NoError(t, err)
	path := fmt.Sprintf("/v1/jobs/%d", mine.Job.ID)
	require.Equal(t, http.StatusOK, b.Do(t, http.MethodGet, path, nil).Status)
	require.Equal(t, http.StatusNotFound, other.Do(t, http.MethodGet, path, nil).Status, "another member must not see it")
	require.Equal(t, http.StatusNotFound, admin.Do(t, http.MethodGet, path, nil).Status, "the module's rule decides, admins included")
	unclaimed, err := b.Stack.Jobs.Insert(ctx, unclaimedArgs{}, nil)
	require.NoError(t, err)
	path = fmt.Sprintf("/v1/jobs/%d", unclaimed.Job.ID)
	require.Equal(t, http.StatusNotFound, b.Do(t, http.MethodGet, path, nil).Status, "a kind no module claims is for admins")
	require.Equal(t, http.StatusOK, admin.Do(t, http.MethodGet, path, nil).Status)

	// The working client has the module's queue and worker: it runs the job.
	path = fmt.Sprintf("/v1/jobs/%d", mine.Job.ID)
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		last = string(b.Do(t, http.MethodGet, path, nil).Body)
		if strings.Contains(last, `"state":"completed"`) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the widget job never completed; last seen: %s", last)
}

// unclaimedArgs is a job kind no module declares access for.
type unclaimedArgs struct{}

func (unclaimedArgs) Kind() string { return "unclaimed" }

// A module's longest job bounds the rescue delay, whatever the module.
func TestRescueDelayOutlastsEveryModulesJobs(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, map[string]string{"BEACON_JOB_RESCUE_AFTER": "2m"})
	_, err := platform.Assemble(context.Background(), platform.Options{Config: cfg, Modules: []platform.Module{&widgets{longest: 3 * time.Minute}}})
	require.ErrorContains(t, err, "BEACON_JOB_RESCUE_AFTER")
	_, err = platform.Assemble(context.Background(), platform.Options{Config: cfg, Modules: []platform.Module{&widgets{longest: time.Minute}}})
	require.NoError(t, err)
}

// Two modules may not claim one queue: their workers would run each other's jobs.
func TestQueuesAreNotShared(t *testing.T) {
	t.Parallel()
	_, err := platform.Assemble(context.Background(), platform.Options{
		Config: testConfig(t, nil), Modules: []platform.Module{&widgets{}, &widgets{}}})
	require.ErrorContains(t, err, `queue "widgets"`)
}

// Describe builds the API without a database.
func TestDescribeNeedsNoDatabase(t *testing.T) {
	t.Parallel()
	api, err := platform.Describe("test", []platform.Module{&widgets{}})
	require.NoError(t, err)
	require.NotNil(t, api.OpenAPI().Paths["/v1/widgets"])
	require.NotNil(t, api.OpenAPI().Paths["/v1/oauth/token"])
}

// The account lists keep their bare-array bodies and page by an opaque
// cursor in an RFC 8288 Link header.
func TestAccountListsPageByLink(t *testing.T) {
	b := platformtest.New(t, platformtest.Options{})
	admin := b.As(b.SignIn(t, "admin@example.org", auth.RoleAdmin))
	for i := range 3 {
		b.SignIn(t, fmt.Sprintf("user%d@example.org", i), auth.RoleMember)
	}
	var emails []string
	path := "/v1/admin/users?limit=2"
	for pages := 0; path != ""; pages++ {
		require.Less(t, pages, 5, "the pages never end")
		r := admin.Do(t, http.MethodGet, path, nil)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		var users []auth.User
		require.NoError(t, json.Unmarshal(r.Body, &users), "the body is a bare array: %s", r.Body)
		require.LessOrEqual(t, len(users), 2)
		for _, u := range users {
			emails = append(emails, u.Email)
		}
		path = ""
		if link := r.Header.Get("Link"); link != "" {
			require.True(t, strings.HasPrefix(link, "</v1/admin/users?") && strings.HasSuffix(link, `>; rel="next"`), link)
			path = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
		}
	}
	require.Len(t, emails, 5) // the member, the admin and three users, each once
	require.ElementsMatch(t, emails, []string{"member@example.org", "admin@example.org",
		"user0@example.org", "user1@example.org", "user2@example.org"})
	r := admin.Do(t, http.MethodGet, "/v1/admin/users?cursor=not-a-cursor", nil)
	platformtest.RequireProblem(t, r, http.StatusUnprocessableEntity)
	r = b.Do(t, http.MethodGet, "/v1/clients", nil)
	require.Equal(t, http.StatusOK, r.Status)
	require.Equal(t, "[]", strings.TrimSpace(string(r.Body)))
	require.Empty(t, r.Header.Get("Link"))
}
