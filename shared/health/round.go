package health

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wedsync/backup-replication/shared/alert"
	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/metrics"
	"github.com/wedsync/backup-replication/shared/publish"
	"github.com/wedsync/backup-replication/shared/storage"
)

// RoundReport is what one round saw.
type RoundReport struct {
	At        time.Time       `json:"at"`
	Providers []ProviderRound `json:"providers"`
}

// ProviderRound is one provider in a round.
type ProviderRound struct {
	Provider  string `json:"provider"`
	ProbeOK   bool   `json:"probeOk"`
	ProbeKind string `json:"probeKind,omitempty"`
	LatencyMs int64  `json:"latencyMs"`
	State     string `json:"state"`
	// Transition is "went_down", "came_up" or empty.
	Transition string `json:"transition,omitempty"`
	// Recovery is set when the round redrove and reconciled the provider.
	Recovery *RecoveryReport `json:"recovery,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// RecoveryReport is the work done when a provider came back.
type RecoveryReport struct {
	// Redriven is the dead letters moved back (-1: an SQS move task was
	// started and moves them by itself).
	Redriven  int             `json:"redriven"`
	Reconcile ReconcileReport `json:"reconcile"`
}

// recoveryStatuses are the backups a recovered provider may owe a copy:
// with a standby, backups made during the outage can be PROTECTED and
// still lack the recovered provider's copy (backfill).
var recoveryStatuses = []catalog.Status{catalog.StatusAtRisk, catalog.StatusReplicating, catalog.StatusProtected}

// Round probes every provider at once (a stalled provider must not delay
// the others' probes), updates their status, history and alerts, and does
// the recovery work of providers that came back.
func (h *Handler) Round(ctx context.Context) RoundReport {
	rep := RoundReport{At: h.d.Now().UTC(), Providers: make([]ProviderRound, len(h.cfg.Providers))}
	var wg sync.WaitGroup
	for i, name := range h.cfg.Providers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep.Providers[i] = h.roundFor(ctx, name, rep.At)
		}()
	}
	wg.Wait()
	return rep
}

func (h *Handler) roundFor(ctx context.Context, name string, at time.Time) ProviderRound {
	log := h.log.With("provider", name)
	res := h.probe(ctx, name)
	out := ProviderRound{Provider: name, ProbeOK: res.OK, ProbeKind: res.Kind, LatencyMs: ms(res.Latency), State: StateUnknown}
	var snap *breaker.Snapshot
	if b := h.d.Breakers[name]; b != nil {
		if s, err := b.State(ctx); err == nil {
			snap = &s
		} else {
			log.WarnContext(ctx, "breaker state unreadable", "op", "breaker", "error", err.Error())
		}
	}
	st, tr, err := h.record(ctx, name, Observation{Probe: res, Breaker: snap, At: at})
	m := metrics.Measurement{Provider: name, Operation: "probe", Count: 1, Duration: res.Latency}
	if !res.OK {
		m.Errors = 1
	}
	h.d.Metrics.Emit(m)
	if err != nil {
		out.Error = err.Error()
		log.ErrorContext(ctx, "provider status not recorded", "op", "health", "error", err.Error())
		return out
	}
	out.State = st.State
	attrs := []any{"op", "probe", "duration_ms", ms(res.Latency), "ok", res.OK, "state", st.State, "breaker", st.Breaker}
	if !res.OK {
		attrs = append(attrs, "step", res.Step, "kind", res.Kind, "error", st.LastError)
	}
	switch tr {
	case WentDown:
		out.Transition = "went_down"
		log.WarnContext(ctx, "provider down", attrs...)
	case CameUp:
		out.Transition = "came_up"
		log.InfoContext(ctx, "provider up again", attrs...)
	default:
		log.InfoContext(ctx, "probe", attrs...)
	}
	if err := h.d.Store.AddHistory(ctx, HistoryRecord{Provider: name, At: at, OK: res.OK, Step: res.Step, Kind: res.Kind,
		Error: st.LastError, LatencyMs: ms(res.Latency), State: st.State, Breaker: st.Breaker}, h.cfg.HistoryTTL); err != nil {
		log.WarnContext(ctx, "probe history not recorded", "op", "health", "error", err.Error())
	}
	if err := h.providerAlert(ctx, st); err != nil {
		log.WarnContext(ctx, "provider alert", "op", "alert", "error", err.Error())
	}
	h.pushStatus(ctx, st, tr, res.Latency)
	if !st.Down && st.RecoveryPending {
		rr, err := h.recover(ctx, name)
		out.Recovery = &rr
		if err != nil {
			out.Error = err.Error()
			log.WarnContext(ctx, "recovery unfinished; retried next round", "op", "recover", "error", err.Error())
		}
	}
	return out
}

// probe runs the canary through the provider's breaker when the breaker
// lets it (so a good probe can close a half-open breaker and bad ones count
// toward opening it), and straight to the provider when it does not: the
// health function must learn whether a provider whose breaker is open has
// come back.
func (h *Handler) probe(ctx context.Context, name string) storage.ProbeResult {
	pctx, cancel := context.WithTimeout(ctx, h.cfg.ProbeTimeout)
	defer cancel()
	var done func(error)
	if b := h.d.Breakers[name]; b != nil {
		if d, err := b.Allow(pctx); err == nil {
			done = d
		}
	}
	res, err := storage.Probe(pctx, h.d.Providers[name])
	if err != nil && res.Kind == "" {
		res.Kind = storage.KindOf(err).String()
	}
	if done != nil {
		done(err)
	}
	return res
}

// record folds obs into the stored status with a conditional write,
// rereading on conflict (another invocation's round).
func (h *Handler) record(ctx context.Context, name string, obs Observation) (ProviderStatus, Transition, error) {
	for attempt := 0; ; attempt++ {
		prev, err := h.d.Store.LoadStatus(ctx, name)
		if err != nil {
			return ProviderStatus{}, NoChange, err
		}
		next, tr := Assess(prev, obs, h.th)
		next.Provider = name
		saved, err := h.d.Store.SaveStatus(ctx, next, prev.Version)
		if errors.Is(err, ErrConflict) && attempt < 4 {
			continue
		}
		return saved, tr, err
	}
}

// providerAlert keeps the provider_down incident in step with st: raised
// while down (sent once), resolved when up (one recovery message).
func (h *Handler) providerAlert(ctx context.Context, st ProviderStatus) error {
	if h.d.Alerts == nil {
		return nil
	}
	key := "provider_down:" + st.Provider
	if st.Down {
		text := st.Detail
		if st.LastError != "" {
			text += fmt.Sprintf("\nlast error (%s, %s): %s", st.LastErrorStep, st.LastErrorKind, st.LastError)
		}
		text += "\nCopies to " + st.Provider + " wait in its queue and resume when it recovers; nothing is dropped."
		_, err := h.d.Alerts.Raise(ctx, alert.Alert{Key: key, Severity: alert.Critical,
			Title: "provider " + st.Provider + " is down", Text: text})
		return err
	}
	_, err := h.d.Alerts.Resolve(ctx, key, alert.Alert{Title: "provider " + st.Provider + " is back up",
		Text: fmt.Sprintf("%d good canaries in a row (latest %d ms). Its dead letters are redriven and missing copies queued again.",
			st.ConsecutiveSuccesses, st.LatencyMs)})
	return err
}

// recover redrives name's dead-letter queue and reconciles its copies,
// then clears RecoveryPending. On error the flag stays and the next
// round tries again.
func (h *Handler) recover(ctx context.Context, name string) (RecoveryReport, error) {
	var rep RecoveryReport
	var errs []error
	if q, ok := h.cfg.Queues[name]; ok && h.d.Queues != nil && q.DLQURL != "" && q.URL != "" {
		n, err := h.redrive(ctx, q)
		rep.Redriven = n
		errs = append(errs, err)
	}
	rr, err := h.reconcile(ctx, []string{name}, recoveryStatuses)
	rep.Reconcile = rr
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return rep, err
	}
	h.log.InfoContext(ctx, "recovery done", "provider", name, "op", "recover", "redriven", rep.Redriven,
		"queued", rr.Queued, "repaired", rr.Repaired)
	for attempt := 0; attempt < 5; attempt++ {
		st, err := h.d.Store.LoadStatus(ctx, name)
		if err != nil {
			return rep, err
		}
		if st.Down || !st.RecoveryPending {
			return rep, nil
		}
		st.RecoveryPending = false
		if _, err = h.d.Store.SaveStatus(ctx, st, st.Version); !errors.Is(err, ErrConflict) {
			return rep, err
		}
	}
	return rep, ErrConflict
}

// pushStatus sends the provider's status to the dashboard's subscribers,
// and an alert message when it went down or came back up.
func (h *Handler) pushStatus(ctx context.Context, st ProviderStatus, tr Transition, latency time.Duration) {
	if h.d.Live == nil {
		return
	}
	state := st.State
	if st.Down {
		state = StateDown
	}
	h.d.Live.ProviderHealth(ctx, publish.ProviderHealth{Provider: st.Provider, State: state, Breaker: st.Breaker,
		Latency: latency, LastError: st.LastError, At: st.CheckedAt})
	switch tr {
	case WentDown:
		h.d.Live.Alert(ctx, publish.Alert{Severity: string(alert.Critical), Provider: st.Provider,
			Text: "provider " + st.Provider + " is down; its copies wait in its queue", At: st.CheckedAt})
	case CameUp:
		h.d.Live.Alert(ctx, publish.Alert{Severity: string(alert.Info), Provider: st.Provider,
			Text: "provider " + st.Provider + " is back up", At: st.CheckedAt})
	}
}
