// Package httpx holds small HTTP helpers that know nothing of Beacon's
// domain, shared by the API, the realtime hub and the dashboard.
package httpx

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// IsUpgrade reports whether r asks for a websocket: "Connection: upgrade"
// and "Upgrade: websocket", each possibly among other comma-separated
// tokens, compared case-insensitively (RFC 9110 section 7.8, RFC 6455
// section 4.1).
func IsUpgrade(r *http.Request) bool {
	return HeaderHasToken(r.Header, "Connection", "upgrade") && HeaderHasToken(r.Header, "Upgrade", "websocket")
}

// HeaderHasToken reports whether any value of header name holds token in
// its comma-separated list, ignoring case and surrounding whitespace.
func HeaderHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// ClientIP identifies the caller (for rate limiting and logs): the peer
// address (host:port or a bare address), or, when the peer is a trusted
// proxy, the nearest address in forwarded (an X-Forwarded-For value) that is
// not one. The first X-Forwarded-For entry is never believed on its own:
// any client can write it. A hop that is not an IP address makes the peer
// the answer, so garbage never chooses the key. When every hop is trusted,
// the farthest one is the client.
func ClientIP(peer, forwarded string, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(peer)
	if err != nil {
		host = peer
	}
	isTrusted := func(s string) bool {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return false
		}
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	if forwarded == "" || !isTrusted(host) {
		return host
	}
	hops := strings.Split(forwarded, ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if _, err := netip.ParseAddr(hop); err != nil {
			return host // garbage: do not let it choose the key
		}
		if !isTrusted(hop) || i == 0 {
			return hop
		}
	}
	return host
}
