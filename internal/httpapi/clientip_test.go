package httpapi

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

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
	} {
		require.Equal(t, tc.want, clientIP(tc.peer, tc.xff, trusted), "%+v", tc)
	}
}
