package smtptest_test

import (
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/beaconhq/beacon/internal/notify/smtptest"
)

func TestSinkKeepsMultipartMail(t *testing.T) {
	t.Parallel()
	sink := smtptest.Start(t)
	msg := strings.ReplaceAll(`From: am@example.com
To: oncall@example.com
Subject: =?UTF-8?q?[PAGE]_Caf=C3=A9?=
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=XX

--XX
Content-Type: text/html; charset=UTF-8

<p>html</p>
--XX
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

.leading dot, caf=C3=A9
--XX--
`, "\n", "\r\n")
	require.NoError(t, smtp.SendMail(sink.Addr(), nil, "am@example.com", []string{"oncall@example.com", "ops@example.com"}, []byte(msg)))

	got := sink.WaitFor(t, func(m smtptest.Mail) bool { return strings.HasPrefix(m.Subject, "[PAGE]") }, 30*time.Second)
	require.Equal(t, "am@example.com", got.From)
	require.Equal(t, []string{"oncall@example.com", "ops@example.com"}, got.To)
	require.Equal(t, "[PAGE] Café", got.Subject)
	require.Equal(t, ".leading dot, café", got.Text)
	require.Equal(t, "oncall@example.com", got.Header.Get("To"))
	require.Equal(t, msg, got.Data)
}

func TestSinkRepliesToChosenRecipients(t *testing.T) {
	t.Parallel()
	sink := smtptest.Start(t)
	sink.ReplyToRcpt("gone@example.com", "550 5.1.1 no such user")
	err := smtp.SendMail(sink.Addr(), nil, "a@example.com", []string{"gone@example.com"}, []byte("Subject: x\r\n\r\nx\r\n"))
	require.ErrorContains(t, err, "550")

	sink.ReplyToRcpt("gone@example.com", "")
	require.NoError(t, smtp.SendMail(sink.Addr(), nil, "a@example.com", []string{"gone@example.com"}, []byte("Subject: x\r\n\r\nx\r\n")))
	require.Len(t, sink.Mails(), 1)
}
