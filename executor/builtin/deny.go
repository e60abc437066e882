package builtin

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/weftworks/weft/executor"
)

// ParseHTTPDeny parses address ranges for Config.HTTPDeny: CIDR prefixes
// such as "10.0.0.0/8" or "::1/128", or single addresses. Host bits are
// cleared, and an IPv4-mapped IPv6 range (::ffff:10.0.0.0/104) is taken as
// the IPv4 range it maps.
func ParseHTTPDeny(ranges []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ranges))
	for _, r := range ranges {
		s := strings.TrimSpace(r)
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil && a.Zone() != "" {
				err = errors.New("zones are not allowed")
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil {
			return nil, fmt.Errorf("%q is not an address range (give CIDR prefixes such as 10.0.0.0/8 or ::1/128, or addresses): %v", r, err)
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// deniedError is a connection refused because its address is in a
// denied range; as is set when the address dialed is the unspecified one
// (0.0.0.0, ::), which reaches this host, as the loopback address in it.
type deniedError struct {
	addr, as netip.Addr
	inside   netip.Prefix
}

func (e *deniedError) Error() string {
	if e.as.IsValid() {
		return fmt.Sprintf("%s reaches this host as %s, which is in %s, denied by --http-deny", e.addr, e.as, e.inside)
	}
	return fmt.Sprintf("%s is in %s, denied by --http-deny", e.addr, e.inside)
}

// reachedAs are the addresses a connection to an unspecified address
// reaches: the system connects it to this host.
var reachedAs = []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}

// denyControl returns a net.Dialer Control func that refuses to connect
// to addresses in deny. It sees the address actually dialed: after name
// resolution, for every address tried, on every redirect. An unspecified
// address (0.0.0.0, ::) is refused when a loopback address is, or when
// it is itself in a denied range.
func denyControl(deny []netip.Prefix) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("--http-deny cannot check %s address %q: %w", network, address, err)
		}
		a := ap.Addr().Unmap().WithZone("")
		for _, p := range deny {
			if p.Contains(a) {
				return &deniedError{addr: a, inside: p}
			}
		}
		if !a.IsUnspecified() {
			return nil
		}
		for _, as := range reachedAs {
			for _, p := range deny {
				if p.Contains(as) {
					return &deniedError{addr: a, as: as, inside: p}
				}
			}
		}
		return nil
	}
}

// denyClient returns a copy of c (nil: a default client) whose transport
// dials through a net.Dialer refusing the addresses in deny, and uses no
// proxy, since a proxy would make the connections in the task's stead.
// c's Transport must be nil or an *http.Transport.
func denyClient(c *http.Client, deny []netip.Prefix) (*http.Client, error) {
	if c == nil {
		c = &http.Client{}
	}
	var base *http.Transport
	switch t := c.Transport.(type) {
	case nil:
		if base, _ = http.DefaultTransport.(*http.Transport); base == nil {
			base = &http.Transport{}
		}
	case *http.Transport:
		base = t
	default:
		return nil, fmt.Errorf("Config.HTTPDeny needs HTTPClient.Transport to be an *http.Transport, not %T", t)
	}
	t := base.Clone()
	t.Proxy = nil
	t.DialTLSContext, t.DialTLS = nil, nil // TLS connections, too, go through DialContext
	t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: denyControl(deny)}).DialContext
	out := *c
	out.Transport = t
	return &out, nil
}

// deniedFailure turns a request error caused by a denied address into a
// non-retryable "denied" error; it returns nil for other errors.
func deniedFailure(err error) error {
	var d *deniedError
	if !errors.As(err, &d) {
		return nil
	}
	return executor.NonRetryable(&executor.Error{Type: "denied", Message: err.Error(), Err: err})
}
