// Package samtemplate reads template.yaml (AWS SAM) for local use: every
// intrinsic function resolved to local physical names, conditions
// evaluated, Globals merged into functions, and the CloudFormation resources
// typed with github.com/awslabs/goformation/v7. The local stack creates what
// it describes and the template tests check it, so deployment and local runs
// share one truth.
package samtemplate

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/intrinsics"
)

// Options say how to resolve the template.
type Options struct {
	// StackName, Region and AccountID answer AWS::StackName, AWS::Region
	// and AWS::AccountId. Defaults: "ws191-local", "us-east-1",
	// "123456789012" (moto's account).
	StackName string
	Region    string
	AccountID string
	// Parameters override parameter defaults (values as the template's
	// types expect: strings, or float64/int for Number).
	Parameters map[string]any
	// Refs and Attrs override what Ref <id> and Fn::GetAtt <id>.<attr>
	// return, keyed "LogicalId" and "LogicalId.Attr", for values only known
	// once a resource exists (a secret's ARN suffix).
	Refs  map[string]string
	Attrs map[string]string
	// QueueURLBase is the SQS endpoint queue URLs start with
	// (QueueURLBase/AccountID/name); default "https://sqs.<region>.amazonaws.com".
	QueueURLBase string
}

func (o Options) withDefaults() Options {
	if o.StackName == "" {
		o.StackName = "ws191-local"
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.AccountID == "" {
		o.AccountID = "123456789012"
	}
	if o.QueueURLBase == "" {
		o.QueueURLBase = "https://sqs." + o.Region + ".amazonaws.com"
	}
	return o
}

// Template is a resolved SAM template.
type Template struct {
	// Parameters are the values used, defaults merged with overrides.
	Parameters map[string]any
	// Conditions are the evaluated conditions.
	Conditions map[string]bool
	// Types maps every logical id to its resource type, including those
	// skipped because their Condition is false.
	Types map[string]string
	// Skipped lists resources whose Condition is false.
	Skipped map[string]bool
	// Raw holds each created resource as resolved JSON ({Type, Properties, …}).
	Raw map[string]json.RawMessage
	// Resources holds the resources goformation could type, by logical id
	// (*sqs.Queue, *dynamodb.Table, *events.Rule, *iam.Role, …). A resource
	// whose properties goformation's schema does not know stays only in Raw
	// and is listed in Untyped with the reason.
	Resources map[string]cloudformation.Resource
	Untyped   map[string]string
	// Functions are the AWS::Serverless::Function resources with Globals
	// merged in, by logical id.
	Functions map[string]*Function

	res *resolver
}

// Load reads and resolves the SAM template at path.
func Load(path string, opts Options) (*Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, opts)
}

// Parse resolves a SAM template given as YAML or JSON.
func Parse(data []byte, opts Options) (*Template, error) {
	opts = opts.withDefaults()
	// Raw structure first, without resolving anything: types, parameters,
	// conditions.
	unresolved, err := intrinsics.ProcessYAML(data, &intrinsics.ProcessorOptions{NoProcess: true})
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	var doc struct {
		Parameters map[string]struct{ Default any }
		Conditions json.RawMessage
		Resources  map[string]struct {
			Type      string
			Condition string
		}
	}
	if err := json.Unmarshal(unresolved, &doc); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	r := &resolver{opts: opts, params: map[string]any{}, types: map[string]string{}, explicit: map[string]string{}, skipped: map[string]bool{}}
	for name, p := range doc.Parameters {
		r.params[name] = p.Default
		if v, ok := opts.Parameters[name]; ok {
			r.params[name] = v
		}
	}
	for id, res := range doc.Resources {
		r.types[id] = res.Type
	}
	if err := r.evalConditions(doc.Conditions); err != nil {
		return nil, err
	}
	for id, res := range doc.Resources {
		if res.Condition != "" && !r.conditions[res.Condition] {
			r.skipped[id] = true
		}
	}
	// Two passes: the first learns the names the template gives resources
	// (often through Fn::Sub), the second resolves everything with them.
	resolved, err := r.process(data)
	if err != nil {
		return nil, err
	}
	r.learnNames(resolved)
	if resolved, err = r.process(data); err != nil {
		return nil, err
	}
	t := &Template{
		Parameters: r.params, Conditions: r.conditions, Types: r.types, Skipped: r.skipped,
		Raw: map[string]json.RawMessage{}, Resources: map[string]cloudformation.Resource{},
		Untyped: map[string]string{}, Functions: map[string]*Function{}, res: r,
	}
	var full struct {
		Globals struct {
			Function json.RawMessage
		}
		Resources map[string]json.RawMessage
	}
	if err := json.Unmarshal(resolved, &full); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	for id, raw := range full.Resources {
		if r.skipped[id] {
			continue
		}
		t.Raw[id] = raw
		if r.types[id] == "AWS::Serverless::Function" {
			fn, err := newFunction(id, r.Name(id), raw, full.Globals.Function)
			if err != nil {
				return nil, err
			}
			t.Functions[id] = fn
		}
		typed, ok := cloudformation.AllResources()[r.types[id]]
		if !ok {
			t.Untyped[id] = "type unknown to goformation"
			continue
		}
		if err := json.Unmarshal(raw, typed); err != nil {
			t.Untyped[id] = err.Error()
			continue
		}
		t.Resources[id] = typed
	}
	return t, nil
}

// process resolves every intrinsic of the template with r.
func (r *resolver) process(data []byte) ([]byte, error) {
	out, err := intrinsics.ProcessYAML(data, &intrinsics.ProcessorOptions{IntrinsicHandlerOverrides: r.handlers()})
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	return out, nil
}

// nameProperties are the properties that name a resource, by type.
var nameProperties = map[string]string{
	"AWS::S3::Bucket":             "BucketName",
	"AWS::SQS::Queue":             "QueueName",
	"AWS::DynamoDB::Table":        "TableName",
	"AWS::SNS::Topic":             "TopicName",
	"AWS::SecretsManager::Secret": "Name",
	"AWS::Events::Rule":           "Name",
	"AWS::Serverless::Function":   "FunctionName",
	"AWS::Lambda::Function":       "FunctionName",
	"AWS::Logs::LogGroup":         "LogGroupName",
	"AWS::IAM::Role":              "RoleName",
	"AWS::ApiGatewayV2::Stage":    "StageName",
	"AWS::ApiGatewayV2::Api":      "Name",
}

func (r *resolver) learnNames(resolved []byte) {
	var doc struct {
		Resources map[string]struct{ Properties map[string]any }
	}
	if json.Unmarshal(resolved, &doc) != nil {
		return
	}
	for id, res := range doc.Resources {
		if n, ok := res.Properties[nameProperties[r.types[id]]].(string); ok && n != "" {
			r.explicit[id] = n
		}
	}
}

// Name is the local physical name of a resource (see Ref for what Ref
// returns, which for queues and secrets is a URL or an ARN).
func (t *Template) Name(logicalID string) string { return t.res.Name(logicalID) }

// Ref is what Ref <logicalID> resolves to locally ("" when unknown).
func (t *Template) Ref(logicalID string) string {
	if v := t.res.ref(logicalID); v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

// Attr is what Fn::GetAtt <logicalID>.<attr> resolves to locally.
func (t *Template) Attr(logicalID, attr string) string {
	if v := t.res.getAtt([]any{logicalID, attr}); v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

// IDs returns the logical ids of created resources of a type, sorted.
func (t *Template) IDs(resourceType string) []string {
	var ids []string
	for id := range t.Raw {
		if t.Types[id] == resourceType {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// LogicalIDByArn finds the resource whose Fn::GetAtt Arn (or Ref) is v.
func (t *Template) LogicalIDByArn(v string) (string, bool) {
	for id := range t.Raw {
		if t.Attr(id, "Arn") == v || t.Ref(id) == v {
			return id, true
		}
	}
	return "", false
}

// FunctionIDs returns the logical ids of the functions, sorted.
func (t *Template) FunctionIDs() []string {
	ids := make([]string, 0, len(t.Functions))
	for id := range t.Functions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
