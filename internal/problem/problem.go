// Package problem writes RFC 9457 problem documents for handlers outside
// huma (unknown routes, panics, the websocket, the dashboard), in the same
// shape huma writes them, so every client reads every refusal one way.
package problem

import (
	"encoding/json"
	"net/http"
)

// Document is an RFC 9457 problem.
type Document struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Write answers status with a problem whose detail is safe to show.
func Write(w http.ResponseWriter, status int, detail string) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Document{Title: http.StatusText(status), Status: status, Detail: detail})
}
