package tests

import (
	"debug/elf"
	"fmt"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	cfdynamodb "github.com/awslabs/goformation/v7/cloudformation/dynamodb"
	cflogs "github.com/awslabs/goformation/v7/cloudformation/logs"
	cfs3 "github.com/awslabs/goformation/v7/cloudformation/s3"
	cfsqs "github.com/awslabs/goformation/v7/cloudformation/sqs"

	"github.com/wedsync/backup-replication/infra/local/samtemplate"
	"github.com/wedsync/backup-replication/shared/api"
	"github.com/wedsync/backup-replication/shared/breaker"
	"github.com/wedsync/backup-replication/shared/catalog"
	"github.com/wedsync/backup-replication/shared/config"
	"github.com/wedsync/backup-replication/shared/health"
	"github.com/wedsync/backup-replication/shared/keys"
	"github.com/wedsync/backup-replication/shared/rotate"
	"github.com/wedsync/backup-replication/shared/ws"
)

// TestTemplateLint runs cfn-lint, as `make lint` and CI do.
func TestTemplateLint(t *testing.T) {
	bin := requireTool(t, "cfn-lint")
	cmd := exec.Command(bin, "template.yaml")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cfn-lint template.yaml: %v\n%s", err, out)
	}
}

// TestSAMBuildTargets builds every function the way `sam build` does
// (make build-<LogicalId> ARTIFACTS_DIR=…) and checks that a static
// linux/arm64 executable named bootstrap comes out.
func TestSAMBuildTargets(t *testing.T) {
	tpl := loadTemplate(t)
	root := repoRoot(t)
	for _, id := range tpl.FunctionIDs() {
		t.Run(id, func(t *testing.T) {
			dir, ok := functionDir(t, id)
			if !ok {
				t.Skipf("functions/%s does not exist yet; template.yaml declares %s ahead of it", dir, id)
			}
			out := t.TempDir()
			cmd := exec.Command("make", "-s", "build-"+id, "ARTIFACTS_DIR="+out)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("make build-%s: %v\n%s", id, err, b)
			}
			f, err := elf.Open(filepath.Join(out, "bootstrap"))
			if err != nil {
				t.Fatalf("bootstrap is not an ELF executable: %v", err)
			}
			defer f.Close()
			if f.Machine != elf.EM_AARCH64 || f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC {
				t.Errorf("bootstrap is %v %v %v, want EM_AARCH64 ELFCLASS64 ET_EXEC (linux/arm64)", f.Machine, f.Class, f.Type)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("bootstrap asks for a dynamic loader; provided.al2023 needs a static binary (CGO_ENABLED=0)")
				}
			}
		})
	}
}

// TestTemplateFunctions checks what every function must share: the build
// rule, the runtime, its own role and a log group with retention.
func TestTemplateFunctions(t *testing.T) {
	tpl := loadTemplate(t)
	want := []string{"ApiFunction", "HealthFunction", "ReplicateGcsFunction", "ReplicateS3Function",
		"ReplicateSupabaseFunction", "RotateFunction", "SealFunction", "WsFunction"}
	if got := tpl.FunctionIDs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("functions = %v, want %v (the Makefile's SAM targets)", got, want)
	}
	roles := map[string]string{}
	groups := map[string]int{}
	for _, id := range tpl.IDs("AWS::Logs::LogGroup") {
		lg := tpl.Resources[id].(*cflogs.LogGroup)
		if lg.RetentionInDays == nil || *lg.RetentionInDays <= 0 {
			t.Errorf("log group %s keeps logs forever: set RetentionInDays", id)
		}
		if lg.LogGroupName != nil {
			groups[*lg.LogGroupName] = *lg.RetentionInDays
		}
	}
	for _, id := range want {
		f := tpl.Functions[id]
		if f.Runtime != "provided.al2023" || f.Handler != "bootstrap" || !reflect.DeepEqual(f.Architectures, []string{"arm64"}) {
			t.Errorf("%s: runtime %q handler %q architectures %v, want provided.al2023, bootstrap, [arm64]", id, f.Runtime, f.Handler, f.Architectures)
		}
		if f.BuildMethod != "makefile" || f.CodeURI != "." {
			t.Errorf("%s: Metadata.BuildMethod %q CodeUri %q, want makefile and .", id, f.BuildMethod, f.CodeURI)
		}
		if f.Role == "" {
			t.Errorf("%s has no explicit Role: SAM would generate one with managed policies that use Resource \"*\"", id)
		} else if other, dup := roles[f.Role]; dup {
			t.Errorf("%s and %s share a role; each function gets its own least-privilege role", id, other)
		}
		roles[f.Role] = id
		if _, ok := groups["/aws/lambda/"+f.Name]; !ok {
			t.Errorf("%s (%s) has no log group /aws/lambda/%s with retention", id, f.Name, f.Name)
		}
	}
	for _, raw := range tpl.Raw {
		if strings.Contains(string(raw), `"Policies"`) && strings.Contains(string(raw), `AWS::Serverless::Function`) {
			t.Errorf("a function uses SAM Policies; give it an explicit role instead")
		}
	}
}

// TestTemplateFanOut checks the landing bucket, the upload → seal rule,
// queue and dead-letter queue, and the per-provider sealed object → rule →
// queue → dead-letter queue → replicate chain: plaintext uploads reach the
// seal function only, providers receive sealed objects only.
func TestTemplateFanOut(t *testing.T) {
	tpl := loadTemplate(t)
	b, ok := tpl.Resources["LandingBucket"].(*cfs3.Bucket)
	if !ok {
		t.Fatal("no LandingBucket")
	}
	if b.NotificationConfiguration == nil || b.NotificationConfiguration.EventBridgeConfiguration == nil ||
		!b.NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled {
		t.Error("landing bucket does not send events to EventBridge")
	}
	pab := b.PublicAccessBlockConfiguration
	if pab == nil || !isTrue(pab.BlockPublicAcls) || !isTrue(pab.BlockPublicPolicy) || !isTrue(pab.IgnorePublicAcls) || !isTrue(pab.RestrictPublicBuckets) {
		t.Error("landing bucket does not block every kind of public access")
	}
	if b.BucketEncryption == nil || len(b.BucketEncryption.ServerSideEncryptionConfiguration) == 0 ||
		b.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm != "aws:kms" {
		t.Error("landing bucket is not encrypted with SSE-KMS")
	}
	abort := false
	if b.LifecycleConfiguration != nil {
		for _, r := range b.LifecycleConfiguration.Rules {
			abort = abort || (r.Status == "Enabled" && r.AbortIncompleteMultipartUpload != nil)
		}
	}
	if !abort {
		t.Error("landing bucket keeps incomplete multipart uploads forever")
	}
	if pol := string(tpl.Raw["LandingBucketPolicy"]); !strings.Contains(pol, "aws:SecureTransport") || !strings.Contains(pol, `"Deny"`) {
		t.Error("landing bucket policy does not deny requests without TLS")
	}

	// Every rule on the landing bucket: backups/ (plaintext) goes to the
	// seal queue alone, sealed/ to the replicate queues.
	for _, id := range tpl.IDs("AWS::Events::Rule") {
		rule := string(tpl.Raw[id])
		switch {
		case strings.Contains(rule, `"backups/"`) && id != "SealRule":
			t.Errorf("%s routes plaintext uploads (backups/) elsewhere than the seal queue", id)
		case strings.Contains(rule, `"sealed/"`) && !strings.HasPrefix(id, "Replicate"):
			t.Errorf("%s routes sealed objects elsewhere than a replicate queue", id)
		}
	}
	sealFn := tpl.Functions["SealFunction"]
	if len(sealFn.SQS) != 1 || !sealFn.SQS[0].ReportBatchItemFailures {
		t.Errorf("SealFunction: SQS events %+v, want one with ReportBatchItemFailures", sealFn.SQS)
	} else if qid, ok := tpl.LogicalIDByArn(sealFn.SQS[0].QueueArn); !ok || qid != "SealQueue" {
		t.Errorf("SealFunction reads %s, want SealQueue", qid)
	} else {
		q := tpl.Resources[qid].(*cfsqs.Queue)
		if q.VisibilityTimeout == nil || float64(*q.VisibilityTimeout) < 6*sealFn.Timeout.Seconds() {
			t.Errorf("SealQueue: VisibilityTimeout %v < 6 × the function timeout %v", q.VisibilityTimeout, sealFn.Timeout)
		}
		rp, _ := q.RedrivePolicy.(map[string]any)
		if dlq, _ := rp["deadLetterTargetArn"].(string); dlq != tpl.Attr("SealDLQ", "Arn") {
			t.Errorf("SealQueue: dead-letter target %q, want SealDLQ", dlq)
		}
		rule := string(tpl.Raw["SealRule"])
		for _, want := range []string{`"aws.s3"`, `"Object Created"`, `"backups/"`, tpl.Ref("LandingBucket"), tpl.Attr("SealQueue", "Arn")} {
			if !strings.Contains(rule, want) {
				t.Errorf("SealRule does not mention %s", want)
			}
		}
		qp := string(tpl.Raw["SealQueuePolicy"])
		if !strings.Contains(qp, "events.amazonaws.com") || !strings.Contains(qp, tpl.Attr("SealRule", "Arn")) {
			t.Errorf("SealQueuePolicy does not limit senders to EventBridge and its rule")
		}
	}

	for _, p := range []string{"Supabase", "S3", "Gcs"} {
		fn := tpl.Functions["Replicate"+p+"Function"]
		if len(fn.SQS) != 1 {
			t.Errorf("Replicate%sFunction: %d SQS events, want 1", p, len(fn.SQS))
			continue
		}
		ev := fn.SQS[0]
		if !ev.ReportBatchItemFailures {
			t.Errorf("Replicate%sFunction: FunctionResponseTypes lacks ReportBatchItemFailures", p)
		}
		if want := strings.ToLower(p); fn.Env["PROVIDER"] != want {
			t.Errorf("Replicate%sFunction: PROVIDER=%q, want %q", p, fn.Env["PROVIDER"], want)
		}
		qid, ok := tpl.LogicalIDByArn(ev.QueueArn)
		if qid != "Replicate"+p+"Queue" || !ok {
			t.Errorf("Replicate%sFunction reads %s, want its own queue", p, qid)
			continue
		}
		q := tpl.Resources[qid].(*cfsqs.Queue)
		if q.VisibilityTimeout == nil || float64(*q.VisibilityTimeout) < 6*fn.Timeout.Seconds() {
			t.Errorf("%s: VisibilityTimeout %v < 6 × the function timeout %v", qid, q.VisibilityTimeout, fn.Timeout)
		}
		rp, _ := q.RedrivePolicy.(map[string]any)
		if dlq, _ := rp["deadLetterTargetArn"].(string); dlq != tpl.Attr("Replicate"+p+"DLQ", "Arn") {
			t.Errorf("%s: dead-letter target %q, want its DLQ", qid, dlq)
		}
		rule := string(tpl.Raw["Replicate"+p+"Rule"])
		for _, want := range []string{`"aws.s3"`, `"Object Created"`, `"sealed/"`, tpl.Ref("LandingBucket"), tpl.Attr(qid, "Arn")} {
			if !strings.Contains(rule, want) {
				t.Errorf("Replicate%sRule does not mention %s", p, want)
			}
		}
		qp := string(tpl.Raw["Replicate"+p+"QueuePolicy"])
		if !strings.Contains(qp, "events.amazonaws.com") || !strings.Contains(qp, tpl.Attr("Replicate"+p+"Rule", "Arn")) {
			t.Errorf("Replicate%sQueuePolicy does not limit senders to EventBridge and its rule", p)
		}
	}
	if h := tpl.Functions["HealthFunction"]; len(h.Schedules) != 1 || h.Schedules[0].Expression != "rate(1 minute)" {
		t.Errorf("HealthFunction schedules = %+v, want rate(1 minute)", h.Schedules)
	}
}

// TestTemplateTablesMatchCatalog checks that the deployed tables are the
// ones the catalog's code queries: same keys, same indexes.
func TestTemplateTablesMatchCatalog(t *testing.T) {
	tpl := loadTemplate(t)
	for id, in := range map[string]shape{
		"BackupsTable":     tableShape(catalog.BackupsTableInput("x").KeySchema, catalog.BackupsTableInput("x").GlobalSecondaryIndexes),
		"ReplicasTable":    tableShape(catalog.ReplicasTableInput("x").KeySchema, nil),
		"BreakersTable":    {Keys: []string{breaker.KeyName + ":HASH"}, Indexes: map[string][]string{}},
		"HealthTable":      {Keys: []string{health.KeyProvider + ":HASH", health.KeyAt + ":RANGE"}, Indexes: map[string][]string{}},
		"ConnectionsTable": tableShape(ws.TableInput("x").KeySchema, ws.TableInput("x").GlobalSecondaryIndexes),
		"KeysTable":        tableShape(keys.TableInput("x").KeySchema, nil),
	} {
		tb := tpl.Resources[id].(*cfdynamodb.Table)
		got := cfTableShape(tb)
		if !reflect.DeepEqual(got, in) {
			t.Errorf("%s = %+v, catalog expects %+v", id, got, in)
		}
	}
	for _, id := range tpl.IDs("AWS::DynamoDB::Table") {
		tb := tpl.Resources[id].(*cfdynamodb.Table)
		if tb.BillingMode == nil || *tb.BillingMode != "PAY_PER_REQUEST" {
			t.Errorf("%s is not on-demand (PAY_PER_REQUEST)", id)
		}
		if tb.PointInTimeRecoverySpecification == nil || !isTrue(tb.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled) {
			t.Errorf("%s has no point-in-time recovery", id)
		}
	}
	for _, id := range []string{"HealthTable", "ConnectionsTable"} {
		tb := tpl.Resources[id].(*cfdynamodb.Table)
		if tb.TimeToLiveSpecification == nil || !tb.TimeToLiveSpecification.Enabled {
			t.Errorf("%s has no TTL", id)
		}
	}
	// Losing the keys table loses every sealed backup.
	kt := tpl.Resources["KeysTable"].(*cfdynamodb.Table)
	if kt.PointInTimeRecoverySpecification == nil || !isTrue(kt.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled) ||
		!isTrue(kt.DeletionProtectionEnabled) || kt.SSESpecification == nil || !kt.SSESpecification.SSEEnabled ||
		kt.TimeToLiveSpecification != nil {
		t.Error("KeysTable needs point-in-time recovery, deletion protection and SSE, and no TTL")
	}
	var policies struct{ DeletionPolicy, UpdateReplacePolicy string }
	if err := jsonUnmarshal(tpl.Raw["KeysTable"], &policies); err != nil || policies.DeletionPolicy != "Retain" || policies.UpdateReplacePolicy != "Retain" {
		t.Errorf("KeysTable is not retained when the stack (or the resource) goes: %+v %v", policies, err)
	}
}

// TestTemplateRoutesMatchAPI checks that every route the API serves is
// routed to it by the HTTP API (a missing one would 404 in production).
func TestTemplateRoutesMatchAPI(t *testing.T) {
	tpl := loadTemplate(t)
	routed := map[string]bool{}
	for _, e := range tpl.Functions["ApiFunction"].HTTP {
		routed[strings.ToUpper(e.Method)+" "+e.Path] = true
	}
	served := map[string]bool{}
	for _, r := range api.Routes() {
		k := r.Method + " " + r.Path
		served[k] = true
		if !routed[k] {
			t.Errorf("the API serves %s but template.yaml does not route it", k)
		}
	}
	var extra []string
	for k := range routed {
		if !served[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Logf("routed ahead of the handler (it answers 404 until it serves them): %v", extra)
	}
}

// starOnlyActions are AWS actions that accept no narrower resource than
// "*"; a statement granting only these may use Resource "*". None is used
// today: add one here only with the AWS documentation page that says so.
var starOnlyActions = map[string]bool{}

// TestTemplateLeastPrivilege checks every function role: no wildcard
// action, no Resource "*" or other account-, region- or type-wide ARN
// (KMS keys chosen by alias or tag condition aside), no managed policies,
// only Lambda may assume it; the landing bucket is reachable only under
// backups/ and sealed/, and each replicate function reads only its own
// queue. Resource policies allow only the principals they must.
func TestTemplateLeastPrivilege(t *testing.T) {
	tpl := loadTemplate(t)
	landing := tpl.Attr("LandingBucket", "Arn")
	landingPrefixes := map[string]bool{landing + "/backups/*": true, landing + "/sealed/*": true}
	for id, r := range roles(t) {
		if len(r.ManagedPolicyArns) > 0 {
			t.Errorf("%s: managed policies %v (their scope is not ours to narrow)", id, r.ManagedPolicyArns)
		}
		if !strings.Contains(jsonText(r.AssumeRolePolicyDocument), `"lambda.amazonaws.com"`) || strings.Count(jsonText(r.AssumeRolePolicyDocument), "Principal") != 1 {
			t.Errorf("%s: trust policy must name lambda.amazonaws.com only: %s", id, jsonText(r.AssumeRolePolicyDocument))
		}
		for _, p := range r.Policies {
			for i, st := range statements(p.PolicyDocument) {
				where := fmt.Sprintf("%s/%s statement %d (%v)", id, p.PolicyName, i, st["Sid"])
				if st["Effect"] != "Allow" {
					continue
				}
				if st["NotAction"] != nil || st["NotResource"] != nil {
					t.Errorf("%s: NotAction/NotResource grant everything else", where)
				}
				actions, resources := texts(st["Action"]), texts(st["Resource"])
				starOnly := len(actions) > 0
				for _, a := range actions {
					if strings.Contains(a, "*") {
						t.Errorf("%s: wildcard action %q", where, a)
					}
					starOnly = starOnly && starOnlyActions[a]
				}
				if len(resources) == 0 {
					t.Errorf("%s: no Resource (an unresolved reference?)", where)
				}
				for _, res := range resources {
					if broadARN(res) && !starOnly && !keysByCondition(tpl, st, res) {
						t.Errorf("%s: resource %q is wider than one bucket/table/queue/secret/log group", where, res)
					}
					if strings.HasPrefix(res, landing) && !landingPrefixes[res] {
						t.Errorf("%s: landing bucket access %q; only backups/* and sealed/* are needed", where, res)
					}
				}
				if strings.HasPrefix(id, "Replicate") && hasPrefixAny(actions, "sqs:") {
					own := tpl.Attr(strings.TrimSuffix(id, "Role")+"Queue", "Arn")
					if !reflect.DeepEqual(resources, []string{own}) {
						t.Errorf("%s: SQS access to %v; a replicate function reads only its own queue %s", where, resources, own)
					}
				}
			}
		}
	}
	for _, id := range append(tpl.IDs("AWS::SQS::QueuePolicy"), tpl.IDs("AWS::S3::BucketPolicy")...) {
		var doc struct{ Properties struct{ PolicyDocument any } }
		if err := jsonUnmarshal(tpl.Raw[id], &doc); err != nil {
			t.Fatal(err)
		}
		for i, st := range statements(doc.Properties.PolicyDocument) {
			if st["Effect"] == "Allow" && (jsonText(st["Principal"]) == `"*"` || st["Condition"] == nil) {
				t.Errorf("%s statement %d allows %s without a condition", id, i, jsonText(st["Principal"]))
			}
		}
	}
	// The key policies' one broad statement is AWS's documented default:
	// the account administers the key through IAM (the roles above).
	for _, id := range []string{"LandingKey", "OrgKey"} {
		var key struct {
			Properties struct {
				KeyPolicy         any
				EnableKeyRotation bool
			}
		}
		if err := jsonUnmarshal(tpl.Raw[id], &key); err != nil {
			t.Fatal(err)
		}
		if !key.Properties.EnableKeyRotation {
			t.Errorf("%s does not rotate", id)
		}
		for _, st := range statements(key.Properties.KeyPolicy) {
			if st["Sid"] != "AccountAdministersThroughIam" || !strings.HasSuffix(jsonText(st["Principal"]), `:root"}`) {
				t.Errorf("%s key policy: unexpected statement %s", id, jsonText(st))
			}
		}
	}
}

// keysByCondition reports whether res is "every KMS key of this account
// and region" narrowed by the statement's condition to the keys behind
// an alias prefix (kms:ResourceAliases) or carrying a tag
// (aws:ResourceTag/…): the way IAM selects keys by alias or tag.
func keysByCondition(tpl *samtemplate.Template, st map[string]any, res string) bool {
	all := fmt.Sprintf("arn:aws:kms:%s:%s:key/*", tpl.Ref("AWS::Region"), tpl.Ref("AWS::AccountId"))
	cond := jsonText(st["Condition"])
	return res == all && (strings.Contains(cond, `"kms:ResourceAliases"`) || strings.Contains(cond, `"aws:ResourceTag/`))
}

// TestTemplateOnlySealSeesPlaintext: providers only ever hold ciphertext,
// so a replicate function reads only sealed objects, cannot decrypt with
// any organisation's key (its only kms:Decrypt is the landing bucket's
// and the alert topic's at-rest keys) and cannot touch the keys table;
// the seal function alone may make data keys.
func TestTemplateOnlySealSeesPlaintext(t *testing.T) {
	tpl := loadTemplate(t)
	landing := tpl.Attr("LandingBucket", "Arn")
	atRest := map[string]bool{tpl.Attr("LandingKey", "Arn"): true, tpl.Attr("AlertKey", "Arn"): true}
	keysTable := tpl.Attr("KeysTable", "Arn")
	for id, r := range roles(t) {
		for _, p := range r.Policies {
			for _, st := range statements(p.PolicyDocument) {
				actions, resources := texts(st["Action"]), texts(st["Resource"])
				where := fmt.Sprintf("%s statement %v", id, st["Sid"])
				if contains(actions, "kms:GenerateDataKey") && id != "SealRole" {
					for _, res := range resources {
						if !atRest[res] {
							t.Errorf("%s: kms:GenerateDataKey on %s; only the seal function makes data keys", where, res)
						}
					}
				}
				if !strings.HasPrefix(id, "Replicate") {
					continue
				}
				for _, res := range resources {
					switch {
					case hasPrefixAny(actions, "kms:") && !atRest[res]:
						t.Errorf("%s: %v on %s; a replicate function copies ciphertext and may use no organisation's key", where, actions, res)
					case res == keysTable || strings.HasPrefix(res, keysTable+"/"):
						t.Errorf("%s: access to the keys table", where)
					case strings.HasPrefix(res, landing) && res != landing+"/sealed/*":
						t.Errorf("%s: landing access %s; a replicate function reads sealed/ only", where, res)
					}
				}
			}
		}
	}
}

// TestTemplateEnvLoads feeds each function's deployed environment (plus
// what Lambda itself sets) to its loader in shared/config: a variable the
// template misnames or forgets fails here, not at the first cold start.
func TestTemplateEnvLoads(t *testing.T) {
	tpl := loadTemplate(t)
	env := func(id string) config.Getenv {
		m := map[string]string{"AWS_REGION": "eu-west-2", "AWS_LAMBDA_FUNCTION_NAME": tpl.Functions[id].Name}
		for k, v := range tpl.Functions[id].Env {
			m[k] = v
		}
		return config.Map(m)
	}
	for _, id := range []string{"ReplicateSupabaseFunction", "ReplicateS3Function", "ReplicateGcsFunction"} {
		c, err := config.LoadReplicate(env(id))
		if err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		if c.Provider != tpl.Functions[id].Env["PROVIDER"] || c.Providers.S3.Endpoint != "" {
			t.Errorf("%s: provider %q, S3 endpoint %q (want none on AWS)", id, c.Provider, c.Providers.S3.Endpoint)
		}
	}
	if _, err := config.LoadAPI(env("ApiFunction")); err != nil {
		t.Errorf("ApiFunction: %v", err)
	}
	if c, err := config.LoadSeal(env("SealFunction")); err != nil {
		t.Errorf("SealFunction: %v", err)
	} else if c.Keys.Table == "" || c.Keys.DefaultKeyID == "" || c.QueueURL == "" || c.KeepPlaintext {
		t.Errorf("SealFunction: keys %+v, queue %q, keep plaintext %v", c.Keys, c.QueueURL, c.KeepPlaintext)
	}
	c, err := config.LoadHealth(env("HealthFunction"))
	if err != nil {
		t.Errorf("HealthFunction: %v", err)
	}
	for _, p := range []string{"supabase", "s3", "gcs", "seal"} {
		if q := c.Queues[p]; q.URL == "" || q.DLQURL == "" {
			t.Errorf("HealthFunction: no queue or dead-letter queue for %s: %+v", p, q)
		}
	}
	if _, err := rotate.LoadEnv(env("RotateFunction")); err != nil {
		t.Errorf("RotateFunction: %v", err)
	}
	if _, err := ws.LoadSettings(env("WsFunction")); err != nil {
		t.Errorf("WsFunction: %v", err)
	}
}
