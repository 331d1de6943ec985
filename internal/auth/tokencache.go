package auth

import (
	"sync"
	"time"
)

// verifiedTokens remembers access tokens whose signature and claims were
// verified, until they expire. Verifying costs an HMAC, base64 and JSON
// decoding on every request; a hit costs a map read. Only what a token
// proves by itself is remembered: what can change after it was signed (a
// client's revocation) is still checked on every request. Only verified
// tokens get in, so garbage cannot fill it; it is bounded all the same.
type verifiedTokens struct {
	mu  sync.RWMutex
	m   map[string]Principal
	max int
}

func newVerifiedTokens(max int) *verifiedTokens {
	return &verifiedTokens{m: make(map[string]Principal), max: max}
}

// get returns the principal of a verified token that has not expired at now.
func (c *verifiedTokens) get(token string, now time.Time) (Principal, bool) {
	c.mu.RLock()
	p, ok := c.m[token]
	c.mu.RUnlock()
	if !ok || !now.Before(p.Expires.Add(tokenLeeway)) {
		return Principal{}, false
	}
	return p, true
}

// put remembers a verified token. When full, expired tokens go first; if
// none has expired, everything goes (verifying again is only slower).
func (c *verifiedTokens) put(token string, p Principal, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for t, q := range c.m {
			if !now.Before(q.Expires.Add(tokenLeeway)) {
				delete(c.m, t)
			}
		}
		if len(c.m) >= c.max {
			clear(c.m)
		}
	}
	c.m[token] = p
}
