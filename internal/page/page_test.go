package page_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/apperr"
	"github.com/beaconhq/beacon/internal/page"
)

func TestCursorRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 2, 8, 0, 0, 123456789, time.UTC)
	c := page.Encode(at, int64(42))
	var (
		gotAt time.Time
		gotID int64
	)
	require.NoError(t, page.Decode(c, &gotAt, &gotID))
	require.True(t, at.Equal(gotAt))
	require.EqualValues(t, 42, gotID)
}

func TestDecodeRefusesForeignCursors(t *testing.T) {
	var id int64
	var at time.Time
	for _, c := range []string{
		"12", "not base64!", page.Encode("x"), page.Encode(int64(1), int64(2)),
		strings.Repeat("A", 500), page.Encode(int64(1))[:3],
	} {
		err := page.Decode(c, &at, &id)
		require.Error(t, err, c)
		e, ok := apperr.As(err)
		require.True(t, ok)
		require.Equal(t, apperr.Invalid, e.Code)
		require.Equal(t, "cursor", e.Field)
	}
}

func TestCut(t *testing.T) {
	key := func(i int) string { return page.Encode(i) }
	items, next := page.Cut([]int{1, 2, 3}, 2, key)
	require.Equal(t, []int{1, 2}, items)
	require.Equal(t, page.Encode(2), next)
	items, next = page.Cut([]int{1, 2}, 2, key)
	require.Equal(t, []int{1, 2}, items)
	require.Empty(t, next)
	items, next = page.Cut[int](nil, 2, key)
	require.NotNil(t, items)
	require.Empty(t, next)
}

func TestRequestValidate(t *testing.T) {
	require.NoError(t, page.Request{Limit: 1}.Validate(10))
	require.Error(t, page.Request{Limit: 0}.Validate(10))
	require.Error(t, page.Request{Limit: 11}.Validate(10))
}
