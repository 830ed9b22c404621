package samtemplate

import (
	"testing"
	"time"

	"github.com/awslabs/goformation/v7/cloudformation/sqs"
)

const sample = `
Transform: AWS::Serverless-2016-10-31
Parameters:
  Bucket: {Type: String}
  SecretArn: {Type: String, Default: ""}
  MaxReceives: {Type: Number, Default: 4}
Conditions:
  CreateSecret: !Equals [!Ref SecretArn, ""]
Globals:
  Function:
    Runtime: provided.al2023
    Timeout: 30
    Environment:
      Variables:
        SHARED: !Ref Bucket
        SECRET: !If [CreateSecret, !Ref Secret, !Ref SecretArn]
Resources:
  Secret:
    Type: AWS::SecretsManager::Secret
    Condition: CreateSecret
  DLQ:
    Type: AWS::SQS::Queue
  WorkQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 60
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt DLQ.Arn
        maxReceiveCount: !Ref MaxReceives
  Worker:
    Type: AWS::Serverless::Function
    Metadata: {BuildMethod: makefile}
    Properties:
      FunctionName: !Sub "${AWS::StackName}-worker"
      CodeUri: .
      Timeout: 10
      Environment:
        Variables:
          QUEUE: !Ref WorkQueue
          WHERE: !Sub "${WorkQueue.QueueName} in ${AWS::Region}"
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt WorkQueue.Arn
            BatchSize: 3
            FunctionResponseTypes: [ReportBatchItemFailures]
        Get:
          Type: HttpApi
          Properties: {Method: GET, Path: "/things/{id}"}
`

func TestParseResolvesForLocalUse(t *testing.T) {
	tpl, err := Parse([]byte(sample), Options{StackName: "st", QueueURLBase: "http://127.0.0.1:5000",
		Parameters: map[string]any{"Bucket": "b1"}, Refs: map[string]string{"Secret": "arn:secret-xyz"}})
	if err != nil {
		t.Fatal(err)
	}
	f := tpl.Functions["Worker"]
	if f == nil {
		t.Fatal("no Worker")
	}
	want := map[string]string{
		"SHARED": "b1", "SECRET": "arn:secret-xyz",
		"QUEUE": "http://127.0.0.1:5000/123456789012/st-work-queue", "WHERE": "st-work-queue in us-east-1",
	}
	for k, v := range want {
		if f.Env[k] != v {
			t.Errorf("env %s = %q, want %q", k, f.Env[k], v)
		}
	}
	if f.Name != "st-worker" || f.Runtime != "provided.al2023" || f.Timeout != 10*time.Second || f.BuildMethod != "makefile" {
		t.Errorf("function = %+v", f)
	}
	if len(f.SQS) != 1 || f.SQS[0].BatchSize != 3 || !f.SQS[0].ReportBatchItemFailures ||
		f.SQS[0].QueueArn != "arn:aws:sqs:us-east-1:123456789012:st-work-queue" {
		t.Errorf("SQS events = %+v", f.SQS)
	}
	if len(f.HTTP) != 1 || f.HTTP[0].Path != "/things/{id}" {
		t.Errorf("HTTP events = %+v", f.HTTP)
	}
	q := tpl.Resources["WorkQueue"].(*sqs.Queue)
	rp := q.RedrivePolicy.(map[string]any)
	if rp["deadLetterTargetArn"] != tpl.Attr("DLQ", "Arn") || rp["maxReceiveCount"] != float64(4) {
		t.Errorf("redrive policy = %v", rp)
	}
	if id, ok := tpl.LogicalIDByArn(f.SQS[0].QueueArn); !ok || id != "WorkQueue" {
		t.Errorf("LogicalIDByArn = %q %v", id, ok)
	}

	// With an existing secret the condition is false: the resource is not
	// created and the function gets the parameter.
	tpl, err = Parse([]byte(sample), Options{Parameters: map[string]any{"Bucket": "b1", "SecretArn": "arn:given"}})
	if err != nil {
		t.Fatal(err)
	}
	if !tpl.Skipped["Secret"] || tpl.Raw["Secret"] != nil || tpl.Functions["Worker"].Env["SECRET"] != "arn:given" {
		t.Errorf("condition false: skipped=%v env=%q", tpl.Skipped, tpl.Functions["Worker"].Env["SECRET"])
	}
}

func TestKebab(t *testing.T) {
	for in, want := range map[string]string{"ReplicateS3DLQ": "replicate-s3-dlq", "LandingBucket": "landing-bucket",
		"HttpApi": "http-api", "JwtSecret": "jwt-secret", "ReplicateGcsQueue": "replicate-gcs-queue"} {
		if got := kebab(in); got != want {
			t.Errorf("kebab(%q) = %q, want %q", in, got, want)
		}
	}
}
