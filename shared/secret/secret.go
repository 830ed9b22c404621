// Package secret holds the type for credentials in configuration: a string
// that never prints itself, so a logged or marshalled Config shows
// "**redacted**" where the value would be (restic's habit).
package secret

import "log/slog"

// Redacted is what a Secret prints instead of its value.
const Redacted = "**redacted**"

// Secret is a credential. Its String, GoString, LogValue and MarshalText
// all give Redacted (an empty Secret prints as ""); call Reveal to use it.
type Secret string

// Reveal returns the value, for the one call that needs it.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether no value is set.
func (s Secret) IsZero() bool { return s == "" }

// String redacts the value (fmt's %s and %v).
func (s Secret) String() string { return s.shown() }

// GoString redacts the value (fmt's %#v).
func (s Secret) GoString() string { return s.shown() }

// LogValue redacts the value in slog records.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.shown()) }

// MarshalText redacts the value in JSON and other text encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.shown()), nil }

func (s Secret) shown() string {
	if s == "" {
		return ""
	}
	return Redacted
}
