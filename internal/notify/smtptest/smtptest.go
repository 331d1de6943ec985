// Package smtptest runs a minimal SMTP server for tests: it accepts every
// message (or answers a chosen reply to chosen recipients) and keeps what it
// was given, decoded enough to assert on the subject and the text.
//
// It speaks the subset of SMTP that real clients use to submit a message
// (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), offers no extensions (no
// STARTTLS, no AUTH) and listens on 127.0.0.1.
package smtptest

import (
	"bufio"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Mail is one message the sink accepted.
type Mail struct {
	// From and To are the envelope sender and recipients (MAIL FROM, RCPT TO).
	From string
	To   []string
	// Data is the message as received, dot-unstuffed.
	Data string
	// Header is the parsed header (nil if Data does not parse as a message).
	Header mail.Header
	// Subject is the decoded Subject header.
	Subject string
	// Text is the text/plain body (or first text/plain part), with its
	// transfer encoding undone and CRLF line ends turned into LF; empty if
	// there is none.
	Text string
}

// Sink is a running SMTP server. Its methods are safe for concurrent use.
type Sink struct {
	addr string

	mu    sync.Mutex
	mails []Mail
	rcpt  map[string]string // recipient -> reply to RCPT TO
	conns map[net.Conn]bool
	done  bool // the test ended: close new connections at once
}

// Start runs a sink until the test ends.
func Start(t testing.TB) *Sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	s := &Sink{addr: ln.Addr().String(), rcpt: map[string]string{}, conns: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		s.done = true
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.done {
				s.mu.Unlock()
				c.Close()
				continue
			}
			s.conns[c] = true
			s.mu.Unlock()
			wg.Go(func() {
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				s.serve(c)
			})
		}
	})
	return s
}

// Addr is the host:port the sink listens on.
func (s *Sink) Addr() string { return s.addr }

// Mails returns the messages accepted so far, oldest first.
func (s *Sink) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mails)
}

// ReplyToRcpt makes the sink answer reply (e.g. "550 5.1.1 no such user" or
// "451 4.3.0 try again later") to RCPT TO:<rcpt> instead of accepting it.
// An empty reply accepts the recipient again.
func (s *Sink) ReplyToRcpt(rcpt, reply string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reply == "" {
		delete(s.rcpt, rcpt)
		return
	}
	s.rcpt[rcpt] = reply
}

// WaitFor polls until a mail matches and returns the first that does. After
// timeout it fails the test, listing the mails it saw.
func (s *Sink) WaitFor(t testing.TB, match func(Mail) bool, timeout time.Duration) Mail {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		mails := s.Mails()
		if i := slices.IndexFunc(mails, match); i >= 0 {
			return mails[i]
		}
		if time.Now().After(deadline) {
			t.Fatalf("smtptest: no matching mail after %s; mails:\n%s", timeout, Describe(mails))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Describe renders mails for a test failure message.
func Describe(mails []Mail) string {
	if len(mails) == 0 {
		return "(none)"
	}
	var b strings.Builder
	for _, m := range mails {
		fmt.Fprintf(&b, "--- from %s to %v, subject %q\n%s\n", m.From, m.To, m.Subject, m.Text)
	}
	return b.String()
}

func (s *Sink) serve(c net.Conn) {
	// A client that stalls cannot hold the sink (or the test's cleanup) for long.
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	reply := func(line string) { fmt.Fprintf(c, "%s\r\n", line) }
	reply("220 smtptest ESMTP")
	var from string
	var rcpt []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			reply("250 smtptest")
		case "MAIL":
			from, rcpt = path(arg), nil
			reply("250 OK")
		case "RCPT":
			to := path(arg)
			s.mu.Lock()
			answer, refused := s.rcpt[to]
			s.mu.Unlock()
			if refused {
				reply(answer)
				continue
			}
			rcpt = append(rcpt, to)
			reply("250 OK")
		case "DATA":
			if len(rcpt) == 0 {
				reply("554 no valid recipients")
				continue
			}
			reply("354 end with <CRLF>.<CRLF>")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, ".")) // dot-unstuffing
			}
			m := parse(Mail{From: from, To: rcpt, Data: data.String()})
			s.mu.Lock()
			s.mails = append(s.mails, m)
			s.mu.Unlock()
			from, rcpt = "", nil
			reply("250 OK queued")
		case "RSET":
			from, rcpt = "", nil
			reply("250 OK")
		case "NOOP":
			reply("250 OK")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 not implemented")
		}
	}
}

// path returns the address of "FROM:<a@b> ..." or "TO:<a@b>".
func path(arg string) string {
	_, after, _ := strings.Cut(arg, "<")
	addr, _, _ := strings.Cut(after, ">")
	return addr
}

// parse fills in Header, Subject and Text from Data.
func parse(m Mail) Mail {
	msg, err := mail.ReadMessage(strings.NewReader(m.Data))
	if err != nil {
		return m
	}
	m.Header = msg.Header
	m.Subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		m.Subject = msg.Header.Get("Subject")
	}
	ct := msg.Header.Get("Content-Type")
	if ct == "" {
		ct = "text/plain" // RFC 2045's default
	}
	m.Text = strings.ReplaceAll(textPart(ct, msg.Header.Get("Content-Transfer-Encoding"), msg.Body), "\r\n", "\n")
	return m
}

func textPart(contentType, encoding string, body io.Reader) string {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return ""
			}
			if t := textPart(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); t != "" {
				return t
			}
		}
	}
	if mt != "text/plain" {
		return ""
	}
	if strings.EqualFold(encoding, "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, _ := io.ReadAll(body)
	return string(b)
}
