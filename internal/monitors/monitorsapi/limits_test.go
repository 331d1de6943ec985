package monitorsapi_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/monitors"
	"github.com/beaconhq/beacon/internal/monitors/monitorsapi"
	"github.com/beaconhq/beacon/internal/platform"
)

// The served schema is made from the domain's constants: the document, the
// validation huma does with it and the domain's own Validate agree.
func TestOpenAPILimitsComeFromTheDomain(t *testing.T) {
	t.Parallel()
	api, err := platform.Describe("test", []platform.Module{monitorsapi.Module()})
	require.NoError(t, err)
	raw, err := json.Marshal(api.OpenAPI())
	require.NoError(t, err)
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					MinLength *int     `json:"minLength"`
					MaxLength *int     `json:"maxLength"`
					Minimum   *float64 `json:"minimum"`
					Maximum   *float64 `json:"maximum"`
					MaxItems  *int     `json:"maxItems"`
					Pattern   string   `json:"pattern"`
					Enum      []string `json:"enum"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	for _, name := range []string{"MonitorBody", "MonitorPatch"} {
		p := doc.Components.Schemas[name].Properties
		require.NotEmpty(t, p, name)
		require.Equal(t, monitors.MaxNameLen, *p["name"].MaxLength, name)
		require.Equal(t, monitors.MaxURLLen, *p["url"].MaxLength, name)
		require.Equal(t, monitors.MinInterval.Seconds(), *p["interval_seconds"].Minimum, name)
		require.Equal(t, monitors.MaxInterval.Seconds(), *p["interval_seconds"].Maximum, name)
		require.EqualValues(t, monitors.MinTimeout.Milliseconds(), *p["timeout_ms"].Minimum, name)
		require.EqualValues(t, monitors.MaxTimeout.Milliseconds(), *p["timeout_ms"].Maximum, name)
		require.Equal(t, monitors.MaxExpectedStatus, *p["expected_status"].MaxItems, name)
		require.Equal(t, monitors.Methods, p["method"].Enum, name)
		require.Contains(t, p["public_slug"].Pattern, monitors.SlugPattern[1:len(monitors.SlugPattern)-1], name)
	}
}
