package registry

import (
	"errors"
	"net"
	"strconv"
	"strings"
)

// Rejection is a request the API answers with STATUS_CODE_NOT_ACCEPTABLE;
// its message is the error_message the client reads.
type Rejection struct{ Message string }

func (r *Rejection) Error() string { return r.Message }

func reject(msg string) error { return &Rejection{Message: msg} }

// IsRejection reports whether err is a Rejection.
func IsRejection(err error) bool {
	var r *Rejection
	return errors.As(err, &r)
}

// ValidE164 reports whether s is a phone number in E.164 form: "+", a
// country code not starting with 0, at most 15 digits in all (ITU-T E.164
// §6). The API's own note allows longer sequences; callpath does not, so a
// typo fails here and not at call time.
func ValidE164(s string) bool {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ValidPrefix reports whether a Request-URI prefix is digits, "+", "*" or
// "#" only (what a dial string may carry), at most 8 of them.
func ValidPrefix(s string) bool {
	if len(s) > 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("0123456789+*#", rune(s[i])) {
			return false
		}
	}
	return true
}

// TASURI is a registration's sip_uri taken apart.
type TASURI struct {
	Secure bool   // sips:
	Host   string // a DNS name or an IP literal (IPv6 without brackets)
	Port   int    // 0: look up DNS SRV (_sips._tcp or _sip._udp/_tcp)
}

// String is the normalised form stored and compared: lower-case scheme and
// host, port only when given.
func (u TASURI) String() string {
	scheme := "sip:"
	if u.Secure {
		scheme = "sips:"
	}
	host := u.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if u.Port != 0 {
		return scheme + host + ":" + strconv.Itoa(u.Port)
	}
	return scheme + host
}

// ParseTASURI reads a registration's sip_uri: "sips:host" or
// "sips:host:port", plain "sip:" only when allowPlain (labs, tests). The
// TAS is a server, so a user part, parameters or headers are refused
// rather than silently dropped.
func ParseTASURI(s string, allowPlain bool) (TASURI, error) {
	s = strings.TrimSpace(s)
	var u TASURI
	lower := strings.ToLower(s)
	switch {
	case strings.HasPrefix(lower, "sips:"):
		u.Secure, s = true, s[len("sips:"):]
	case strings.HasPrefix(lower, "sip:"):
		if !allowPlain {
			return u, reject("Secure SIP domain name required: sip_uri must be sips:host or sips:host:port")
		}
		s = s[len("sip:"):]
	default:
		return u, reject("sip_uri must be a sips: URI such as sips:tas.example.net or sips:tas.example.net:5061")
	}
	if s == "" || strings.ContainsAny(s, "@;?/ ") {
		return u, reject("sip_uri must be sips:host or sips:host:port, without user part or parameters")
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return u, reject("sip_uri has an unterminated IPv6 address")
		}
		host, port = s[1:end], strings.TrimPrefix(s[end+1:], ":")
		if s[end+1:] != "" && !strings.HasPrefix(s[end+1:], ":") {
			return u, reject("sip_uri has text after its IPv6 address")
		}
		if net.ParseIP(host) == nil {
			return u, reject("sip_uri has a bad IPv6 address")
		}
	} else if i := strings.LastIndex(s, ":"); i >= 0 {
		host, port = s[:i], s[i+1:]
	}
	if port != "" || strings.HasSuffix(s, ":") {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return u, reject("sip_uri has a bad port")
		}
		u.Port = p
	}
	if !validHost(host) {
		return u, reject("sip_uri has a bad host name")
	}
	u.Host = strings.ToLower(host)
	return u, nil
}

// validHost accepts IP literals and DNS names of letters, digits, hyphens
// and dots (RFC 1123), at most 253 characters.
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
