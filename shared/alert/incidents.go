package alert

// Incidents live in the health table (shared/health), one item each:
//
//	provider      S   Config.Partition ("_incident"): every incident shares it
//	at            S   the incident key, e.g. "provider_down:gcs"
//	version       N   raised by every write; every write is conditional on it
//	state         S   "open" or "resolved"
//	generation    N   raised each time the incident (re)opens
//	severity, title, text, recovery_title, recovery_text   S
//	opened_at, resolved_at   S   RFC 3339
//	delivered     SS  channels that have the current phase's message
//	done          BOOL  the current phase's message reached every channel it is for
//	claim_until   N   Unix ms: a process is sending until then
//	expires_at    N   Unix s (the table's TTL): resolved incidents expire
//
// Every write is a PutItem conditional on the version read (optimistic
// concurrency, as the catalog and the breakers do), so concurrent health
// runs agree on one open and one recovery per incident.
// IAM: dynamodb:GetItem, PutItem and Query on the table.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Defaults of Config.
const (
	DefaultPartitionKey = "provider"
	DefaultSortKey      = "at"
	DefaultPartition    = "_incident"
	DefaultTTLAttribute = "expires_at"
	DefaultResolvedTTL  = 30 * 24 * time.Hour
	DefaultClaimFor     = 30 * time.Second
)

// maxConflicts bounds the reread-and-retry loops.
const maxConflicts = 8

// errConflict says the item changed since it was read.
var errConflict = errors.New("alert: incident changed since it was read")

// Config says where incidents are kept and how messages are titled.
type Config struct {
	// Table holds the incidents: the health table. Required.
	Table string
	// PartitionKey and SortKey are the table's key attributes (both S);
	// default "provider" and "at", the health table's.
	PartitionKey, SortKey string
	// Partition is the partition key value of every incident item.
	Partition string
	// TTLAttribute is the table's TTL attribute (default "expires_at").
	TTLAttribute string
	// ResolvedTTL is how long a resolved incident is kept (default 30 days).
	ResolvedTTL time.Duration
	// ClaimFor bounds how long a process may hold an incident while it
	// sends (default 30s); after that another process may send.
	ClaimFor time.Duration
	// Stage prefixes subjects ("[ws191-prod] PROBLEM: …").
	Stage string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Table == "" {
		errs = append(errs, errors.New("alert: incidents table is empty (HEALTH_TABLE)"))
	}
	if c.ResolvedTTL < 0 || c.ClaimFor < 0 {
		errs = append(errs, errors.New("alert: ResolvedTTL and ClaimFor must not be negative"))
	}
	return errors.Join(errs...)
}

// Incident is one incident as stored.
type Incident struct {
	Key           string    `dynamodbav:"-"`
	Version       int64     `dynamodbav:"version"`
	State         Phase     `dynamodbav:"state"`
	Generation    int64     `dynamodbav:"generation"`
	Severity      Severity  `dynamodbav:"severity"`
	Title         string    `dynamodbav:"title"`
	Text          string    `dynamodbav:"text"`
	RecoveryTitle string    `dynamodbav:"recovery_title,omitempty"`
	RecoveryText  string    `dynamodbav:"recovery_text,omitempty"`
	OpenedAt      time.Time `dynamodbav:"opened_at"`
	ResolvedAt    time.Time `dynamodbav:"resolved_at,omitempty"`
	Delivered     []string  `dynamodbav:"delivered,stringset,omitempty"`
	Done          bool      `dynamodbav:"done,omitempty"`
	ClaimUntilMs  int64     `dynamodbav:"claim_until,omitempty"`
	ExpiresAt     int64     `dynamodbav:"-"`
}

// Manager raises and resolves incidents and delivers their messages. It
// is safe for concurrent use, and any number of processes may share the
// same table.
type Manager struct {
	db  *dynamodb.Client
	cfg Config
	chs []Channel
	log *slog.Logger
}

// New returns a Manager over db that delivers to channels (none: incidents
// are recorded and logged only).
func New(db *dynamodb.Client, cfg Config, channels []Channel, logger *slog.Logger) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("alert: nil DynamoDB client")
	}
	seen := map[string]bool{}
	for _, ch := range channels {
		if seen[ch.Name()] {
			return nil, fmt.Errorf("alert: two channels named %q", ch.Name())
		}
		seen[ch.Name()] = true
	}
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&cfg.PartitionKey, DefaultPartitionKey)
	def(&cfg.SortKey, DefaultSortKey)
	def(&cfg.Partition, DefaultPartition)
	def(&cfg.TTLAttribute, DefaultTTLAttribute)
	if cfg.ResolvedTTL == 0 {
		cfg.ResolvedTTL = DefaultResolvedTTL
	}
	if cfg.ClaimFor == 0 {
		cfg.ClaimFor = DefaultClaimFor
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{db: db, cfg: cfg, chs: channels, log: logger}, nil
}

// Raise opens incident a.Key and sends its message, unless it is open
// already (then it only finishes a delivery that failed before). opened
// reports whether this call opened it. A delivery failure is returned
// after the incident is recorded; Retry (or the next Raise) sends again.
func (m *Manager) Raise(ctx context.Context, a Alert) (opened bool, err error) {
	if a.Key == "" {
		return false, errors.New("alert: empty incident key")
	}
	if a.Severity == "" {
		a.Severity = Warning
	}
	for attempt := 0; ; attempt++ {
		cur, found, err := m.get(ctx, a.Key)
		if err != nil {
			return false, err
		}
		if found && cur.State == PhaseOpen {
			return false, m.deliver(ctx, cur)
		}
		inc := Incident{Key: a.Key, State: PhaseOpen, Generation: cur.Generation + 1, Severity: a.Severity,
			Title: Sanitize(a.Title), Text: Sanitize(a.Text), OpenedAt: m.cfg.Now().UTC()}
		inc, err = m.put(ctx, inc, cur.Version)
		if errors.Is(err, errConflict) && attempt+1 < maxConflicts {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("alert %s: open: %w", Sanitize(a.Key), err)
		}
		m.log.WarnContext(ctx, "incident opened", "op", "alert", "incident", Sanitize(a.Key), "severity", string(a.Severity),
			"title", inc.Title, "generation", inc.Generation)
		return true, m.deliver(ctx, inc)
	}
}

// Resolve closes incident key if it is open and sends the recovery
// message a (Key ignored) to the channels that had the incident's
// message. resolved reports whether this call closed it.
func (m *Manager) Resolve(ctx context.Context, key string, a Alert) (resolved bool, err error) {
	for attempt := 0; ; attempt++ {
		cur, found, err := m.get(ctx, key)
		if err != nil || !found || cur.State != PhaseOpen {
			return false, err
		}
		now := m.cfg.Now().UTC()
		inc := cur
		inc.State, inc.ResolvedAt, inc.RecoveryTitle, inc.RecoveryText = PhaseResolved, now, Sanitize(a.Title), Sanitize(a.Text)
		inc.ExpiresAt = now.Add(m.cfg.ResolvedTTL).Unix()
		// The recovery goes where the problem went: every other channel
		// counts as served already.
		inc.Delivered, inc.Done, inc.ClaimUntilMs = m.others(cur.Delivered), false, 0
		inc, err = m.put(ctx, inc, cur.Version)
		if errors.Is(err, errConflict) && attempt+1 < maxConflicts {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("alert %s: resolve: %w", Sanitize(key), err)
		}
		m.log.InfoContext(ctx, "incident resolved", "op", "alert", "incident", Sanitize(key), "generation", inc.Generation,
			"duration_ms", now.Sub(cur.OpenedAt).Milliseconds())
		return true, m.deliver(ctx, inc)
	}
}

// Open lists the open incidents whose key starts with prefix ("" for all).
func (m *Manager) Open(ctx context.Context, prefix string) ([]Incident, error) {
	return m.query(ctx, prefix, "#state = :open", map[string]types.AttributeValue{":open": str(string(PhaseOpen))})
}

// Retry sends every message that has not reached all its channels yet
// (open or resolved), and returns how many incidents it tried.
func (m *Manager) Retry(ctx context.Context) (int, error) {
	incs, err := m.query(ctx, "", "attribute_not_exists(#done)", nil)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, inc := range incs {
		errs = append(errs, m.deliver(ctx, inc))
	}
	return len(incs), errors.Join(errs...)
}

// others returns the names of the channels not in names.
func (m *Manager) others(names []string) []string {
	var out []string
	for _, ch := range m.chs {
		if !slices.Contains(names, ch.Name()) {
			out = append(out, ch.Name())
		}
	}
	return out
}

// deliver sends inc's current message to the channels that lack it, under
// a claim so that no other process sends it at the same time.
func (m *Manager) deliver(ctx context.Context, inc Incident) error {
	if inc.Done {
		return nil
	}
	var missing []Channel
	for _, ch := range m.chs {
		if !slices.Contains(inc.Delivered, ch.Name()) {
			missing = append(missing, ch)
		}
	}
	now := m.cfg.Now()
	if len(missing) > 0 {
		if inc.ClaimUntilMs > now.UnixMilli() {
			return nil // another process is sending
		}
		claimed := inc
		claimed.ClaimUntilMs = now.Add(m.cfg.ClaimFor).UnixMilli()
		written, err := m.put(ctx, claimed, inc.Version)
		if errors.Is(err, errConflict) {
			return nil // another process claimed it, or the incident moved on
		}
		if err != nil {
			return fmt.Errorf("alert %s: claim: %w", Sanitize(inc.Key), err)
		}
		inc = written
	}
	msg := compose(m.cfg.Stage, inc)
	var sent []string
	var errs []error
	for _, ch := range missing {
		if err := ch.Send(ctx, msg); err != nil {
			errs = append(errs, fmt.Errorf("alert %s: channel %s: %s", Sanitize(inc.Key), ch.Name(), Sanitize(err.Error())))
			m.log.WarnContext(ctx, "alert not delivered", "op", "alert", "incident", Sanitize(inc.Key), "channel", ch.Name(),
				"phase", string(msg.Phase), "error", Sanitize(err.Error()))
			continue
		}
		sent = append(sent, ch.Name())
		m.log.InfoContext(ctx, "alert delivered", "op", "alert", "incident", Sanitize(inc.Key), "channel", ch.Name(),
			"phase", string(msg.Phase))
	}
	if err := m.recordDelivery(ctx, inc, sent, len(errs) == 0); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// recordDelivery adds sent to the incident's delivered channels and
// releases the claim, if the incident is still in the phase inc was.
func (m *Manager) recordDelivery(ctx context.Context, inc Incident, sent []string, done bool) error {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			cur, found, err := m.get(ctx, inc.Key)
			if err != nil || !found || cur.State != inc.State || cur.Generation != inc.Generation {
				return err
			}
			inc = cur
		}
		next := inc
		next.Delivered = append(slices.Clone(inc.Delivered), sent...)
		slices.Sort(next.Delivered)
		next.Delivered = slices.Compact(next.Delivered)
		next.Done, next.ClaimUntilMs = done, 0
		_, err := m.put(ctx, next, inc.Version)
		if !errors.Is(err, errConflict) || attempt+1 >= maxConflicts {
			if err != nil {
				return fmt.Errorf("alert %s: record delivery: %w", Sanitize(inc.Key), err)
			}
			return nil
		}
	}
}
