package monitorsapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/httpapi"
	"github.com/beaconhq/beacon/internal/monitors"
)

// BenchmarkStats measures the stats endpoint through the full handler chain
// on a monitor holding a month of results at a 10 s interval (259,200 rows),
// for a day and for the whole month.
func BenchmarkStats(b *testing.B) {
	bundle := setup(b, setupOpts{})
	m := mustCreate(b, bundle, map[string]any{"name": "busy", "url": "https://example.com/", "interval_seconds": 10})
	id := int64(m["id"].(float64))
	ctx := context.Background()
	end := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	start := end.Add(-30 * 24 * time.Hour)
	tag, err := bundle.Pool.Exec(ctx, `
		INSERT INTO check_results (monitor_id, checked_at, duration_ms, status_code, ok)
		SELECT $1, t, 20 + random() * 200, 200, random() > 0.01
		FROM generate_series($2::timestamptz, $3::timestamptz - interval '10 seconds', interval '10 seconds') AS t`,
		id, start, end)
	require.NoError(b, err)
	require.EqualValues(b, 259200, tag.RowsAffected())
	_, err = bundle.Pool.Exec(ctx, "VACUUM ANALYZE check_results")
	require.NoError(b, err)

	handler, _ := httpapi.NewServer(bundle.Deps)
	for _, tc := range []struct {
		name    string
		from    time.Time
		bucket  string
		buckets int
	}{
		{"day/5m", end.Add(-24 * time.Hour), "5m", 288},
		{"month/1h", start, "1h", 720},
		{"month/1d", start, "24h", 30},
	} {
		path := fmt.Sprintf("/v1/monitors/%d/stats?from=%s&to=%s&bucket=%s", id, tc.from.Format(time.RFC3339), end.Format(time.RFC3339), tc.bucket)
		var first monitors.Stats
		r := bundle.Do(b, http.MethodGet, path, nil)
		require.Equal(b, http.StatusOK, r.Status, "body: %s", r.Body)
		require.NoError(b, json.Unmarshal(r.Body, &first))
		require.Len(b, first.Buckets, tc.buckets)
		require.EqualValues(b, int64(tc.buckets)*int64(first.BucketSeconds)/10, first.Checks)
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				handler.ServeHTTP(rec, bundle.Request(b, http.MethodGet, path, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
