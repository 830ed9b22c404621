package samtemplate

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/awslabs/goformation/v7/intrinsics"
)

// resolver answers Ref, Fn::GetAtt, Fn::Sub and Fn::If for one load of a
// template: parameters from their defaults and Options.Parameters, pseudo
// parameters from Options, resources from Options.Refs / Options.Attrs or
// else from the local naming scheme (see physical).
type resolver struct {
	opts       Options
	params     map[string]any
	types      map[string]string // logical id -> resource type
	explicit   map[string]string // logical id -> name given in the template (FunctionName, LogGroupName, …)
	conditions map[string]bool
	skipped    map[string]bool // resources whose Condition is false
}

// handlers returns the goformation intrinsic overrides backed by r.
func (r *resolver) handlers() map[string]intrinsics.IntrinsicHandler {
	return map[string]intrinsics.IntrinsicHandler{
		"Ref":        func(_ string, in, _ any) any { return r.ref(in) },
		"Fn::GetAtt": func(_ string, in, _ any) any { return r.getAtt(in) },
		"Fn::Sub":    func(_ string, in, _ any) any { return r.sub(in) },
		"Fn::If":     func(_ string, in, _ any) any { return r.fnIf(in) },
	}
}

func (r *resolver) ref(in any) any {
	name, ok := in.(string)
	if !ok {
		return nil
	}
	switch name {
	case "AWS::StackName":
		return r.opts.StackName
	case "AWS::Region":
		return r.opts.Region
	case "AWS::AccountId":
		return r.opts.AccountID
	case "AWS::Partition":
		return "aws"
	case "AWS::URLSuffix":
		return "amazonaws.com"
	case "AWS::NoValue":
		return nil
	}
	if v, ok := r.params[name]; ok {
		return v
	}
	if r.skipped[name] {
		return nil
	}
	if v, ok := r.opts.Refs[name]; ok {
		return v
	}
	if _, ok := r.types[name]; !ok {
		return nil
	}
	return r.physical(name, "")
}

func (r *resolver) getAtt(in any) any {
	var id, attr string
	switch v := in.(type) {
	case string:
		id, attr, _ = strings.Cut(v, ".")
	case []any:
		if len(v) != 2 {
			return nil
		}
		id, _ = v[0].(string)
		attr, _ = v[1].(string)
	}
	if id == "" || attr == "" || r.skipped[id] {
		return nil
	}
	if v, ok := r.opts.Attrs[id+"."+attr]; ok {
		return v
	}
	if _, ok := r.types[id]; !ok {
		return nil
	}
	return r.physical(id, attr)
}

var subVar = regexp.MustCompile(`\$\{([^}!]+)\}`)

func (r *resolver) sub(in any) any {
	var (
		src  string
		vars map[string]any
	)
	switch v := in.(type) {
	case string:
		src = v
	case []any:
		if len(v) != 2 {
			return nil
		}
		src, _ = v[0].(string)
		vars, _ = v[1].(map[string]any)
	default:
		return nil
	}
	return subVar.ReplaceAllStringFunc(src, func(m string) string {
		name := m[2 : len(m)-1]
		var val any
		if v, ok := vars[name]; ok {
			val = v
		} else if id, attr, ok := strings.Cut(name, "."); ok {
			val = r.getAtt([]any{id, attr})
		} else {
			val = r.ref(name)
		}
		if val == nil {
			return ""
		}
		return fmt.Sprint(val)
	})
}

func (r *resolver) fnIf(in any) any {
	arr, ok := in.([]any)
	if !ok || len(arr) != 3 {
		return nil
	}
	name, _ := arr[0].(string)
	if r.conditions[name] {
		return arr[1]
	}
	return arr[2]
}

// evalConditions evaluates the Conditions section (Fn::Equals, Fn::Not,
// Fn::And, Fn::Or over parameters) with goformation's own handlers.
func (r *resolver) evalConditions(conds json.RawMessage) error {
	r.conditions = map[string]bool{}
	if len(conds) == 0 {
		return nil
	}
	doc, err := json.Marshal(map[string]json.RawMessage{"Conditions": conds})
	if err != nil {
		return err
	}
	out, err := intrinsics.ProcessJSON(doc, &intrinsics.ProcessorOptions{IntrinsicHandlerOverrides: map[string]intrinsics.IntrinsicHandler{
		"Ref": func(_ string, in, _ any) any { return r.ref(in) },
	}})
	if err != nil {
		return fmt.Errorf("conditions: %w", err)
	}
	var res struct{ Conditions map[string]any }
	if err := json.Unmarshal(out, &res); err != nil {
		return fmt.Errorf("conditions: %w", err)
	}
	for name, v := range res.Conditions {
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("condition %s: cannot evaluate locally (only Fn::Equals/Not/And/Or over parameters)", name)
		}
		r.conditions[name] = b
	}
	return nil
}

// physical is the local stand-in for what CloudFormation would return for
// a resource: attr "" is Ref, otherwise Fn::GetAtt.
func (r *resolver) physical(id, attr string) any {
	o := r.opts
	name := r.Name(id)
	region, acct := o.Region, o.AccountID
	switch r.types[id] {
	case "AWS::S3::Bucket":
		switch attr {
		case "", "BucketName":
			return name
		case "Arn":
			return "arn:aws:s3:::" + name
		case "DomainName", "RegionalDomainName":
			return name + ".s3.amazonaws.com"
		}
	case "AWS::SQS::Queue":
		url := strings.TrimRight(o.QueueURLBase, "/") + "/" + acct + "/" + name
		switch attr {
		case "", "QueueUrl":
			return url
		case "Arn":
			return fmt.Sprintf("arn:aws:sqs:%s:%s:%s", region, acct, name)
		case "QueueName":
			return name
		}
	case "AWS::DynamoDB::Table":
		switch attr {
		case "":
			return name
		case "Arn":
			return fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", region, acct, name)
		}
	case "AWS::SNS::Topic":
		arn := fmt.Sprintf("arn:aws:sns:%s:%s:%s", region, acct, name)
		switch attr {
		case "", "TopicArn":
			return arn
		case "TopicName":
			return name
		}
	case "AWS::SecretsManager::Secret":
		if attr == "" || attr == "Id" {
			return fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s", region, acct, name)
		}
	case "AWS::Events::Rule":
		switch attr {
		case "":
			return name
		case "Arn":
			return fmt.Sprintf("arn:aws:events:%s:%s:rule/%s", region, acct, name)
		}
	case "AWS::Serverless::Function", "AWS::Lambda::Function":
		switch attr {
		case "":
			return name
		case "Arn":
			return fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", region, acct, name)
		}
	case "AWS::Logs::LogGroup":
		switch attr {
		case "":
			return name
		case "Arn":
			return fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s:*", region, acct, name)
		}
	case "AWS::IAM::Role":
		switch attr {
		case "", "RoleId":
			return name
		case "Arn":
			return fmt.Sprintf("arn:aws:iam::%s:role/%s", acct, name)
		}
	case "AWS::KMS::Key":
		switch attr {
		case "", "KeyId":
			return name
		case "Arn":
			return fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", region, acct, name)
		}
	case "AWS::ApiGatewayV2::Stage":
		return name
	}
	if attr == "" {
		return name
	}
	return fmt.Sprintf("arn:aws:local:%s:%s:%s/%s", region, acct, name, attr)
}

// Name is the local physical name of a resource: the name the template
// gives it (TableName, QueueName, FunctionName, StageName, …) or else
// "<stack>-<logical-id-in-kebab-case>", lower case, as CloudFormation would
// generate one.
func (r *resolver) Name(id string) string {
	if n, ok := r.explicit[id]; ok && n != "" {
		return n
	}
	return strings.ToLower(r.opts.StackName + "-" + kebab(id))
}

// kebab turns "ReplicateS3DLQ" into "replicate-s3-dlq".
func kebab(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, c := range rs {
		if i > 0 && unicode.IsUpper(c) {
			prevLower := unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1])
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if prevLower || (unicode.IsUpper(rs[i-1]) && nextLower) {
				b.WriteByte('-')
			}
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}
