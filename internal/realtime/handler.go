package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/beaconhq/beacon/internal/auth"
	"github.com/beaconhq/beacon/internal/httpx"
	"github.com/beaconhq/beacon/internal/problem"
)

// readLimit caps a client message. Clients have nothing to say yet; the
// messages are read only so that pongs and close frames are processed.
const readLimit = 4 << 10

// hello is the first message on every websocket.
type hello struct {
	Type   string `json:"type"`
	UserID int64  `json:"user_id"`
}

// Handler serves GET /v1/events: a websocket carrying the caller's events.
//
// The caller is authenticated before the upgrade, by authenticate, from
// "Authorization: Bearer <token>" or, because browsers cannot set headers
// on a websocket, from the access_token query parameter (the header wins
// when both are present). Beacon never records the query string: the
// request log has the path only and server spans carry no query (and the
// span exporter redacts url.query values anyway). Proxies in front of
// Beacon may log it; access tokens are short-lived for that reason too.
//
// Errors before the upgrade are RFC 9457 problems: 401 without a valid
// token, 426 without a websocket handshake, 429 beyond
// Options.MaxConnsPerUser open websockets of the user on this replica, and
// 503 once the hub has stopped. Cross-origin handshakes are refused (403):
// the dashboard proxies /v1/events, so its requests are same-origin.
//
// Messages are JSON text: first {"type":"hello","user_id":N}, then each
// event of that user as it was published (see Channel), and {"type":"resync"}
// after the replica lost events while reconnecting to the database. A
// client too slow to keep up with Options.Buffer messages is closed with
// status 1008 "too slow", and every connection with 1008 "token expired"
// when the token it was opened with expires; at shutdown the status is 1001. Client messages
// are read and discarded (at most 4 KiB each).
func Handler(hub *Hub, authenticate func(*http.Request) (auth.Principal, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := authenticate(withQueryToken(r))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="beacon", error="invalid_token"`)
			problem.Write(w, http.StatusUnauthorized, "a valid access token is required")
			return
		}
		if !httpx.IsUpgrade(r) {
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", "websocket")
			problem.Write(w, http.StatusUpgradeRequired, "this endpoint speaks websocket only")
			return
		}
		sub, err := hub.subscribe(p.UserID)
		switch {
		case errors.Is(err, errTooMany):
			problem.Write(w, http.StatusTooManyRequests,
				fmt.Sprintf("at most %d live connections per user; close another one first", hub.opts.MaxConnsPerUser))
			return
		case err != nil:
			w.Header().Set("Retry-After", "1")
			problem.Write(w, http.StatusServiceUnavailable, "this server is shutting down; reconnect")
			return
		}
		defer hub.unsubscribe(sub)
		// No OriginPatterns: same-origin only, the websocket defence against
		// cross-site use. Accept writes its own response when it fails.
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			hub.log.DebugContext(r.Context(), "websocket handshake failed", "error", err.Error())
			return
		}
		hub.serve(r.Context(), conn, sub, p.Expires)
	})
}

// serve writes the subscriber's messages to conn until either side ends, or
// until expires (the access token's expiry): a revoked client or a deleted
// user must not go on hearing events on a connection opened long ago.
func (h *Hub) serve(ctx context.Context, conn *websocket.Conn, sub *subscriber, expires time.Time) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		_ = conn.CloseNow() // no-op after a close handshake
		wg.Wait()
	}()

	// The reader answers pings, delivers pongs to Ping and processes the
	// client's close frame; it ends when the connection does.
	conn.SetReadLimit(readLimit)
	readDone := make(chan struct{})
	wg.Go(func() {
		defer close(readDone)
		for {
			if _, _, err := conn.Read(ctx); err != nil {
				return
			}
		}
	})
	// Pings run apart from writes so that waiting for a pong never holds
	// up events.
	wg.Go(func() { h.ping(ctx, conn) })

	var expired <-chan time.Time
	if !expires.IsZero() {
		t := time.NewTimer(time.Until(expires))
		defer t.Stop()
		expired = t.C
	}

	msg, _ := json.Marshal(hello{Type: "hello", UserID: sub.userID})
	if err := h.write(ctx, conn, msg); err != nil {
		return
	}
	for {
		// Once given up on, queued messages are not worth sending.
		select {
		case <-sub.done:
			_ = conn.Close(sub.code, sub.reason)
			return
		default:
		}
		select {
		case <-readDone:
			return
		case <-sub.done:
			_ = conn.Close(sub.code, sub.reason)
			return
		case <-expired:
			// The client reconnects with a fresh token (the dashboard's
			// proxy refreshes it).
			_ = conn.Close(websocket.StatusPolicyViolation, "token expired")
			return
		case msg := <-sub.ch:
			if err := h.write(ctx, conn, msg); err != nil {
				h.log.DebugContext(ctx, "websocket write failed", "user_id", sub.userID, "error", err.Error())
				return
			}
		}
	}
}

// write sends one text message within WriteTimeout; on timeout the
// websocket library closes the connection.
func (h *Hub) write(ctx context.Context, conn *websocket.Conn, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, h.opts.WriteTimeout)
	defer cancel()
	return conn.Write(ctx, websocket.MessageText, msg)
}

// ping pings every PingInterval and closes conn when a pong does not come
// back within WriteTimeout.
func (h *Hub) ping(ctx context.Context, conn *websocket.Conn) {
	t := time.NewTicker(h.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pingCtx, cancel := context.WithTimeout(ctx, h.opts.WriteTimeout)
		err := conn.Ping(pingCtx)
		cancel()
		if err != nil {
			// The peer is gone or stuck: a close handshake would only wait
			// for it too.
			_ = conn.CloseNow()
			return
		}
	}
}

// withQueryToken returns r with its access_token query parameter as an
// Authorization header, so that authenticate needs to know one place.
func withQueryToken(r *http.Request) *http.Request {
	if r.Header.Get("Authorization") != "" {
		return r
	}
	token := r.URL.Query().Get("access_token")
	if token == "" {
		return r
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}
