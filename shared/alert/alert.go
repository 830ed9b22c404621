// Package alert tells people when something needs them: a provider down, a
// backup at risk for too long, a non-empty dead-letter queue, a copy that
// failed its integrity check. Alerts go to an SNS topic and, optionally, a
// Slack-compatible webhook.
//
// Alerts are de-duplicated by incident: each has a key ("provider_down:gcs",
// "at_risk:<backupId>", "dlq_nonempty:<queue>",
// "integrity:<backupId>:<provider>") and lives as one DynamoDB item changed
// only by conditional writes. Raising an incident that is already open
// sends nothing; resolving an open one sends one recovery message, to the
// channels that were told about the incident. Delivery is recorded per
// channel, so a channel that failed is retried (Manager.Retry) without
// repeating the others, and a short claim keeps two processes from sending
// the same message at once.
//
// Every title and text passes through Sanitize before it leaves: no
// tokens, signatures, presigned URLs or webhook URLs in alerts.
package alert

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/wedsync/backup-replication/shared/replicate"
)

// Severity says how urgent an alert is.
type Severity string

// The severities.
const (
	Critical Severity = "critical"
	Warning  Severity = "warning"
	Info     Severity = "info"
)

// Alert is what a caller raises or resolves.
type Alert struct {
	// Key names the incident; the same key is the same incident.
	Key string
	// Severity defaults to Warning.
	Severity Severity
	// Title is one line, e.g. "provider gcs is down".
	Title string
	// Text says what happened and what is being done, for a person.
	Text string
}

// Phase is the moment a message reports.
type Phase string

// The phases of an incident.
const (
	PhaseOpen     Phase = "open"
	PhaseResolved Phase = "resolved"
)

// Message is what a Channel delivers: already sanitised.
type Message struct {
	Key      string
	Phase    Phase
	Severity Severity
	// Subject is a one-line ASCII summary of at most 100 characters (SNS's
	// limit), e.g. "[ws191-prod] PROBLEM: provider gcs is down".
	Subject string
	// Text is the full message.
	Text string
	// At is when the incident opened (PhaseOpen) or was resolved.
	At time.Time
}

// Channel delivers messages somewhere people read them.
type Channel interface {
	// Name identifies the channel in the incident record ("sns", "webhook").
	// Names must be unique within a Manager and stable across deployments.
	Name() string
	// Send delivers m once. Errors must not quote secrets (a webhook URL).
	Send(ctx context.Context, m Message) error
}

var (
	// Slack, Discord and similar webhooks carry their token in the path.
	webhookPath = regexp.MustCompile(`(?i)https?://[^\s"'/]*(hooks?\.slack\.com|discord(app)?\.com/api/webhooks|webhook\.office\.com)[^\s"']*`)
	// AWS access key ids.
	accessKeyID = regexp.MustCompile(`\b(AKIA|ASIA)[A-Z0-9]{16}\b`)
	// Presigned-URL query parameters, when a URL was cut before its '?'.
	amzParams = regexp.MustCompile(`(?i)X-Amz-(Signature|Credential|Security-Token)=[^\s&"']+`)
)

// Sanitize removes anything that looks like a credential from s: query
// strings of URLs (presigned and signed URLs), bearer tokens, JWTs,
// key=value secrets (replicate.Redact), webhook URLs, AWS access key ids and
// presigning parameters; and bounds its length.
func Sanitize(s string) string {
	s = webhookPath.ReplaceAllString(s, "REDACTED-WEBHOOK-URL")
	s = amzParams.ReplaceAllString(s, "X-Amz-$1=REDACTED")
	s = accessKeyID.ReplaceAllString(s, "REDACTED-KEY-ID")
	return replicate.Redact(s)
}

// subject builds an SNS-safe subject: printable ASCII, one line, at most
// 100 characters.
func subject(prefix string, phase Phase, title string) string {
	word := "PROBLEM"
	if phase == PhaseResolved {
		word = "RESOLVED"
	}
	s := word + ": " + title
	if prefix != "" {
		s = "[" + prefix + "] " + s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	if len(out) > 100 {
		out = out[:97] + "..."
	}
	return out
}

// compose builds the message of incident inc in its current phase.
func compose(prefix string, inc Incident) Message {
	m := Message{Key: inc.Key, Phase: PhaseOpen, Severity: inc.Severity, At: inc.OpenedAt}
	title, text := inc.Title, inc.Text
	var b strings.Builder
	if inc.State == PhaseResolved {
		m.Phase, m.At = PhaseResolved, inc.ResolvedAt
		title, text = inc.RecoveryTitle, inc.RecoveryText
		if title == "" {
			title = "resolved: " + inc.Title
		}
	}
	title, text = Sanitize(title), Sanitize(text)
	m.Subject = subject(prefix, m.Phase, title)
	b.WriteString(title)
	if text != "" {
		b.WriteString("\n\n" + text)
	}
	fmt.Fprintf(&b, "\n\nincident: %s\nseverity: %s\nopened: %s", Sanitize(inc.Key), inc.Severity, inc.OpenedAt.UTC().Format(time.RFC3339))
	if m.Phase == PhaseResolved {
		fmt.Fprintf(&b, "\nresolved: %s (after %s)", inc.ResolvedAt.UTC().Format(time.RFC3339),
			inc.ResolvedAt.Sub(inc.OpenedAt).Round(time.Second))
	}
	if prefix != "" {
		fmt.Fprintf(&b, "\nstage: %s", prefix)
	}
	m.Text = b.String()
	return m
}
