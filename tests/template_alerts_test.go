package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	cfcloudwatch "github.com/awslabs/goformation/v7/cloudformation/cloudwatch"
	cflogs "github.com/awslabs/goformation/v7/cloudformation/logs"
	cfsns "github.com/awslabs/goformation/v7/cloudformation/sns"
)

// guardMessage is the line shared/validate's Guard logs when a provider's
// cold-start check fails and it starts refusing work.
const guardMessage = "provider unusable, refusing work"

// TestTemplateProviderUnusableAlarm checks that the Guard's refusal reaches
// an operator: a metric filter on every replicate function's log group
// matches the Guard's message, and an alarm on that metric notifies the
// alert topic, whose key lets CloudWatch publish (the AWS managed aws/sns
// key would not).
func TestTemplateProviderUnusableAlarm(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "shared", "validate", "guard.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), `"`+guardMessage+`"`) {
		t.Fatalf("shared/validate/guard.go no longer logs %q; update the metric filters with it", guardMessage)
	}
	tpl := loadTemplate(t)
	metrics := map[string]bool{}
	filtered := map[string]bool{}
	for _, id := range tpl.IDs("AWS::Logs::MetricFilter") {
		f := tpl.Resources[id].(*cflogs.MetricFilter)
		if !strings.Contains(f.FilterPattern, `$.msg = "`+guardMessage+`"`) {
			continue
		}
		filtered[f.LogGroupName] = true
		for _, m := range f.MetricTransformations {
			metrics[m.MetricNamespace+"/"+m.MetricName] = true
		}
	}
	for _, p := range []string{"Supabase", "S3", "Gcs"} {
		if lg := tpl.Ref("Replicate" + p + "LogGroup"); !filtered[lg] {
			t.Errorf("no metric filter for %q on Replicate%sLogGroup (%s)", guardMessage, p, lg)
		}
	}
	alarmed := false
	for _, id := range tpl.IDs("AWS::CloudWatch::Alarm") {
		a := tpl.Resources[id].(*cfcloudwatch.Alarm)
		if a.Namespace == nil || a.MetricName == nil || !metrics[*a.Namespace+"/"+*a.MetricName] {
			continue
		}
		alarmed = true
		if !contains(a.AlarmActions, tpl.Ref("AlertTopic")) {
			t.Errorf("alarm %s does not notify the alert topic: %v", id, a.AlarmActions)
		}
		if a.Threshold == nil || *a.Threshold > 1 || a.ComparisonOperator != "GreaterThanOrEqualToThreshold" {
			t.Errorf("alarm %s does not fire on the first refusal", id)
		}
	}
	if !alarmed {
		t.Errorf("no alarm on the metric of the %q filters (%v)", guardMessage, metrics)
	}

	topic := tpl.Resources["AlertTopic"].(*cfsns.Topic)
	if topic.KmsMasterKeyId == nil || strings.Contains(*topic.KmsMasterKeyId, "alias/aws/") || *topic.KmsMasterKeyId != tpl.Ref("AlertKey") {
		t.Fatalf("alert topic key %v: want AlertKey (CloudWatch cannot publish with an AWS managed key)", topic.KmsMasterKeyId)
	}
	var key struct{ Properties struct{ KeyPolicy any } }
	if err := jsonUnmarshal(tpl.Raw["AlertKey"], &key); err != nil {
		t.Fatal(err)
	}
	cloudwatch := false
	for _, st := range statements(key.Properties.KeyPolicy) {
		switch {
		case st["Sid"] == "AccountAdministersThroughIam" && strings.HasSuffix(jsonText(st["Principal"]), `:root"}`):
		case jsonText(st["Principal"]) == `{"Service":"cloudwatch.amazonaws.com"}`:
			cloudwatch = true
			cond := jsonText(st["Condition"])
			if !strings.Contains(cond, "aws:SourceAccount") || !strings.Contains(cond, "aws:SourceArn") {
				t.Errorf("AlertKey lets CloudWatch in without source conditions: %s", cond)
			}
			for _, a := range texts(st["Action"]) {
				if a != "kms:Decrypt" && a != "kms:GenerateDataKey*" {
					t.Errorf("AlertKey grants CloudWatch %s; it needs only kms:Decrypt and kms:GenerateDataKey*", a)
				}
			}
		default:
			t.Errorf("AlertKey key policy: unexpected statement %s", jsonText(st))
		}
	}
	if !cloudwatch {
		t.Error("AlertKey does not let CloudWatch alarms publish to the alert topic")
	}
	// Whoever may publish to the topic may also use its key.
	for id, r := range roles(t) {
		publishes, keyed := false, false
		for _, p := range r.Policies {
			for _, st := range statements(p.PolicyDocument) {
				acts, res := texts(st["Action"]), texts(st["Resource"])
				if contains(acts, "sns:Publish") && contains(res, tpl.Ref("AlertTopic")) {
					publishes = true
				}
				if contains(acts, "kms:GenerateDataKey") && contains(res, tpl.Attr("AlertKey", "Arn")) {
					keyed = true
				}
			}
		}
		if publishes && !keyed {
			t.Errorf("%s publishes to the encrypted alert topic without kms:GenerateDataKey on AlertKey", id)
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
