package netguard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Workplace rule: tests may only send packets to loopback. Public and
// internal addresses below are only ever passed to Check/Control directly,
// or dialled through a policy that refuses them in Control, i.e. before the
// connect system call. Tests that dial a refused address first assert the
// refusal with Check and stop if it is not refused.

var loopbackV4 = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr   string
		reason string // "" means permitted
	}{
		// Public addresses: permitted (Check only; never dialled).
		{"1.1.1.1", ""},
		{"8.8.8.8", ""},
		{"93.184.215.14", ""},
		{"2606:4700::1111", ""},
		{"2001:4860:4860::8888", ""},
		{"::ffff:1.1.1.1", ""},
		{"64:ff9b::101:101", ""}, // NAT64 of 1.1.1.1
		{"2002:101:101::1", ""},  // 6to4 of 1.1.1.1
		{"100.63.255.255", ""},   // just below CGNAT
		{"100.128.0.0", ""},      // just above CGNAT
		{"172.15.255.255", ""},   // just below 172.16/12
		{"172.32.0.0", ""},       // just above 172.16/12
		{"223.255.255.255", ""},  // just below multicast
		{"198.17.255.255", ""},   // just below benchmarking
		{"198.20.0.0", ""},       // just above benchmarking
		{"2001:200::1", ""},      // just above 2001::/23
		{"3fff:1000::1", ""},     // just above 3fff::/20
		{"fe80::1%eth0", "link-local"},

		// Unspecified and "this network".
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "this network"},
		{"::", "unspecified"},

		// Loopback.
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"::1", "loopback"},

		// Private.
		{"10.0.0.1", "private"},
		{"10.255.255.255", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"fc00::1", "private"},
		{"fd12:3456::1", "private"},

		// Link-local and cloud metadata.
		{"169.254.0.1", "link-local"},
		{"169.254.169.254", "metadata"},
		{"169.254.170.2", "link-local"}, // ECS task metadata
		{"100.100.100.200", "metadata"}, // Alibaba
		{"fd00:ec2::254", "metadata"},   // AWS IPv6 IMDS
		{"fe80::1", "link-local"},
		{"febf::1", "link-local"},
		{"fec0::1", "site-local"},

		// Multicast, broadcast, reserved.
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"ff02::1", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"240.0.0.1", "reserved"},
		{"255.255.255.254", "reserved"},

		// Special-purpose IPv4.
		{"100.64.0.1", "CGNAT"},
		{"100.127.255.255", "CGNAT"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		{"192.0.0.192", "IETF"}, // Oracle Cloud metadata
		{"192.0.2.1", "documentation"},
		{"198.51.100.1", "documentation"},
		{"203.0.113.1", "documentation"},

		// Special-purpose IPv6.
		{"2001:db8::1", "documentation"},
		{"3fff::1", "documentation"},
		{"2001::1", "Teredo"},
		{"2001:2::1", "benchmarking"},
		{"2001:10::1", "IETF"},
		{"100::1", "discard"},
		{"::7f00:1", "non-global"}, // deprecated IPv4-compatible ::127.0.0.1
		{"::a00:1", "non-global"},  // ::10.0.0.1
		{"4000::1", "non-global"},
		{"64:ff9b:1::a00:1", "local-use NAT64"},

		// IPv4-mapped IPv6 forms are judged as IPv4.
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:10.0.0.1", "private"},
		{"::ffff:169.254.169.254", "metadata"},
		{"::ffff:0.0.0.0", "unspecified"},
		{"::ffff:100.100.100.200", "metadata"},
		{"::ffff:255.255.255.255", "broadcast"},

		// NAT64 and 6to4 embedding refused IPv4.
		{"64:ff9b::7f00:1", "NAT64 address embedding 127.0.0.1 (loopback"},
		{"64:ff9b::a9fe:a9fe", "NAT64 address embedding 169.254.169.254 (cloud metadata"},
		{"64:ff9b::c0a8:101", "NAT64 address embedding 192.168.1.1 (private"},
		{"2002:7f00:1::1", "6to4 address embedding 127.0.0.1 (loopback"},
		{"2002:a9fe:a9fe::", "6to4 address embedding 169.254.169.254 (cloud metadata"},
		{"2002:a00:1:1::1", "6to4 address embedding 10.0.0.1 (private"},
	}
	p := NewPolicy(nil)
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			ip := netip.MustParseAddr(tt.addr)
			err := p.Check(ip)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want permitted", ip, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%s) = nil, want refusal (%s)", ip, tt.reason)
			}
			if !errors.Is(err, ErrRefused) {
				t.Errorf("errors.Is(%v, ErrRefused) = false", err)
			}
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("error %T is not a *RefusedError", err)
			}
			if re.Addr != ip {
				t.Errorf("RefusedError.Addr = %s, want %s", re.Addr, ip)
			}
			if !strings.Contains(re.Reason, tt.reason) {
				t.Errorf("RefusedError.Reason = %q, want it to contain %q", re.Reason, tt.reason)
			}
		})
	}
}

func TestCheckInvalidAddr(t *testing.T) {
	t.Parallel()
	if err := NewPolicy(loopbackV4).Check(netip.Addr{}); !errors.Is(err, ErrRefused) {
		t.Fatalf("Check(zero Addr) = %v, want ErrRefused", err)
	}
}

func TestCheckAllowList(t *testing.T) {
	t.Parallel()
	allow := []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("10.1.0.0/16"),
		netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("169.254.169.254/32"),
		netip.MustParsePrefix("::ffff:192.168.7.0/120"), // mapped form, normalised
		netip.MustParsePrefix("10.9.9.9/8"),             // non-canonical, still works
		{},                                              // invalid, ignored
	}
	tests := []struct {
		addr    string
		allowed bool
	}{
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"::ffff:127.0.0.1", true}, // mapped form of an allowed address
		{"10.1.2.3", true},
		{"10.2.0.1", true}, // via 10.9.9.9/8
		{"fd12::1", true},
		{"fd00:ec2::254", true}, // allow beats the metadata rule
		{"fe80::1%lo", false},
		{"169.254.169.254", true},
		{"169.254.169.253", false},
		{"192.168.7.9", true},
		{"192.168.8.1", false},
		{"::1", false},             // only IPv4 loopback allowed
		{"fc00::1", false},         // outside fd00::/8
		{"64:ff9b::7f00:1", false}, // allow-list does not reach into NAT64
		{"2002:7f00:1::1", false},  // nor into 6to4
		{"100.100.100.200", false}, // still refused
		{"1.1.1.1", true},          // public stays permitted
		{"2606:4700::1111", true},  // public stays permitted
		{"255.255.255.255", false}, // broadcast stays refused
		{"0.0.0.0", false},         // unspecified stays refused
	}
	p := NewPolicy(allow)
	allow[0] = netip.MustParsePrefix("1.0.0.0/8") // NewPolicy must have copied
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			err := p.Check(netip.MustParseAddr(tt.addr))
			if tt.allowed && err != nil {
				t.Errorf("Check(%s) = %v, want permitted", tt.addr, err)
			}
			if !tt.allowed && !errors.Is(err, ErrRefused) {
				t.Errorf("Check(%s) = %v, want ErrRefused", tt.addr, err)
			}
		})
	}
}

func TestNilPolicy(t *testing.T) {
	t.Parallel()
	var p *Policy
	if err := p.Check(netip.MustParseAddr("10.0.0.1")); !errors.Is(err, ErrRefused) {
		t.Errorf("nil Policy Check(10.0.0.1) = %v, want ErrRefused", err)
	}
	if err := p.Check(netip.MustParseAddr("1.1.1.1")); err != nil {
		t.Errorf("nil Policy Check(1.1.1.1) = %v, want nil", err)
	}
}

func TestRefusedErrorMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  *RefusedError
		want string
	}{
		{&RefusedError{Addr: netip.MustParseAddr("10.0.0.1"), Reason: "private address"},
			"netguard: refused to connect to 10.0.0.1: private address"},
		{&RefusedError{Reason: `network "udp" not permitted`},
			`netguard: refused to connect: network "udp" not permitted`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	got := NewPolicy(nil).Check(netip.MustParseAddr("10.0.0.1")).Error()
	if want := "netguard: refused to connect to 10.0.0.1: private address"; got != want {
		t.Errorf("Check(10.0.0.1).Error() = %q, want %q", got, want)
	}
	if errors.Is(errors.New("other"), ErrRefused) {
		t.Error("unrelated error matches ErrRefused")
	}
}

// TestControl calls the hook directly (nothing is dialled).
func TestControl(t *testing.T) {
	t.Parallel()
	tests := []struct {
		network, address string
		allowed          bool
	}{
		{"tcp4", "1.1.1.1:443", true},
		{"tcp6", "[2606:4700::1111]:443", true},
		{"tcp", "1.1.1.1:80", true},
		{"tcp4", "127.0.0.1:8080", true}, // allow-listed
		{"tcp6", "[::1]:8080", false},
		{"tcp4", "10.0.0.1:80", false},
		{"tcp4", "169.254.169.254:80", false},
		{"tcp6", "[::ffff:169.254.169.254]:80", false},
		{"tcp6", "[fe80::1%eth0]:80", false},
		{"tcp6", "[fd00:ec2::254]:80", false},
		{"udp4", "1.1.1.1:53", false},
		{"udp", "1.1.1.1:53", false},
		{"ip4:icmp", "1.1.1.1:0", false},
		{"unix", "/run/x.sock", false},
		{"tcp", "example.com:80", false}, // never happens in practice: fail closed
		{"tcp", "1.1.1.1", false},        // no port
		{"tcp", "", false},
	}
	p := NewPolicy(loopbackV4)
	for _, tt := range tests {
		t.Run(tt.network+" "+tt.address, func(t *testing.T) {
			t.Parallel()
			err := p.Control(tt.network, tt.address, nil)
			if tt.allowed && err != nil {
				t.Errorf("Control(%q, %q) = %v, want nil", tt.network, tt.address, err)
			}
			if !tt.allowed && !errors.Is(err, ErrRefused) {
				t.Errorf("Control(%q, %q) = %v, want ErrRefused", tt.network, tt.address, err)
			}
		})
	}
}

func TestParsePrefixes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{",", nil},
		{"127.0.0.0/8", []string{"127.0.0.0/8"}},
		{" 127.0.0.0/8 , 10.1.2.3,::1,\tfd00::/8 ", []string{"127.0.0.0/8", "10.1.2.3/32", "::1/128", "fd00::/8"}},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}},
		{"10.0.0.0/8,", []string{"10.0.0.0/8"}},
		{"2001:db8::1", []string{"2001:db8::1/128"}},
		{"0.0.0.0/0", []string{"0.0.0.0/0"}},
	}
	for _, tt := range tests {
		got, err := ParsePrefixes(tt.in)
		if err != nil {
			t.Errorf("ParsePrefixes(%q) error: %v", tt.in, err)
			continue
		}
		var want []netip.Prefix
		for _, s := range tt.want {
			want = append(want, netip.MustParsePrefix(s))
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ParsePrefixes(%q) = %v, want %v", tt.in, got, want)
		}
	}
}

func TestParsePrefixesErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, bad string
	}{
		{"foo", "foo"},
		{"10.0.0.0/8, 10.0.0.0/33", "10.0.0.0/33"},
		{"10.0.0.0/8,256.1.1.1", "256.1.1.1"},
		{"::1/129", "::1/129"},
		{"10.0.0.0/8/8", "10.0.0.0/8/8"},
		{"10.0.0.0/", "10.0.0.0/"},
		{"fe80::1%eth0", "fe80::1%eth0"},
		{"10.0.0.0 /8", "10.0.0.0 /8"},
		{"localhost", "localhost"},
	}
	for _, tt := range tests {
		got, err := ParsePrefixes(tt.in)
		if err == nil {
			t.Errorf("ParsePrefixes(%q) = %v, want error", tt.in, got)
			continue
		}
		if !strings.Contains(err.Error(), strconv.Quote(tt.bad)) {
			t.Errorf("ParsePrefixes(%q) error %q does not name entry %q", tt.in, err, tt.bad)
		}
	}
}

// countingServer starts a loopback server and counts handler invocations.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func okHandler(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }

func get(t *testing.T, c *http.Client, rawURL string, header http.Header) (*http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if resp != nil {
		t.Cleanup(func() { resp.Body.Close() })
	}
	return resp, err
}

// assertRefused checks the full wrapping chain a caller sees from
// http.Client: *url.Error -> *net.OpError -> *RefusedError, and that
// errors.Is/As see through it.
func assertRefused(t *testing.T, err error, wantAddr netip.Addr) {
	t.Helper()
	if err == nil {
		t.Fatal("request succeeded, want refusal")
	}
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("errors.Is(%v, ErrRefused) = false", err)
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Errorf("error %T does not wrap *url.Error", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Errorf("error %v does not wrap *net.OpError", err)
	} else if oe.Op != "dial" {
		t.Errorf("net.OpError.Op = %q, want dial", oe.Op)
	}
	var re *RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("error %v does not wrap *RefusedError", err)
	}
	if wantAddr.IsValid() && re.Addr != wantAddr {
		t.Errorf("RefusedError.Addr = %s, want %s", re.Addr, wantAddr)
	}
}

func TestHTTPClientLoopback(t *testing.T) {
	t.Parallel()
	srv, calls := countingServer(t, okHandler)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	srvAddr := netip.MustParseAddrPort(u.Host).Addr()
	// "localhost" resolves to a loopback address: the DNS-rebinding case,
	// where a hostname that looks external maps to an internal address and
	// only a dial-time check catches it. It is resolved from /etc/hosts
	// (hosts: files dns), so no DNS query leaves the machine.
	localhostURL := "http://localhost:" + u.Port() + "/"

	t.Run("refused by default", func(t *testing.T) {
		c := NewPolicy(nil).HTTPClient(ClientOptions{})
		_, err := get(t, c, srv.URL, nil)
		assertRefused(t, err, srvAddr)
	})
	t.Run("hostname refused by default", func(t *testing.T) {
		c := NewPolicy(nil).HTTPClient(ClientOptions{})
		_, err := get(t, c, localhostURL, nil)
		assertRefused(t, err, netip.Addr{})
		var re *RefusedError
		if errors.As(err, &re) && !re.Addr.IsLoopback() {
			t.Errorf("refused address %s is not loopback", re.Addr)
		}
	})
	if n := calls.Load(); n != 0 {
		t.Fatalf("handler called %d times while the policy refused loopback", n)
	}

	for _, target := range []string{srv.URL, localhostURL} {
		t.Run("allowed "+target, func(t *testing.T) {
			c := NewPolicy(loopbackV4).HTTPClient(ClientOptions{})
			resp, err := get(t, c, target, nil)
			if err != nil {
				t.Fatalf("GET %s: %v", target, err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Fatalf("GET %s = %d %q, want 200 \"ok\"", target, resp.StatusCode, body)
			}
		})
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("handler called %d times, want 2", n)
	}
}

func TestHTTPClientRedirectLimit(t *testing.T) {
	t.Parallel()
	// /hop/N redirects to /hop/N-1; /hop/0 answers 200.
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/hop/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if n == 0 {
			io.WriteString(w, "done")
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/hop/%d", n-1), http.StatusFound)
	})
	tests := []struct {
		name         string
		maxRedirects int
		hops         int
		wantErr      error
		wantStatus   int
	}{
		{"default limit reached", 0, DefaultMaxRedirects, nil, http.StatusOK},
		{"default limit exceeded", 0, DefaultMaxRedirects + 1, ErrTooManyRedirects, http.StatusFound},
		{"no redirect", 2, 0, nil, http.StatusOK},
		{"limit reached", 2, 2, nil, http.StatusOK},
		{"limit exceeded", 2, 3, ErrTooManyRedirects, http.StatusFound},
		{"one allowed", 1, 1, nil, http.StatusOK},
		{"one exceeded", 1, 2, ErrTooManyRedirects, http.StatusFound},
		{"negative does not follow", -1, 3, nil, http.StatusFound},
	}
	p := NewPolicy(loopbackV4)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := p.HTTPClient(ClientOptions{MaxRedirects: tt.maxRedirects})
			resp, err := get(t, c, fmt.Sprintf("%s/hop/%d", srv.URL, tt.hops), nil)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if errors.Is(err, ErrRefused) {
					t.Errorf("redirect-limit error %v matches ErrRefused", err)
				}
			} else if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if resp == nil {
				t.Fatal("no response")
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
		})
	}
}

func TestHTTPClientRedirectRefused(t *testing.T) {
	t.Parallel()
	p := NewPolicy(loopbackV4)
	tests := []struct {
		name, location string
		wantErr        error
		refusedAddr    string // address that must be refused before dialling
	}{
		{"cloud metadata", "http://169.254.169.254/latest/meta-data/", ErrRefused, "169.254.169.254"},
		{"cloud metadata https", "https://169.254.169.254/latest/meta-data/", ErrRefused, "169.254.169.254"},
		{"alibaba metadata", "http://100.100.100.200/latest/meta-data/", ErrRefused, "100.100.100.200"},
		{"aws ipv6 metadata", "http://[fd00:ec2::254]/latest/meta-data/", ErrRefused, "fd00:ec2::254"},
		{"mapped metadata", "http://[::ffff:169.254.169.254]/", ErrRefused, "::ffff:169.254.169.254"},
		{"private", "http://10.0.0.1:8080/admin", ErrRefused, "10.0.0.1"},
		{"ftp scheme", "ftp://127.0.0.1/file", ErrRedirectScheme, ""},
		{"file scheme", "file:///etc/passwd", ErrRedirectScheme, ""},
		{"gopher scheme", "gopher://127.0.0.1:6379/_INFO", ErrRedirectScheme, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.refusedAddr != "" {
				// Guard the workplace rule: never dial this unless the
				// policy is known to refuse it before connect.
				if err := p.Check(netip.MustParseAddr(tt.refusedAddr)); err == nil {
					t.Fatalf("precondition: policy permits %s; not dialling it", tt.refusedAddr)
				}
			}
			srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, tt.location, http.StatusFound)
			})
			c := p.HTTPClient(ClientOptions{})
			_, err := get(t, c, srv.URL+"/start", nil)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.refusedAddr != "" {
				// net dials IPv4-mapped literals as plain IPv4, so that is
				// the form Control sees.
				assertRefused(t, err, netip.MustParseAddr(tt.refusedAddr).Unmap())
			}
		})
	}
}

func TestHTTPClientUserAgent(t *testing.T) {
	t.Parallel()
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		ua, ok := r.Header["User-Agent"]
		if !ok {
			io.WriteString(w, "<none>")
			return
		}
		io.WriteString(w, strings.Join(ua, ","))
	})
	const beaconUA = "Beacon/1.0 (+https://beacon.example)"
	tests := []struct {
		name   string
		opt    string
		header http.Header
		want   string
	}{
		{"option used", beaconUA, nil, beaconUA},
		{"request wins", beaconUA, http.Header{"User-Agent": {"custom/2"}}, "custom/2"},
		{"explicit empty kept", beaconUA, http.Header{"User-Agent": {""}}, "<none>"},
		{"no option", "", nil, "Go-http-client/1.1"},
	}
	p := NewPolicy(loopbackV4)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := p.HTTPClient(ClientOptions{UserAgent: tt.opt})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header[k] = v
			}
			before := req.Header.Clone()
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != tt.want {
				t.Errorf("server saw User-Agent %q, want %q", body, tt.want)
			}
			if !reflect.DeepEqual(req.Header, before) {
				t.Errorf("caller's request headers modified: %v -> %v", before, req.Header)
			}
		})
	}
}

// The User-Agent must survive redirects too: each hop passes the wrapper.
func TestHTTPClientUserAgentAcrossRedirect(t *testing.T) {
	t.Parallel()
	var seen atomic.Value
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/start" {
			http.Redirect(w, r, "/end", http.StatusFound)
			return
		}
		seen.Store(r.UserAgent())
	})
	c := NewPolicy(loopbackV4).HTTPClient(ClientOptions{UserAgent: "Beacon/test"})
	if _, err := get(t, c, srv.URL+"/start", nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := seen.Load().(string); got != "Beacon/test" {
		t.Errorf("User-Agent after redirect = %q, want Beacon/test", got)
	}
}

type countingRoundTripper struct {
	next  http.RoundTripper
	calls atomic.Int64
	ua    atomic.Value
}

func (c *countingRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	c.calls.Add(1)
	c.ua.Store(r.Header.Get("User-Agent"))
	return c.next.RoundTrip(r)
}

func TestHTTPClientTransportWrapper(t *testing.T) {
	t.Parallel()
	srv, calls := countingServer(t, okHandler)
	for _, allow := range [][]netip.Prefix{nil, loopbackV4} {
		t.Run(fmt.Sprint(allow), func(t *testing.T) {
			var wrapper *countingRoundTripper
			c := NewPolicy(allow).HTTPClient(ClientOptions{
				UserAgent: "Beacon/wrapped",
				Transport: func(rt http.RoundTripper) http.RoundTripper {
					wrapper = &countingRoundTripper{next: rt}
					return wrapper
				},
			})
			_, err := get(t, c, srv.URL, nil)
			if wrapper == nil || wrapper.calls.Load() != 1 {
				t.Fatal("transport wrapper not used")
			}
			if got, _ := wrapper.ua.Load().(string); got != "Beacon/wrapped" {
				t.Errorf("wrapper saw User-Agent %q, want it set before the wrapper", got)
			}
			if allow == nil {
				// The wrapper must not weaken the policy.
				assertRefused(t, err, netip.Addr{})
			} else if err != nil {
				t.Fatal(err)
			}
		})
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
	// A wrapper returning nil falls back to the guarded transport.
	c := NewPolicy(nil).HTTPClient(ClientOptions{
		Transport: func(http.RoundTripper) http.RoundTripper { return nil },
	})
	_, err := get(t, c, srv.URL, nil)
	assertRefused(t, err, netip.Addr{})
}

func TestHTTPClientConfig(t *testing.T) {
	t.Parallel()
	c := NewPolicy(nil).HTTPClient(ClientOptions{})
	if c.Timeout != 0 {
		t.Errorf("client Timeout = %v, want 0 (context deadlines are used)", c.Timeout)
	}
	tr, ok := c.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("Transport = %T, want *http.Transport", c.Transport)
	}
	if tr.Proxy != nil {
		t.Error("Transport.Proxy is set: an environment proxy would bypass the policy")
	}
	if !tr.DisableKeepAlives {
		t.Error("keep-alives enabled")
	}
	if tr.DialContext == nil || tr.DialTLSContext != nil {
		t.Error("unexpected dial configuration")
	}
	if tr.MaxResponseHeaderBytes != 64<<10 {
		t.Errorf("MaxResponseHeaderBytes = %d", tr.MaxResponseHeaderBytes)
	}
	if tr.TLSHandshakeTimeout != 10*time.Second || tr.ResponseHeaderTimeout != 0 || !tr.ForceAttemptHTTP2 {
		t.Error("unexpected timeouts or HTTP/2 setting")
	}
	if c2 := NewPolicy(nil).HTTPClient(ClientOptions{}); c2.Transport == c.Transport {
		t.Error("clients share a transport")
	}
}
