package main

import (
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// retryPolicy bounds a backoff.Retry loop. Tests swap newBackOff for a
// constant millisecond backoff so they run fast.
type retryPolicy struct {
	newBackOff func() backoff.BackOff // a fresh backoff per Retry call
	maxTries   uint                   // 0 = no limit on tries
	maxElapsed time.Duration          // 0 = no limit on time
}

// exponential returns a policy with exponential backoff from initial to
// maxInterval (randomized ±50%), at most tries attempts and elapsed time.
func exponential(initial, maxInterval time.Duration, tries uint, elapsed time.Duration) retryPolicy {
	return retryPolicy{
		newBackOff: func() backoff.BackOff {
			b := backoff.NewExponentialBackOff()
			b.InitialInterval = initial
			b.MaxInterval = maxInterval
			return b
		},
		maxTries:   tries,
		maxElapsed: elapsed,
	}
}

// constant returns a policy retrying every interval, at most tries attempts
// and elapsed time.
func constant(interval time.Duration, tries uint, elapsed time.Duration) retryPolicy {
	return retryPolicy{
		newBackOff: func() backoff.BackOff { return backoff.NewConstantBackOff(interval) },
		maxTries:   tries,
		maxElapsed: elapsed,
	}
}

// options returns the backoff.Retry options of p; notify (may be nil) is
// called before each wait with the attempt's error and the wait.
func (p retryPolicy) options(notify backoff.Notify) []backoff.RetryOption {
	newBackOff := p.newBackOff
	if newBackOff == nil {
		newBackOff = func() backoff.BackOff { return backoff.NewExponentialBackOff() }
	}
	opts := []backoff.RetryOption{
		backoff.WithBackOff(newBackOff()),
		// 0 disables the library's own 15-minute default; callers bound
		// unlimited policies with a context deadline instead.
		backoff.WithMaxElapsedTime(p.maxElapsed),
	}
	if p.maxTries > 0 {
		opts = append(opts, backoff.WithMaxTries(p.maxTries))
	}
	if notify != nil {
		opts = append(opts, backoff.WithNotify(notify))
	}
	return opts
}

// attemptNotifier returns a backoff.Notify that reports each failed attempt
// to report with its number (1-based), the error and the wait before the
// next one.
func attemptNotifier(report func(attempt int, err error, next time.Duration)) backoff.Notify {
	if report == nil {
		return nil
	}
	attempt := 0
	return func(err error, next time.Duration) {
		attempt++
		report(attempt, err, next)
	}
}

// reporter returns a backoff.Notify that prints each failed attempt of step
// on con as "retry <step>: <error> (attempt <n>[ of <max>], next in <s>s)";
// nil when con is nil (silent).
func (p retryPolicy) reporter(con *console, step string) backoff.Notify {
	if con == nil {
		return nil
	}
	return attemptNotifier(func(attempt int, err error, next time.Duration) {
		of := ""
		if p.maxTries > 0 {
			of = fmt.Sprintf(" of %d", p.maxTries)
		}
		con.step("retry %s: %v (attempt %d%s, next in %s)", step, err, attempt, of, seconds(next))
	})
}
