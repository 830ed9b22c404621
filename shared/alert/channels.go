package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/wedsync/backup-replication/shared/secret"
)

// SNSAPI is the part of the SNS client the SNS channel uses; *sns.Client
// implements it.
type SNSAPI interface {
	Publish(ctx context.Context, in *sns.PublishInput, opts ...func(*sns.Options)) (*sns.PublishOutput, error)
}

// SNS returns a channel named "sns" that publishes to topicARN, with the
// message's subject as Subject and the message attributes incident,
// phase and severity (String), for subscription filter policies.
func SNS(client SNSAPI, topicARN string) Channel { return &snsChannel{c: client, topic: topicARN} }

type snsChannel struct {
	c     SNSAPI
	topic string
}

func (s *snsChannel) Name() string { return "sns" }

func (s *snsChannel) Send(ctx context.Context, m Message) error {
	attr := func(v string) snstypes.MessageAttributeValue {
		return snstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	_, err := s.c.Publish(ctx, &sns.PublishInput{
		TopicArn: aws.String(s.topic),
		Subject:  aws.String(m.Subject),
		Message:  aws.String(m.Text),
		MessageAttributes: map[string]snstypes.MessageAttributeValue{
			"incident": attr(m.Key), "phase": attr(string(m.Phase)), "severity": attr(string(m.Severity)),
		},
	})
	if err != nil {
		return fmt.Errorf("sns publish: %w", err)
	}
	return nil
}

// DefaultWebhookTimeout bounds one webhook POST.
const DefaultWebhookTimeout = 10 * time.Second

// Webhook returns a channel named "webhook" that POSTs {"text": …} as JSON
// to u, the way Slack incoming webhooks (and Mattermost, Teams workflows,
// Discord's /slack endpoints) take it. u is a secret: its path carries the
// token, so errors never quote it. client nil means a client with
// DefaultWebhookTimeout.
func Webhook(u secret.Secret, client *http.Client) Channel {
	if client == nil {
		client = &http.Client{Timeout: DefaultWebhookTimeout}
	}
	return &webhook{url: u, c: client}
}

type webhook struct {
	url secret.Secret
	c   *http.Client
}

func (w *webhook) Name() string { return "webhook" }

func (w *webhook) Send(ctx context.Context, m Message) error {
	body, _ := json.Marshal(map[string]string{"text": "*" + m.Subject + "*\n" + m.Text})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url.Reveal(), bytes.NewReader(body))
	if err != nil {
		return errors.New("webhook: the configured URL is not valid")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // *url.Error quotes the URL, token and all
		}
		return fmt.Errorf("webhook: POST failed: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook: answered HTTP %d", resp.StatusCode)
	}
	return nil
}
