package harness_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/harness"
)

func TestTail(t *testing.T) {
	t.Parallel()
	tail := &harness.Tail{Max: 64}
	for i := range 20 {
		fmt.Fprintf(tail, "line %02d\n", i)
	}
	require.Equal(t, "line 18\nline 19", tail.Last(2))
	require.Equal(t, 1, tail.Count("line 19"))
	require.Zero(t, tail.Count("line 00"), "the oldest bytes were dropped")
}

func TestModuleRoot(t *testing.T) {
	t.Parallel()
	root, err := harness.ModuleRoot()
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "cmd", "beacon"))
	require.NoError(t, err)
}
