package notify_test

import (
	"context"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/notify"
	"github.com/beaconhq/beacon/internal/notify/smtptest"
)

func newEmail(t *testing.T, cfg notify.SMTPConfig) *notify.Email {
	t.Helper()
	e, err := notify.NewEmail(cfg)
	require.NoError(t, err)
	return e
}

func TestEmailDelivers(t *testing.T) {
	t.Parallel()
	sink := smtptest.Start(t)
	e := newEmail(t, notify.SMTPConfig{Addr: sink.Addr(), From: "Beacon <beacon@localhost>"})

	text := "Monitor « Café API » is down since 10:00 UTC.\n" +
		"A line longer than seventy-six characters, which quoted-printable must wrap with a soft line break.\n" +
		"=equals= and trailing space \n" +
		".a line starting with a dot\n"
	m := notify.Message{Event: "incident.opened", ID: "dlv_42", Subject: "[Beacon] Café API is down ✗", Text: text}
	require.NoError(t, e.Send(t.Context(), "alice@example.com", m))

	got := sink.WaitFor(t, func(m smtptest.Mail) bool { return true }, 30*time.Second)
	require.Equal(t, "beacon@localhost", got.From)
	require.Equal(t, []string{"alice@example.com"}, got.To)
	require.Equal(t, "[Beacon] Café API is down ✗", got.Subject)
	require.Equal(t, text, got.Text)

	h := got.Header
	require.NotNil(t, h, "unparsable message:\n%s", got.Data)
	require.Equal(t, `"Beacon" <beacon@localhost>`, h.Get("From"))
	require.Equal(t, "alice@example.com", h.Get("To"))
	require.Equal(t, "1.0", h.Get("MIME-Version"))
	require.Equal(t, "text/plain; charset=utf-8", h.Get("Content-Type"))
	require.Equal(t, "quoted-printable", h.Get("Content-Transfer-Encoding"))
	require.Equal(t, "auto-generated", h.Get("Auto-Submitted"))
	require.Regexp(t, `^<[0-9a-f]{32}@localhost>$`, h.Get("Message-ID"))
	date, err := h.Date()
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), date, time.Hour) // a sanity check on the format, not a timing
	// On the wire: a Q-encoded subject, 7-bit lines no longer than 76 characters.
	require.Contains(t, got.Data, "Subject: =?utf-8?q?")
	for line := range strings.Lines(got.Data) {
		line = strings.TrimRight(line, "\r\n")
		require.LessOrEqual(t, len(line), 78, "line %q", line)
		for _, r := range line {
			require.Less(t, r, rune(0x80), "8-bit character on the wire: %q", line)
		}
	}

	// A retry of the same delivery carries the same Message-ID; another delivery does not.
	require.NoError(t, e.Send(t.Context(), "alice@example.com", m))
	m.ID = "dlv_43"
	require.NoError(t, e.Send(t.Context(), "alice@example.com", m))
	mails := sink.Mails()
	require.Len(t, mails, 3)
	require.Equal(t, h.Get("Message-ID"), mails[1].Header.Get("Message-ID"))
	require.NotEqual(t, h.Get("Message-ID"), mails[2].Header.Get("Message-ID"))
}

func TestEmailASCIISubjectIsNotEncoded(t *testing.T) {
	t.Parallel()
	sink := smtptest.Start(t)
	e := newEmail(t, notify.SMTPConfig{Addr: sink.Addr(), From: "beacon@localhost"})
	require.NoError(t, e.Send(t.Context(), "bob@example.com", notify.Message{Subject: "[Beacon] API is up", Text: "ok"}))
	got := sink.WaitFor(t, func(m smtptest.Mail) bool { return true }, 30*time.Second)
	require.Contains(t, got.Data, "Subject: [Beacon] API is up\r\n")
	require.Equal(t, "<beacon@localhost>", got.Header.Get("From"))
	require.Equal(t, "ok\n", got.Text, "SMTP ends the message with a line break")
}

func TestEmailFoldsLongSubjects(t *testing.T) {
	t.Parallel()
	sink := smtptest.Start(t)
	e := newEmail(t, notify.SMTPConfig{Addr: sink.Addr(), From: "beacon@localhost"})
	for _, subject := range []string{
		strings.Repeat("Monitor  down ", 60), // double spaces survive
		strings.Repeat("Moniteur « Café » en panne ", 60),
		strings.Repeat("x", 300), // no space to fold at: one long line, still under 998
	} {
		subject = strings.TrimSpace(subject) // header parsers trim
		require.NoError(t, e.Send(t.Context(), "alice@example.com", notify.Message{Subject: subject, Text: "t"}))
		got := sink.WaitFor(t, func(m smtptest.Mail) bool { return m.Subject == subject }, 30*time.Second)
		for line := range strings.Lines(got.Data) {
			line = strings.TrimRight(line, "\r\n")
			if strings.HasPrefix(subject, "x") {
				require.LessOrEqual(t, len(line), 998, "line %q", line)
				continue
			}
			// A word may push a line past 78, not much further.
			require.LessOrEqual(t, len(line), 78+len("Moniteur"), "line %q", line)
		}
	}
}

func TestEmailSMTPReplies(t *testing.T) {
	t.Parallel()
	sink := smtptest.Start(t)
	sink.ReplyToRcpt("gone@example.com", "550 5.1.1 no such user")
	sink.ReplyToRcpt("busy@example.com", "451 4.3.0 try again later")
	e := newEmail(t, notify.SMTPConfig{Addr: sink.Addr(), From: "beacon@localhost"})
	m := notify.Message{Subject: "s", Text: "t"}

	err := e.Send(t.Context(), "gone@example.com", m)
	require.Error(t, err)
	require.True(t, notify.IsPermanent(err), "5xx is permanent: %v", err)
	require.Contains(t, err.Error(), "RCPT TO: 550")
	require.Contains(t, err.Error(), "no such user")

	err = e.Send(t.Context(), "busy@example.com", m)
	require.Error(t, err)
	require.False(t, notify.IsPermanent(err), "4xx is worth retrying: %v", err)
	require.Contains(t, err.Error(), "RCPT TO: 451")

	require.Empty(t, sink.Mails())
}

func TestEmailRefusesHeaderInjection(t *testing.T) {
	t.Parallel()
	sink := smtptest.Start(t)
	e := newEmail(t, notify.SMTPConfig{Addr: sink.Addr(), From: "beacon@localhost"})
	for _, m := range []notify.Message{
		{Subject: "down\r\nBcc: everyone@example.com", Text: "x"},
		{Subject: "down\nBcc: everyone@example.com", Text: "x"},
		{Subject: "down", ID: "1\r\nBcc: everyone@example.com", Text: "x"},
	} {
		err := e.Send(t.Context(), "alice@example.com", m)
		require.True(t, notify.IsPermanent(err), "%+v: %v", m, err)
		require.Contains(t, err.Error(), "contains a line break")
	}
	for _, to := range []string{"alice@example.com\r\nBcc: everyone@example.com", "alice@example.com>\r\nRCPT TO:<x@example.com", "Alice <alice@example.com>"} {
		err := e.Send(t.Context(), to, notify.Message{Subject: "s", Text: "x"})
		require.True(t, notify.IsPermanent(err), "%q: %v", to, err)
	}
	require.Empty(t, sink.Mails())
}

func TestEmailHonoursTheDeadline(t *testing.T) {
	t.Parallel()
	// A server that accepts and never greets.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		select {
		case c := <-accepted:
			c.Close()
		default:
		}
	})

	e := newEmail(t, notify.SMTPConfig{Addr: ln.Addr().String(), From: "beacon@localhost", Password: "pa55word", Username: "beacon"})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err = e.Send(ctx, "alice@example.com", notify.Message{Subject: "s", Text: "t"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.False(t, notify.IsPermanent(err), "%v", err)
	require.NotContains(t, err.Error(), "pa55word")
}

func TestEmailServerDownIsRetryable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	e := newEmail(t, notify.SMTPConfig{Addr: addr, From: "beacon@localhost"})
	err = e.Send(t.Context(), "alice@example.com", notify.Message{Subject: "s", Text: "t"})
	require.Error(t, err)
	require.False(t, notify.IsPermanent(err), "%v", err)
}

func TestEmailServerCapabilities(t *testing.T) {
	t.Parallel()
	// The sink offers neither STARTTLS nor AUTH.
	sink := smtptest.Start(t)

	e := newEmail(t, notify.SMTPConfig{Addr: sink.Addr(), From: "beacon@localhost", TLS: notify.TLSStartTLS})
	err := e.Send(t.Context(), "alice@example.com", notify.Message{Subject: "s", Text: "t"})
	require.True(t, notify.IsPermanent(err), "%v", err)
	require.Contains(t, err.Error(), "does not offer STARTTLS")

	e = newEmail(t, notify.SMTPConfig{Addr: sink.Addr(), From: "beacon@localhost", Username: "beacon", Password: "pa55word"})
	err = e.Send(t.Context(), "alice@example.com", notify.Message{Subject: "s", Text: "t"})
	require.True(t, notify.IsPermanent(err), "%v", err)
	require.Contains(t, err.Error(), "does not offer AUTH")
	require.NotContains(t, err.Error(), "pa55word")

	// Opportunistic (the default) and none send in clear to a server without STARTTLS.
	for _, mode := range []string{"", notify.TLSOpportunistic, notify.TLSNone} {
		e = newEmail(t, notify.SMTPConfig{Addr: sink.Addr(), From: "beacon@localhost", TLS: mode})
		require.NoError(t, e.Send(t.Context(), "alice@example.com", notify.Message{Subject: mode, Text: "t"}), mode)
	}
	require.Len(t, sink.Mails(), 3)
}

func TestNewEmailValidates(t *testing.T) {
	t.Parallel()
	for _, cfg := range []notify.SMTPConfig{
		{Addr: "", From: "beacon@localhost"},
		{Addr: "mailpit", From: "beacon@localhost"},
		{Addr: ":1025", From: "beacon@localhost"},
		{Addr: "mailpit:1025", From: ""},
		{Addr: "mailpit:1025", From: "beacon"},
		{Addr: "mailpit:1025", From: "beacon@localhost\r\nBcc: x@example.com"},
		{Addr: "mailpit:1025", From: "beacon@localhost", TLS: "tls"},
		{Addr: "mailpit:1025", From: "beacon@localhost", Timeout: -time.Second},
	} {
		_, err := notify.NewEmail(cfg)
		require.Error(t, err, "%+v", cfg)
	}
	_, err := notify.NewEmail(notify.SMTPConfig{Addr: "mailpit:1025", From: "Beacon <beacon@localhost>", TLS: "none"})
	require.NoError(t, err)
}

func TestValidAddress(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{
		"alice@example.com", "a.b+tag@sub.example.org", "beacon@localhost", "x@[192.0.2.1]",
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + ".example.com",
	} {
		require.NoError(t, notify.ValidAddress(ok), ok)
	}
	for _, bad := range []string{
		"", "alice", "alice@", "@example.com", "Alice <alice@example.com>", "<alice@example.com>",
		" alice@example.com", "alice@example.com ", "alice@example.com\r\nBcc: x@example.com",
		"alice@example.com,bob@example.com", "a b@example.com", "élise@example.com", "alice@exämple.com",
		strings.Repeat("a", 250) + "@example.com",
	} {
		require.Error(t, notify.ValidAddress(bad), "%q", bad)
	}
	// What ValidAddress accepts, net/mail reads back unchanged.
	a, err := mail.ParseAddress("a.b+tag@sub.example.org")
	require.NoError(t, err)
	require.Equal(t, "a.b+tag@sub.example.org", a.Address)
}
