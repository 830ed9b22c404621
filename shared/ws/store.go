package ws

import (
	"context"
	"errors"
	"time"
)

// Connection is one open WebSocket connection and who opened it.
type Connection struct {
	ID             string
	OrganizationID string
	Subject        string
	ConnectedAt    time.Time
	// ExpiresAt is when the record expires (TTL) even without $disconnect.
	ExpiresAt time.Time
}

// Errors of the store.
var (
	// ErrNotConnected: no live record of the connection (never connected,
	// disconnected, or expired).
	ErrNotConnected = errors.New("ws: connection not found")
	// ErrTooManySubscriptions: the connection holds Config.MaxSubscriptions.
	ErrTooManySubscriptions = errors.New("ws: too many subscriptions on this connection")
)

// Store keeps connections and their subscriptions. Dynamo implements it.
type Store interface {
	// Connect records c.
	Connect(ctx context.Context, c Connection) error
	// Connection returns the live record of id, or ErrNotConnected.
	Connection(ctx context.Context, id string) (Connection, error)
	// Subscribe subscribes c to backupID (or AllBackups), until c expires.
	// It returns ErrTooManySubscriptions when c already holds max
	// subscriptions (max <= 0: no limit). Subscribing twice is one
	// subscription.
	Subscribe(ctx context.Context, c Connection, backupID string, max int) error
	// Unsubscribe removes one subscription; a missing one is no error.
	Unsubscribe(ctx context.Context, connectionID, backupID string) error
	// Disconnect removes the connection and every subscription of it; an
	// unknown connection is no error.
	Disconnect(ctx context.Context, connectionID string) error
	// Subscribers returns the live connections that should receive a
	// message about backupID of organizationID: those subscribed to
	// backupID, and those of organizationID subscribed to AllBackups. With
	// backupID "" (provider health, system alerts) it returns every
	// AllBackups subscriber of organizationID, or of every organization
	// when organizationID is "" too. Each id appears once.
	Subscribers(ctx context.Context, backupID, organizationID string) ([]string, error)
}
