//go:build linux

package main

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// dhcpClientOptions makes an nclient4 client send each DISCOVER and
// REQUEST once and wait up to replyWait for the OFFER or ACK;
// requestLease retries whole exchanges instead.
func dhcpClientOptions(replyWait time.Duration) []nclient4.ClientOpt {
	return []nclient4.ClientOpt{nclient4.WithTimeout(replyWait), nclient4.WithRetry(1)}
}

// requestLease runs DHCP exchanges (DISCOVER, OFFER, REQUEST, ACK) with
// client until one ends in an ACK, per retry and ctx, and returns the ACK.
// Requests set the broadcast flag so that replies reach a client that has
// no address yet. notify (may be nil) hears of each failed exchange. When
// ctx ends first the error is the last finished exchange's, or ctx's cause
// when none finished.
func requestLease(ctx context.Context, client *nclient4.Client, retry retryPolicy, notify backoff.Notify) (*dhcpv4.DHCPv4, error) {
	var last error
	lease, err := backoff.Retry(ctx, func() (*nclient4.Lease, error) {
		l, err := client.Request(ctx, dhcpv4.WithBroadcast(true))
		if err != nil && ctx.Err() == nil {
			last = err
		}
		return l, err
	}, retry.options(notify)...)
	if err != nil {
		if ctx.Err() != nil && last != nil {
			return nil, last
		}
		return nil, err
	}
	return lease.ACK, nil
}
