package rotate_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/uuid"

	"github.com/wedsync/backup-replication/shared/credentials"
	"github.com/wedsync/backup-replication/shared/rotate"
	"github.com/wedsync/backup-replication/shared/secret"
	"github.com/wedsync/backup-replication/shared/storage"
	"github.com/wedsync/backup-replication/shared/storage/gcs"
)

// TestS3Rotation: Drive makes a new access key current; the old key stays
// valid as AWSPREVIOUS until the next rotation, which deletes it.
func TestS3Rotation(t *testing.T) {
	r := newS3Rotation(t, rotate.HandlerConfig{})
	ctx := t.Context()
	if _, err := rotate.Drive(ctx, r.w.SM, r.h, r.arn); err != nil {
		t.Fatal(err)
	}
	cur, err := credentials.ParseS3(r.w.Value(r.arn, credentials.StageCurrent))
	if err != nil || cur.AccessKeyID == r.key1.AccessKeyID {
		t.Fatalf("AWSCURRENT after rotation: %+v, %v; want a new key", cur, err)
	}
	if prev, _ := credentials.ParseS3(r.w.Value(r.arn, credentials.StagePrevious)); prev.AccessKeyID != r.key1.AccessKeyID {
		t.Fatalf("AWSPREVIOUS = %s, want the old key %s", prev.AccessKeyID, r.key1.AccessKeyID)
	}
	if err := r.works(cur); err != nil {
		t.Fatalf("the new key does not work: %v", err)
	}
	if err := r.works(r.key1); err != nil {
		t.Fatalf("the previous key should stay valid until the next rotation: %v", err)
	}
	if _, err := rotate.Drive(ctx, r.w.SM, r.h, r.arn); err != nil {
		t.Fatal(err)
	}
	third, _ := credentials.ParseS3(r.w.Value(r.arn, credentials.StageCurrent))
	if got, want := r.w.Keys(r.user), sorted(cur.AccessKeyID, third.AccessKeyID); !slices.Equal(got, want) {
		t.Fatalf("after a second rotation the user has keys %v, want %v (current and previous)", got, want)
	}
	if err := r.works(r.key1); storage.KindOf(err) != storage.Unauthorized {
		t.Fatalf("the key before last: %v, want it refused (deleted)", err)
	}
}

// TestS3RetireImmediately: with RetireImmediately the old key is deleted
// by finishSecret.
func TestS3RetireImmediately(t *testing.T) {
	r := newS3Rotation(t, rotate.HandlerConfig{RetireImmediately: true})
	if _, err := rotate.Drive(t.Context(), r.w.SM, r.h, r.arn); err != nil {
		t.Fatal(err)
	}
	cur, _ := credentials.ParseS3(r.w.Value(r.arn, credentials.StageCurrent))
	if got := r.w.Keys(r.user); !slices.Equal(got, []string{cur.AccessKeyID}) {
		t.Fatalf("keys %v, want only the new one", got)
	}
	if err := r.works(r.key1); storage.KindOf(err) != storage.Unauthorized {
		t.Fatalf("old key: %v, want refused", err)
	}
}

// TestStepsAreIdempotent: every step run twice with one token does its
// work once: one new key, one pending version, one move of AWSCURRENT.
func TestStepsAreIdempotent(t *testing.T) {
	r := newS3Rotation(t, rotate.HandlerConfig{})
	ctx := t.Context()
	token := uuid.NewString()
	for _, step := range rotate.Steps {
		for range 2 {
			if err := r.h.Handle(ctx, rotate.Event{Step: step, SecretID: r.arn, ClientRequestToken: token}); err != nil {
				t.Fatalf("%s: %v", step, err)
			}
		}
		if step == rotate.StepCreate {
			if n := len(r.w.Keys(r.user)); n != 2 {
				t.Fatalf("after createSecret twice the user has %d keys, want 2", n)
			}
		}
	}
	st := r.w.Stages(r.arn)
	if !hasStage(st, token, credentials.StageCurrent) || len(st) != 2 {
		t.Fatalf("versions after the steps: %v; want the token's version current and the old one previous", st)
	}
}

// TestInterruptedRotationResumes: a rotation that stopped after
// createSecret is resumed by the next Drive with the same token and key.
func TestInterruptedRotationResumes(t *testing.T) {
	r := newS3Rotation(t, rotate.HandlerConfig{})
	ctx := t.Context()
	token := uuid.NewString()
	if err := r.h.Handle(ctx, rotate.Event{Step: rotate.StepCreate, SecretID: r.arn, ClientRequestToken: token}); err != nil {
		t.Fatal(err)
	}
	pending := r.w.Value(r.arn, credentials.StagePending)
	got, err := rotate.Drive(ctx, r.w.SM, r.h, r.arn)
	if err != nil || got != token {
		t.Fatalf("Drive = %s, %v; want it to resume token %s", got, err, token)
	}
	if r.w.Value(r.arn, credentials.StageCurrent) != pending {
		t.Fatal("the resumed rotation did not promote the key createSecret had made")
	}
	if n := len(r.w.Keys(r.user)); n != 2 {
		t.Fatalf("the user has %d keys, want 2 (no orphan)", n)
	}
}

// TestWrongUserDeletesNothing: a rotator configured with a user that does
// not own the secret's key refuses to delete that user's keys.
func TestWrongUserDeletesNothing(t *testing.T) {
	r := newS3Rotation(t, rotate.HandlerConfig{})
	other, _ := r.w.User(r.bucket)
	rot, err := rotate.NewS3(rotate.S3Config{UserName: other, Provider: r.pcfg, Probing: quick}, r.w.IAM, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := rotate.New(r.w.SM, map[string]rotate.Rotator{r.arn: rot}, rotate.HandlerConfig{}, nil)
	before := r.w.Keys(other)
	if _, err := rotate.Drive(t.Context(), r.w.SM, h, r.arn); err == nil || !strings.Contains(err.Error(), "S3_REPLICATION_USER") {
		t.Fatalf("Drive with the wrong user: %v, want an error naming S3_REPLICATION_USER", err)
	}
	if after := r.w.Keys(other); !slices.Equal(before, after) {
		t.Fatalf("the other user's keys changed: %v -> %v", before, after)
	}
	if r.w.Value(r.arn, credentials.StageCurrent) != r.key1.Secret() {
		t.Fatal("AWSCURRENT changed although the rotation failed")
	}
}

// TestGCSRotation: a new service-account key through the IAM API becomes
// current; the old key stays until the next rotation, which deletes it.
func TestGCSRotation(t *testing.T) {
	w := newWorld(t)
	g := newGoogleSide(t)
	ctx := t.Context()
	arn := w.Secret(secret.Secret(g.key1))
	old := g.g.Keys(g.sa)
	h, _ := rotate.New(w.SM, map[string]rotate.Rotator{arn: g.rotator()}, rotate.HandlerConfig{}, nil)
	if _, err := rotate.Drive(ctx, w.SM, h, arn); err != nil {
		t.Fatal(err)
	}
	cur, err := credentials.ParseGCS(w.Value(arn, credentials.StageCurrent))
	if err != nil || slices.Contains(old, cur.PrivateKeyID) || cur.ClientEmail != g.sa {
		t.Fatalf("AWSCURRENT after rotation: key %s of %s (%v); old keys %v", cur.PrivateKeyID, cur.ClientEmail, err, old)
	}
	if got := g.g.Keys(g.sa); len(got) != 2 {
		t.Fatalf("keys after one rotation: %v, want current and previous", got)
	}
	if _, err := rotate.Drive(ctx, w.SM, h, arn); err != nil {
		t.Fatal(err)
	}
	third, _ := credentials.ParseGCS(w.Value(arn, credentials.StageCurrent))
	if got, want := g.g.Keys(g.sa), sorted(cur.PrivateKeyID, third.PrivateKeyID); !slices.Equal(got, want) {
		t.Fatalf("keys after a second rotation: %v, want %v", got, want)
	}
	cfg := g.pcfg
	cfg.CredentialsJSON = secret.Secret(g.key1)
	p, err := gcs.New(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storage.Probe(ctx, p); storage.KindOf(err) != storage.Unauthorized {
		t.Fatalf("the first key after two rotations: %v, want refused", err)
	}
}

// TestSupabaseNeedsAStagedKey: with no key staged, the rotation fails at
// createSecret saying why, and nothing changes.
func TestSupabaseNeedsAStagedKey(t *testing.T) {
	w := newWorld(t)
	s := newSupabaseSide(t)
	arn := w.Secret(s.creds(s.emu.ServiceKey).Secret())
	h, _ := rotate.New(w.SM, map[string]rotate.Rotator{arn: rotate.NewSupabase(rotate.SupabaseConfig{Provider: s.pcfg, Probing: quick}, nil)},
		rotate.HandlerConfig{}, nil)
	_, err := rotate.Drive(t.Context(), w.SM, h, arn)
	if !errors.Is(err, rotate.ErrNoStagedKey) {
		t.Fatalf("Drive without a staged key: %v, want ErrNoStagedKey", err)
	}
	if len(w.Stages(arn)) != 1 {
		t.Fatalf("versions changed: %v", w.Stages(arn))
	}
}

// TestSupabaseStagedKey: an operator's new key, staged as AWSPENDING,
// is validated, tested and promoted; a staged key the project does not
// accept fails testSecret and is not promoted.
func TestSupabaseStagedKey(t *testing.T) {
	w := newWorld(t)
	s := newSupabaseSide(t)
	ctx := t.Context()
	arn := w.Secret(s.creds(s.emu.ServiceKey).Secret())
	h, _ := rotate.New(w.SM, map[string]rotate.Rotator{arn: rotate.NewSupabase(rotate.SupabaseConfig{Provider: s.pcfg, Probing: quick}, nil)},
		rotate.HandlerConfig{}, nil)

	unknown := "not-a-key-the-project-knows"
	stage(t, w, arn, credentials.SupabaseCreds{ServiceKey: secret.Secret(unknown)}.Secret())
	if _, err := rotate.Drive(ctx, w.SM, h, arn); err == nil || !strings.Contains(err.Error(), rotate.StepTest) {
		t.Fatalf("Drive with a key the project refuses: %v, want testSecret to fail", err)
	}
	if w.Value(arn, credentials.StageCurrent) != s.creds(s.emu.ServiceKey).Secret() {
		t.Fatal("a refused key was promoted")
	}

	key := s.newKey(48 * time.Hour)
	stage(t, w, arn, credentials.SupabaseCreds{ServiceKey: secret.Secret(key)}.Secret())
	if _, err := rotate.Drive(ctx, w.SM, h, arn); err != nil {
		t.Fatal(err)
	}
	if got, err := credentials.ParseSupabase(w.Value(arn, credentials.StageCurrent)); err != nil || got.ServiceKey.Reveal() != key {
		t.Fatalf("AWSCURRENT is not the staged key (%v)", err)
	}
}

// stage puts value as AWSPENDING, as an operator would with
// aws secretsmanager put-secret-value --version-stages AWSPENDING.
func stage(t *testing.T, w *world, arn string, value secret.Secret) {
	t.Helper()
	if _, err := w.SM.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(arn),
		SecretString: aws.String(value.Reveal()), VersionStages: []string{credentials.StagePending}}); err != nil {
		t.Fatal(err)
	}
}

// TestEventsOfTheRepository: the events/rotate-*.json files decode into
// valid events; a secret with no rotator is an error, not a panic.
func TestEventsOfTheRepository(t *testing.T) {
	files, _ := filepath.Glob("../../events/rotate-*.json")
	if len(files) != 4 {
		t.Fatalf("found %d rotate events, want 4", len(files))
	}
	w := newWorld(t)
	h, _ := rotate.New(w.SM, map[string]rotate.Rotator{"unrelated": rotate.NewSupabase(rotate.SupabaseConfig{}, nil)}, rotate.HandlerConfig{}, nil)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var ev rotate.Event
		if err := json.Unmarshal(b, &ev); err != nil || rotate.ValidateEvent(ev) != nil {
			t.Fatalf("%s: %v / %v", f, err, rotate.ValidateEvent(ev))
		}
		if err := h.Handle(t.Context(), ev); err == nil {
			t.Fatalf("%s: a secret that does not exist was handled without error", f)
		}
	}
}

func sorted(ids ...string) []string {
	slices.Sort(ids)
	return ids
}
