package publish

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/wedsync/backup-replication/shared/ws"
)

// NewPoster returns a management API client that posts to endpoint: the
// WebSocket API's stage URL (https://{api-id}.execute-api.{region}.amazonaws.com/{stage},
// WS_ENDPOINT) or the local gateway's (wsgateway.Gateway.Endpoint). It
// signs with awsCfg's credentials; the SDK's standard retryer applies. Its
// HTTP client keeps up to MaxIdleConns connections to the endpoint open
// (the SDK's default keeps 10 per host, fewer than the publisher's
// workers, so the rest would reconnect for every post).
func NewPoster(awsCfg aws.Config, endpoint string) *apigatewaymanagementapi.Client {
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns, t.MaxIdleConnsPerHost = MaxIdleConns, MaxIdleConns
	})
	return apigatewaymanagementapi.NewFromConfig(awsCfg, func(o *apigatewaymanagementapi.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.HTTPClient = hc
	})
}

// MaxIdleConns is how many connections NewPoster's client keeps open to
// the management endpoint: twice DefaultWorkers.
const MaxIdleConns = 2 * DefaultWorkers

// Wire builds the publisher the replicate and health functions use: posts
// to endpoint (WS_ENDPOINT), subscribers from the connections table
// (CONNECTIONS_TABLE) through awsCfg's DynamoDB. An empty endpoint is an
// error: callers without one publish nothing (leave replicate's Progress
// unset).
func Wire(awsCfg aws.Config, endpoint, connectionsTable string, cfg Config, logger *slog.Logger) (*Publisher, error) {
	if endpoint == "" {
		return nil, errors.New("publish: no management endpoint (WS_ENDPOINT)")
	}
	store, err := ws.NewDynamo(dynamodb.NewFromConfig(awsCfg), connectionsTable, nil)
	if err != nil {
		return nil, err
	}
	return New(cfg, Deps{Poster: NewPoster(awsCfg, endpoint), Audience: store, Logger: logger})
}
