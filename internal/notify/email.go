package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"time"
)

// SMTP TLS modes (SMTPConfig.TLS).
const (
	// TLSOpportunistic (the default; "" means the same) upgrades with
	// STARTTLS when the server offers it and sends in clear otherwise.
	TLSOpportunistic = "opportunistic"
	// TLSStartTLS requires STARTTLS: a server that does not offer it is an
	// error.
	TLSStartTLS = "starttls"
	// TLSNone never upgrades, e.g. for a local relay or test sink.
	TLSNone = "none"
)

// DefaultSMTPTimeout bounds a whole SMTP session when SMTPConfig.Timeout is
// zero (and the context has no earlier deadline).
const DefaultSMTPTimeout = 30 * time.Second

// SMTPConfig says how to reach the SMTP server that relays Beacon's mail.
type SMTPConfig struct {
	// Addr is the server's host:port, e.g. "mailpit:1025" or "smtp.example.com:587".
	Addr string
	// From is the sender: a bare address or one with a display name
	// ("Beacon <beacon@example.com>").
	From string
	// Username and Password, if Username is set, authenticate with AUTH
	// PLAIN. net/smtp only sends them over TLS or to localhost.
	Username string
	Password string
	// Timeout bounds one Send; zero means DefaultSMTPTimeout.
	Timeout time.Duration
	// TLS is TLSOpportunistic (or empty), TLSStartTLS or TLSNone.
	TLS string
}

// Email sends messages as plain-text mail through one SMTP server, one SMTP
// session per message. It is safe for concurrent use.
type Email struct {
	cfg  SMTPConfig
	host string // Addr's host: TLS server name and AUTH's expected server
	from *mail.Address
	// now is the clock for the Date header.
	now func() time.Time
	// tlsConfig, if set, is used for STARTTLS (tests trust their own CA).
	tlsConfig *tls.Config
}

// NewEmail validates cfg and returns a sender.
func NewEmail(cfg SMTPConfig) (*Email, error) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("notify: SMTP address %q: want host:port", cfg.Addr)
	}
	if err := checkHeaderValue("SMTP from address", cfg.From); err != nil {
		return nil, err
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("notify: SMTP from address %q: %w", cfg.From, err)
	}
	if err := ValidAddress(from.Address); err != nil {
		return nil, fmt.Errorf("notify: SMTP from address: %w", err)
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = TLSOpportunistic
	case TLSOpportunistic, TLSStartTLS, TLSNone:
	default:
		return nil, fmt.Errorf("notify: SMTP TLS mode %q: want %q, %q or %q", cfg.TLS, TLSOpportunistic, TLSStartTLS, TLSNone)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("notify: negative SMTP timeout %s", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultSMTPTimeout
	}
	return &Email{cfg: cfg, host: host, from: from, now: time.Now}, nil
}

// maxAddressLen is the longest forward path SMTP allows (RFC 5321 4.5.3.1.3).
const maxAddressLen = 254

// ValidAddress reports whether s is an e-mail address Beacon can send to: a
// bare addr-spec ("alice@example.com", no display name, no surrounding
// spaces), ASCII only (internationalised addresses need SMTPUTF8, which not
// every relay offers), at most 254 characters.
func ValidAddress(s string) error {
	if s == "" {
		return errors.New("empty e-mail address")
	}
	if len(s) > maxAddressLen {
		return fmt.Errorf("e-mail address longer than %d characters", maxAddressLen)
	}
	for _, r := range s {
		if r < 0x21 || r > 0x7e {
			return errors.New("e-mail address with a space, control or non-ASCII character")
		}
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return fmt.Errorf("invalid e-mail address: %w", err)
	}
	if a.Name != "" || a.Address != s {
		return errors.New("want a bare e-mail address such as alice@example.com")
	}
	return nil
}

// Send mails m to the address to. The error matches IsPermanent for an
// invalid address or message, a 5xx reply and a TLS or authentication setup
// the server cannot satisfy; network errors, timeouts and 4xx replies are
// worth retrying.
func (e *Email) Send(ctx context.Context, to string, m Message) error {
	if err := ValidAddress(to); err != nil {
		return permanent(fmt.Errorf("email: %w", err))
	}
	msg, err := e.message(to, m)
	if err != nil {
		return fmt.Errorf("email: %w", err)
	}
	if err := e.send(ctx, to, msg); err != nil {
		return fmt.Errorf("email via %s: %w", e.cfg.Addr, err)
	}
	return nil
}

func (e *Email) send(ctx context.Context, to string, msg []byte) error {
	deadline := time.Now().Add(e.cfg.Timeout)
	ctxDeadline := false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, ctxDeadline = d, true
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", e.cfg.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	// net/smtp has no context: the deadline bounds every read and write, and
	// a cancellation moves it to now, which fails the call in progress.
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	err = e.session(conn, to, msg)
	// The I/O error only says "i/o timeout"; say why.
	switch {
	case err == nil:
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w (%w)", err, context.Cause(ctx))
	case errors.Is(err, os.ErrDeadlineExceeded) && ctxDeadline:
		return fmt.Errorf("%w (%w)", err, context.DeadlineExceeded)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w (SMTP timeout %s)", err, e.cfg.Timeout)
	}
	return err
}

func (e *Email) session(conn net.Conn, to string, msg []byte) error {
	c, err := smtp.NewClient(conn, e.host)
	if err != nil {
		return classify(err)
	}
	defer c.Close()
	// Extension sends EHLO first (as "localhost", which relays ignore).
	if e.cfg.TLS != TLSNone {
		if ok, _ := c.Extension("STARTTLS"); ok {
			cfg := &tls.Config{ServerName: e.host, MinVersion: tls.VersionTLS12}
			if e.tlsConfig != nil {
				cfg = e.tlsConfig.Clone()
			}
			if err := c.StartTLS(cfg); err != nil {
				return classify(fmt.Errorf("STARTTLS: %w", err))
			}
		} else if e.cfg.TLS == TLSStartTLS {
			return permanentf("the server does not offer STARTTLS, which is required")
		}
	}
	if e.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return permanentf("the server does not offer AUTH, but a username is configured")
		}
		if err := c.Auth(smtp.PlainAuth("", e.cfg.Username, e.cfg.Password, e.host)); err != nil {
			var tpErr *textproto.Error
			if !errors.As(err, &tpErr) {
				// net/smtp refusing to send the password in clear.
				return permanentf("AUTH: %w", err)
			}
			return classify(fmt.Errorf("AUTH: %w", err))
		}
	}
	if err := c.Mail(e.from.Address); err != nil {
		return classify(fmt.Errorf("MAIL FROM: %w", err))
	}
	if err := c.Rcpt(to); err != nil {
		return classify(fmt.Errorf("RCPT TO: %w", err))
	}
	w, err := c.Data()
	if err != nil {
		return classify(fmt.Errorf("DATA: %w", err))
	}
	if _, err := w.Write(msg); err != nil {
		return classify(err)
	}
	if err := w.Close(); err != nil {
		return classify(fmt.Errorf("DATA: %w", err))
	}
	// The message is accepted; a failing QUIT changes nothing.
	_ = c.Quit()
	return nil
}

// classify marks 5xx SMTP replies permanent; 4xx replies (the server's "try
// again later") and network errors stay retryable.
func classify(err error) error {
	var tpErr *textproto.Error
	if errors.As(err, &tpErr) && tpErr.Code >= 500 && tpErr.Code < 600 {
		return permanent(err)
	}
	return err
}

// message renders m as an RFC 5322 message with CRLF line endings.
func (e *Email) message(to string, m Message) ([]byte, error) {
	for _, h := range []struct{ name, v string }{{"subject", m.Subject}, {"event", m.Event}, {"delivery id", m.ID}} {
		if err := checkHeaderValue(h.name, h.v); err != nil {
			return nil, err
		}
	}
	msgID, err := e.messageID(m.ID)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("Date", e.now().Format(time.RFC1123Z))
	header("Message-ID", msgID)
	header("From", e.from.String())
	header("To", to)
	header("Subject", fold(mime.QEncoding.Encode("utf-8", m.Subject), len("Subject: ")))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	// RFC 3834: no vacation auto-replies to notifications.
	header("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(m.Text)); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// foldAt is the line length RFC 5322 recommends (2.1.1); a line must not
// exceed 998 characters, which a long subject would without folding.
const foldAt = 78

// fold breaks a header value into lines of at most foldAt characters where
// it can: before a space, which unfolding keeps (RFC 5322 2.2.3). Only a
// single space between two words is a fold point, because common parsers
// (net/textproto among them) collapse the whitespace around a fold. used is
// what the line already holds ("Subject: ").
func fold(v string, used int) string {
	var b strings.Builder
	n := used
	prev := ""
	for i, word := range strings.Split(v, " ") {
		if i > 0 {
			if n+1+len(word) > foldAt && prev != "" && word != "" {
				b.WriteString("\r\n")
				n = 0
			}
			b.WriteByte(' ')
			n++
		}
		b.WriteString(word)
		n += len(word)
		prev = word
	}
	return b.String()
}

// messageID derives the Message-ID from the delivery id, so that a retried
// delivery carries the same one and mail systems can drop the duplicate; a
// message without id gets a random one. The id is hashed because
// Message-ID allows fewer characters than an id may hold.
func (e *Email) messageID(id string) (string, error) {
	var left string
	if id != "" {
		sum := sha256.Sum256([]byte(id))
		left = hex.EncodeToString(sum[:16])
	} else {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		left = hex.EncodeToString(b)
	}
	_, domain, _ := strings.Cut(e.from.Address, "@")
	return "<" + left + "@" + domain + ">", nil
}
