package httpx

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

// The cases of internal/httpapi's clientIP, whose behaviour this is.
func TestClientIP(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct{ peer, xff, want string }{
		{"1.2.3.4:5555", "", "1.2.3.4"},
		{"1.2.3.4:5555", "9.9.9.9", "1.2.3.4"},             // untrusted peer: its header is ignored
		{"127.0.0.1:5555", "9.9.9.9", "9.9.9.9"},           // the dashboard speaks for the browser
		{"127.0.0.1:5555", "6.6.6.6, 9.9.9.9", "9.9.9.9"},  // the nearest untrusted hop, not the spoofable first
		{"127.0.0.1:5555", "9.9.9.9, 10.1.1.1", "9.9.9.9"}, // through two proxies
		{"127.0.0.1:5555", "not-an-ip", "127.0.0.1"},       // garbage never picks the key
		{"127.0.0.1:5555", "10.2.2.2", "10.2.2.2"},         // all trusted: the farthest
		{"[::ffff:127.0.0.1]:80", "9.9.9.9", "9.9.9.9"},    // mapped loopback
		{"1.2.3.4", "", "1.2.3.4"},                         // a bare address
		{"[2001:db8::1]:443", "", "2001:db8::1"},           // IPv6 peer
		{"127.0.0.1:5555", "9.9.9.9, garbage", "127.0.0.1"},
		{"127.0.0.1:5555", "", "127.0.0.1"},
	} {
		require.Equal(t, tc.want, ClientIP(tc.peer, tc.xff, trusted), "%+v", tc)
	}
	// Nothing trusted: the peer, whatever the header says.
	require.Equal(t, "127.0.0.1", ClientIP("127.0.0.1:1", "9.9.9.9", nil))
}

func TestIsUpgrade(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		connection, upgrade []string
		want                bool
	}{
		{[]string{"Upgrade"}, []string{"websocket"}, true},
		{[]string{"keep-alive, Upgrade"}, []string{"WebSocket"}, true}, // Firefox
		{[]string{"keep-alive", "upgrade"}, []string{"websocket"}, true},
		{[]string{"Upgrade"}, []string{"h2c"}, false},
		{[]string{"Upgrade"}, nil, false},
		{nil, []string{"websocket"}, false}, // Upgrade alone is not a request to switch
		{[]string{"keep-alive"}, []string{"websocket"}, false},
		{[]string{"upgrades"}, []string{"websocket"}, false}, // tokens, not substrings
		{nil, nil, false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		for _, v := range tc.connection {
			r.Header.Add("Connection", v)
		}
		for _, v := range tc.upgrade {
			r.Header.Add("Upgrade", v)
		}
		require.Equal(t, tc.want, IsUpgrade(r), "%+v", tc)
	}
}
