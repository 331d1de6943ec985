// Package netguard implements Beacon's outbound network policy.
//
// Beacon workers send HTTP checks to URLs supplied by users, which makes
// every check a potential server-side request forgery (SSRF): a user could
// point a check at the cloud metadata service, at the database on the
// private network, or at an admin port on loopback. netguard refuses such
// destinations.
//
// The refusal is enforced in net.Dialer's Control hook (see Policy.Control).
// That hook runs after DNS resolution, on the exact IP address the kernel is
// about to connect to, and before the connect system call. Consequently:
//
//   - checking the URL's host string up front is unnecessary and would not be
//     sufficient: a hostname can resolve to a private address, or resolve to a
//     public address during validation and to a private one at dial time
//     (DNS rebinding); the Control hook sees the address actually dialled;
//   - every hop of a redirect chain is covered, because each hop dials anew;
//   - a refused destination never receives a single packet.
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// ErrRefused is matched (via errors.Is) by every error that reports a
// destination refused by a Policy, including when it reaches the caller
// wrapped in *url.Error and *net.OpError by net/http and net.
var ErrRefused = errors.New("netguard: refused by outbound network policy")

// RefusedError reports that a Policy refused a destination.
// It matches ErrRefused under errors.Is.
type RefusedError struct {
	// Addr is the refused address exactly as it was checked (it is the zero
	// Addr when the refusal was not about an address, e.g. a non-TCP network
	// or an unparsable dial address).
	Addr netip.Addr
	// Reason is a short human-readable explanation, e.g. "private address".
	Reason string
}

// Error returns e.g. "netguard: refused to connect to 10.0.0.1: private address".
func (e *RefusedError) Error() string {
	if !e.Addr.IsValid() {
		return "netguard: refused to connect: " + e.Reason
	}
	return "netguard: refused to connect to " + e.Addr.String() + ": " + e.Reason
}

// Is makes errors.Is(err, ErrRefused) true for any *RefusedError, so callers
// need not care about the concrete type or the wrapping layers.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Policy decides which IP addresses outbound checks may connect to.
// Everything that is not publicly routable (or is a cloud metadata endpoint)
// is refused unless it falls inside one of the allow-listed prefixes.
//
// A Policy is immutable and safe for concurrent use. A nil *Policy behaves
// like NewPolicy(nil).
type Policy struct {
	allow []netip.Prefix
}

// NewPolicy returns a Policy that refuses non-public destinations except
// those inside allow. The allow-list takes precedence over every built-in
// rule, so operators can open specific internal ranges (and tests can open
// 127.0.0.0/8). The slice is copied; invalid prefixes are ignored.
//
// The allow-list is matched against the dialled address after unmapping
// IPv4-mapped IPv6 (::ffff:a.b.c.d is matched as a.b.c.d; an allow-list entry
// written in the mapped form is normalised to plain IPv4 as well). It is not
// applied to the IPv4 address embedded in NAT64 or 6to4 addresses: allowing
// 10.0.0.0/8 does not allow 64:ff9b::a00:1, which must be allowed explicitly,
// because opening internal ranges through translators is rarely intended.
func NewPolicy(allow []netip.Prefix) *Policy {
	p := &Policy{allow: make([]netip.Prefix, 0, len(allow))}
	for _, pfx := range allow {
		if !pfx.IsValid() {
			continue
		}
		// Check unmaps addresses before matching, so a mapped prefix such as
		// ::ffff:10.0.0.0/104 would otherwise never match anything.
		if a := pfx.Addr(); a.Is4In6() && pfx.Bits() >= 96 {
			pfx = netip.PrefixFrom(a.Unmap(), pfx.Bits()-96)
		}
		p.allow = append(p.allow, pfx.Masked())
	}
	return p
}

// Check reports whether the policy permits connecting to ip. It returns nil
// when permitted and a *RefusedError (matching ErrRefused) otherwise.
//
// Refused unless allow-listed: unspecified, "this network" (0.0.0.0/8),
// loopback, private (RFC 1918, IPv6 ULA fc00::/7), shared address space
// (CGNAT 100.64.0.0/10), link-local (169.254.0.0/16, fe80::/10), cloud
// metadata endpoints (169.254.169.254, 100.100.100.200, fd00:ec2::254),
// IETF protocol assignments, documentation and benchmarking ranges,
// multicast, broadcast, reserved (240.0.0.0/4), deprecated IPv6 site-local,
// Teredo, IPv6 outside global unicast 2000::/3, and NAT64 (64:ff9b::/96) or
// 6to4 (2002::/16) addresses embedding a refused IPv4 address.
// IPv4-mapped IPv6 addresses are judged as the IPv4 address they map.
// IPv6 zones are ignored. An invalid (zero) Addr is refused.
func (p *Policy) Check(ip netip.Addr) error {
	if !ip.IsValid() {
		return &RefusedError{Addr: ip, Reason: "invalid address"}
	}
	// Prefix.Contains never matches an address carrying a zone, and an
	// IPv4-mapped address never matches an IPv4 prefix; both would silently
	// skip every rule below, so normalise first.
	n := ip.WithZone("").Unmap()
	if p.allowed(n) {
		return nil
	}
	if reason := refusal(n); reason != "" {
		return &RefusedError{Addr: ip, Reason: reason}
	}
	return nil
}

func (p *Policy) allowed(ip netip.Addr) bool {
	if p == nil {
		return false
	}
	for _, pfx := range p.allow {
		if pfx.Contains(ip) {
			return true
		}
	}
	return false
}

// Control is a net.Dialer Control hook enforcing the policy:
//
//	d := &net.Dialer{Control: policy.Control}
//
// net.Dialer calls it after name resolution with the literal IP address about
// to be connected to and before the connect system call, so a refusal sends
// no packet and DNS rebinding cannot bypass it. Only the networks tcp, tcp4
// and tcp6 are permitted. Note that net.Dialer ignores Control when
// ControlContext is set.
func (p *Policy) Control(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return &RefusedError{Reason: fmt.Sprintf("unparsable dial address %q", address)}
	}
	// By the time Control runs the host is always an IP literal; anything else
	// means we are not being called the way we expect, so fail closed.
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return &RefusedError{Reason: fmt.Sprintf("dial address %q is not an IP literal", address)}
	}
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return &RefusedError{Addr: ip, Reason: fmt.Sprintf("network %q not permitted", network)}
	}
	return p.Check(ip)
}

// ParsePrefixes parses a comma-separated list of CIDR prefixes or bare IP
// addresses (a bare address becomes a /32 or /128 prefix), as read from
// BEACON_CHECK_ALLOW_CIDRS. Whitespace around entries and empty entries are
// ignored; an empty or blank string yields nil. The first malformed entry
// produces an error naming it. Prefixes are returned in canonical (masked)
// form, so "10.1.2.3/8" yields 10.0.0.0/8.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, field := range strings.Split(s, ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		if strings.Contains(field, "/") {
			pfx, err := netip.ParsePrefix(field)
			if err != nil {
				return nil, fmt.Errorf("netguard: invalid allow-list entry %q: %w", field, err)
			}
			out = append(out, pfx.Masked())
			continue
		}
		ip, err := netip.ParseAddr(field)
		if err != nil {
			return nil, fmt.Errorf("netguard: invalid allow-list entry %q: %w", field, err)
		}
		if ip.Zone() != "" {
			// Zones are interface-local; an allow-list entry must name an
			// address, not an interface.
			return nil, fmt.Errorf("netguard: invalid allow-list entry %q: IPv6 zone not allowed", field)
		}
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, nil
}

type rule struct {
	prefix netip.Prefix
	reason string
}

const (
	reasonMetadata = "cloud metadata address"
	reasonPrivate  = "private address"
	reasonDocs     = "documentation address"
)

// v4Rules are evaluated in order; the first match wins, so the more specific
// entries come first to give the most useful reason.
var v4Rules = []rule{
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast address"},
	{netip.MustParsePrefix("169.254.169.254/32"), reasonMetadata}, // AWS, GCP, Azure, OpenStack, ...
	{netip.MustParsePrefix("100.100.100.200/32"), reasonMetadata}, // Alibaba Cloud
	{netip.MustParsePrefix("0.0.0.0/32"), "unspecified address"},
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network" address`},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback address"},
	{netip.MustParsePrefix("10.0.0.0/8"), reasonPrivate},
	{netip.MustParsePrefix("172.16.0.0/12"), reasonPrivate},
	{netip.MustParsePrefix("192.168.0.0/16"), reasonPrivate},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (CGNAT)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local address"},
	// Includes 192.0.0.192, Oracle Cloud's metadata endpoint.
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("192.0.2.0/24"), reasonDocs},
	{netip.MustParsePrefix("198.51.100.0/24"), reasonDocs},
	{netip.MustParsePrefix("203.0.113.0/24"), reasonDocs},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved address"},
}

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
	globalV6    = netip.MustParsePrefix("2000::/3")
)

// v6Rules are evaluated in order after the NAT64 and 6to4 special cases.
var v6Rules = []rule{
	{netip.MustParsePrefix("::/128"), "unspecified address"},
	{netip.MustParsePrefix("::1/128"), "loopback address"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), reasonMetadata}, // AWS IPv6 IMDS
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64 address"},
	{netip.MustParsePrefix("100::/64"), "discard-only address"},
	{netip.MustParsePrefix("fc00::/7"), reasonPrivate + " (unique local)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local address"},
	{netip.MustParsePrefix("fec0::/10"), "site-local address (deprecated)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast address"},
	{netip.MustParsePrefix("2001:db8::/32"), reasonDocs},
	{netip.MustParsePrefix("3fff::/20"), reasonDocs},
	// Teredo embeds an obfuscated client address and is tunnelled through
	// relays; nothing legitimate to monitor lives there.
	{netip.MustParsePrefix("2001::/32"), "Teredo address"},
	{netip.MustParsePrefix("2001:2::/48"), "benchmarking address"},
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignment"},
}

// refusal returns why ip (zone-less and unmapped) is refused, or "" if the
// built-in rules permit it.
func refusal(ip netip.Addr) string {
	if ip.Is4() {
		return firstMatch(v4Rules, ip)
	}
	b := ip.As16()
	switch {
	case nat64Prefix.Contains(ip):
		// A NAT64 gateway forwards to the embedded IPv4 address, so judge that.
		v4 := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		if r := firstMatch(v4Rules, v4); r != "" {
			return fmt.Sprintf("NAT64 address embedding %s (%s)", v4, r)
		}
		return ""
	case sixToFour.Contains(ip):
		// 6to4 relays tunnel to the IPv4 address in bits 16-47.
		v4 := netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
		if r := firstMatch(v4Rules, v4); r != "" {
			return fmt.Sprintf("6to4 address embedding %s (%s)", v4, r)
		}
		return ""
	}
	if r := firstMatch(v6Rules, ip); r != "" {
		return r
	}
	// Everything outside 2000::/3 (IPv4-compatible ::/96, the rest of ::/8,
	// unassigned space) is not globally routable unicast. Denying by default
	// keeps future special-purpose ranges out without a code change.
	if !globalV6.Contains(ip) {
		return "non-global IPv6 address"
	}
	return ""
}

func firstMatch(rules []rule, ip netip.Addr) string {
	for _, r := range rules {
		if r.prefix.Contains(ip) {
			return r.reason
		}
	}
	return ""
}
