// Package realtime pushes live updates to signed-in users over websocket.
//
// Changes are announced with PostgreSQL NOTIFY on Channel, in the
// transaction that makes them (Publish, or pg_notify in a domain's SQL), so every API replica hears every
// change once it commits, whichever replica or worker made it. Each
// replica's Hub listens on one dedicated connection and hands each event to
// the websockets of the event's owner on that replica; a client may connect
// to any replica.
package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beaconhq/beacon/internal/database"
)

// Channel is the PostgreSQL NOTIFY channel of every event. NOTIFY is sent at
// commit, so a listener never hears of a change that rolled back, and every
// API replica listening hears it.
//
// A payload is an envelope: a JSON object (at most MaxPayload bytes) with
// "type", naming the event for clients, and "owner_id", the user it is for,
// whatever else the domain puts in it. The hub routes on owner_id and hands
// the payload to that user's websockets as is; a payload without owner_id is
// dropped, never guessed.
const Channel = "beacon_events"

// MaxPayload is the largest payload PostgreSQL's NOTIFY carries, less a margin.
const MaxPayload = 7900

// Event is the envelope a domain publishes from Go: Type and OwnerID, and
// Data's JSON fields next to them.
type Event struct {
	Type    string
	OwnerID int64
	Data    any // encodes to a JSON object, or is nil
}

// Querier runs a statement: a pgx.Tx (published at its commit) or a pool
// (published at once).
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Publish announces ev to its owner's websockets on every replica once q's
// transaction commits.
func Publish(ctx context.Context, q Querier, ev Event) error {
	payload, err := ev.encode()
	if err != nil {
		return err
	}
	if _, err := q.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, payload); err != nil {
		return fmt.Errorf("publish %s event: %w", ev.Type, err)
	}
	return nil
}

func (ev Event) encode() (string, error) {
	if ev.Type == "" || ev.OwnerID == 0 {
		return "", errors.New("realtime: an event needs a type and an owner")
	}
	fields := map[string]json.RawMessage{}
	if ev.Data != nil {
		raw, err := json.Marshal(ev.Data)
		if err != nil {
			return "", fmt.Errorf("realtime: encode %s event: %w", ev.Type, err)
		}
		if err := json.Unmarshal(raw, &fields); err != nil {
			return "", fmt.Errorf("realtime: %s event data must encode to a JSON object", ev.Type)
		}
	}
	fields["type"], _ = json.Marshal(ev.Type)
	fields["owner_id"], _ = json.Marshal(ev.OwnerID)
	out, _ := json.Marshal(fields)
	if len(out) > MaxPayload {
		return "", fmt.Errorf("realtime: %s event is %d bytes, over %d", ev.Type, len(out), MaxPayload)
	}
	return string(out), nil
}

// Options tune a Hub. Zero values mean the defaults.
type Options struct {
	// MaxConnsPerUser caps one user's open websockets on this replica
	// (default 5): a tab per connection is plenty, and a buggy client
	// reconnecting in a loop cannot pile up goroutines and buffers.
	MaxConnsPerUser int
	// Buffer is how many messages may wait for one client (default 64).
	// A client further behind is dropped: waiting for it would hold up
	// every other client.
	Buffer int
	// PingInterval is how often each client is pinged (default 20 s), well
	// under the idle timeouts of proxies and load balancers; an unanswered
	// ping also finds peers that vanished without closing.
	PingInterval time.Duration
	// WriteTimeout bounds each write to a client and the wait for each
	// pong (default 5 s).
	WriteTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.MaxConnsPerUser <= 0 {
		o.MaxConnsPerUser = 5
	}
	if o.Buffer <= 0 {
		o.Buffer = 64
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 20 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	return o
}

// resyncMessage tells clients that events may have been missed while the
// listener was reconnecting, so they should reload what they show.
var resyncMessage = []byte(`{"type":"resync"}`)

var (
	errTooMany = errors.New("too many connections")
	errStopped = errors.New("hub stopped")
)

// Hub fans events out from PostgreSQL to the websockets of this replica.
// Make one per process with NewHub, run it with Run, and serve it with
// Handler.
type Hub struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	opts Options

	mu      sync.Mutex
	subs    map[int64]map[*subscriber]struct{} // by user id
	stopped bool
	// conns counts subscribers until their connection has ended, so that
	// Run returns only once every websocket goroutine is done.
	conns sync.WaitGroup
}

// subscriber is one websocket's place in the hub.
type subscriber struct {
	userID int64
	ch     chan []byte
	// done is closed, once, when the hub gives up on the subscriber: too
	// slow, or the hub is stopping. code and reason are set before and say
	// how to close the websocket.
	done   chan struct{}
	code   websocket.StatusCode
	reason string
	ended  bool // guarded by Hub.mu
}

// end gives up on s. The caller holds Hub.mu.
func (s *subscriber) end(code websocket.StatusCode, reason string) bool {
	if s.ended {
		return false
	}
	s.ended, s.code, s.reason = true, code, reason
	close(s.done)
	return true
}

// NewHub returns a hub that listens through pool. log may be nil.
func NewHub(pool *pgxpool.Pool, log *slog.Logger, opts Options) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{pool: pool, log: log, opts: opts.withDefaults(), subs: map[int64]map[*subscriber]struct{}{}}
}

// Run listens for events and delivers them until ctx ends. It holds one
// connection of the pool the whole time, and reconnects with backoff when
// that connection fails; meanwhile websockets stay open, and once it
// listens again each is sent {"type":"resync"}, as events of the gap are
// lost. When ctx ends, Run closes every websocket (status 1001, going away)
// so that clients reconnect to another replica, refuses new ones (503),
// waits for their goroutines to end, and returns nil. That wait is bounded
// by WriteTimeout plus the websocket library's close handshake limits (5 s
// to send the close frame, 5 s for the reply). Call it once.
func (h *Hub) Run(ctx context.Context) error {
	defer h.stop()
	l := &database.Listener{
		Pool: h.pool, Channel: Channel, Name: "event", Log: h.log,
		PingTimeout: h.opts.WriteTimeout,
		Listening: func(recovered bool) {
			if recovered {
				h.broadcast(resyncMessage)
			}
		},
		Handle: h.dispatch,
	}
	return l.Run(ctx)
}

// dispatch sends a notification's payload, as is, to its owner's websockets.
func (h *Hub) dispatch(payload string) {
	var ev struct {
		OwnerID *int64 `json:"owner_id"`
	}
	if err := json.Unmarshal([]byte(payload), &ev); err != nil || ev.OwnerID == nil {
		// Never guess a recipient. The payload is not logged: it is user data.
		h.log.Warn("ignoring event without owner_id", "channel", Channel, "bytes", len(payload))
		return
	}
	if dropped := h.publish(*ev.OwnerID, []byte(payload)); dropped > 0 {
		h.log.Info("dropped slow websocket clients", "user_id", *ev.OwnerID, "clients", dropped)
	}
}

// publish offers msg to every subscriber of user without waiting, and gives
// up on those whose buffer is full. It returns how many it gave up on.
func (h *Hub) publish(user int64, msg []byte) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	dropped := 0
	for s := range h.subs[user] {
		if h.offer(s, msg) {
			dropped++
		}
	}
	return dropped
}

// broadcast offers msg to every subscriber.
func (h *Hub) broadcast(msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, set := range h.subs {
		for s := range set {
			h.offer(s, msg)
		}
	}
}

// offer is the non-blocking send: a full buffer ends the subscriber, so
// one stalled client never delays another. The caller holds h.mu. It
// reports whether s was dropped now.
func (h *Hub) offer(s *subscriber, msg []byte) bool {
	if s.ended {
		return false
	}
	select {
	case s.ch <- msg:
		return false
	default:
		return s.end(websocket.StatusPolicyViolation, "too slow")
	}
}

// subscribe registers a websocket of user, within the per-user limit.
func (h *Hub) subscribe(user int64) (*subscriber, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return nil, errStopped
	}
	set := h.subs[user]
	// Subscribers count until unsubscribed, dropped or not: a dropped
	// connection holds resources until its close handshake ends.
	if len(set) >= h.opts.MaxConnsPerUser {
		return nil, errTooMany
	}
	if set == nil {
		set = map[*subscriber]struct{}{}
		h.subs[user] = set
	}
	s := &subscriber{userID: user, ch: make(chan []byte, h.opts.Buffer), done: make(chan struct{})}
	set[s] = struct{}{}
	// Under h.mu and before stop sets stopped, so never after stop's Wait began.
	h.conns.Add(1)
	return s, nil
}

// unsubscribe removes s once its websocket is done.
func (h *Hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.subs[s.userID]
	if _, ok := set[s]; !ok {
		return
	}
	delete(set, s)
	if len(set) == 0 {
		delete(h.subs, s.userID)
	}
	h.conns.Done()
}

// stop refuses new subscribers, ends the current ones and waits for their
// websockets to close.
func (h *Hub) stop() {
	h.mu.Lock()
	h.stopped = true
	for _, set := range h.subs {
		for s := range set {
			s.end(websocket.StatusGoingAway, "server shutting down")
		}
	}
	h.mu.Unlock()
	h.conns.Wait()
}
