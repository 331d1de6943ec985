package monitorsapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A creating POST retried with the same Idempotency-Key answers the first
// response and creates nothing; the same key for another request is a 422.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	post := func(t *testing.T, path, key string, body any) response {
		t.Helper()
		req := b.Request(t, http.MethodPost, path, body)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := b.Server.Client().Do(req)
		require.NoError(t, err)
		return readResponse(t, resp)
	}
	monitor := map[string]any{"name": "once", "url": "https://example.com/", "interval_seconds": 60}

	first := post(t, "/v1/monitors", "k-1", monitor)
	require.Equal(t, http.StatusCreated, first.Status, "%s", first.Body)
	again := post(t, "/v1/monitors", "k-1", monitor)
	require.Equal(t, http.StatusCreated, again.Status, "%s", again.Body)
	require.Equal(t, first.JSON(t)["id"], again.JSON(t)["id"])
	require.Equal(t, first.Header.Get("Location"), again.Header.Get("Location"))
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	var n int
	require.NoError(t, b.Pool.QueryRow(context.Background(), `SELECT count(*) FROM monitors WHERE name = 'once'`).Scan(&n))
	require.Equal(t, 1, n)

	other := map[string]any{"name": "other", "url": "https://example.com/", "interval_seconds": 60}
	requireProblem(t, post(t, "/v1/monitors", "k-1", other), http.StatusUnprocessableEntity)
	requireProblem(t, post(t, "/v1/monitors", strings.Repeat("k", 256), monitor), http.StatusUnprocessableEntity)
	// A failed request stores nothing: the same key may be used again.
	requireProblem(t, post(t, "/v1/monitors", "k-2", map[string]any{"name": "x", "url": "ftp://x/", "interval_seconds": 60}), http.StatusUnprocessableEntity)
	require.Equal(t, http.StatusCreated, post(t, "/v1/monitors", "k-2", other).Status)

	// Run-check: a retry follows the same job.
	path := first.Header.Get("Location") + "/checks"
	c1, c2 := post(t, path, "c-1", nil), post(t, path, "c-1", nil)
	require.Equal(t, http.StatusAccepted, c1.Status, "%s", c1.Body)
	require.Equal(t, c1.JSON(t)["job_id"], c2.JSON(t)["job_id"])

	// Clients: a retry names the same client, without its secret (stored nowhere).
	k1, k2 := post(t, "/v1/clients", "cl-1", map[string]any{"name": "ci"}), post(t, "/v1/clients", "cl-1", map[string]any{"name": "ci"})
	require.Equal(t, http.StatusCreated, k1.Status, "%s", k1.Body)
	require.NotEmpty(t, k1.JSON(t)["client_secret"], "%s", k1.Body)
	require.Equal(t, k1.JSON(t)["client_id"], k2.JSON(t)["client_id"])
	require.Empty(t, k2.JSON(t)["client_secret"])
}
