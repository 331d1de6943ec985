// Package page is the one way Beacon paginates a list: keyset pagination
// with opaque cursors. A list is ordered by a unique key (an id, or a time
// and an id); a page holds up to limit items, and its cursor is the key of
// its last item, which the next query starts after.
package page

import (
	"encoding/base64"
	"encoding/json"

	"github.com/beaconhq/beacon/internal/apperr"
)

// Limits of a page's size, for every list.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// Request asks for one page: the first (Cursor empty), or the one after a
// previous page's NextCursor.
type Request struct {
	Cursor string
	Limit  int
}

// Validate checks the limit; cursors are checked when decoded.
func (r Request) Validate(maxLimit int) error {
	if r.Limit < 1 || r.Limit > maxLimit {
		return apperr.InvalidField("limit", "must be between 1 and %d", maxLimit)
	}
	return nil
}

// maxCursor bounds a cursor a client sends back.
const maxCursor = 200

// Encode returns the opaque cursor of an item with these key values.
func Encode(keys ...any) string {
	raw, err := json.Marshal(keys)
	if err != nil {
		panic("page: cursor keys must encode to JSON: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

// Decode reads a cursor made by Encode into pointers to its key values. Any
// cursor Encode did not make, with these key types, is an invalid field
// "cursor".
func Decode(cursor string, keys ...any) error {
	bad := apperr.InvalidField("cursor", "is not a cursor returned by this API")
	if len(cursor) > maxCursor {
		return bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return bad
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil || len(parts) != len(keys) {
		return bad
	}
	for i, p := range parts {
		if err := json.Unmarshal(p, keys[i]); err != nil {
			return bad
		}
	}
	return nil
}

// Cut makes a page of items fetched with a limit of limit+1: at most limit
// items, and the cursor of the last one when more follow. key gives an
// item's cursor.
func Cut[T any](items []T, limit int, key func(T) string) ([]T, string) {
	if items == nil {
		items = []T{}
	}
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, key(items[limit-1])
}
