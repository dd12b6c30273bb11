package devtemporal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	namespacepb "go.temporal.io/api/namespace/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/types/known/durationpb"
)

// dial connects an SDK client to the frontend, retrying until the frontend
// answers (client.Dial checks with GetSystemInfo) or ctx ends.
func dial(ctx context.Context, addr, namespace string, logger *slog.Logger) (client.Client, error) {
	for {
		c, err := client.DialContext(ctx, client.Options{
			HostPort:  addr,
			Namespace: namespace,
			Logger:    sdklog.NewStructuredLogger(logger),
		})
		if err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("devtemporal: frontend %s does not answer: %w (last error: %v)", addr, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ensureNamespace sets the retention of ns through UpdateNamespace. It
// reports whether the stored retention differed.
func ensureNamespace(ctx context.Context, ws workflowservice.WorkflowServiceClient, ns string, retention time.Duration) (bool, error) {
	desc, err := retry(ctx, func() (*workflowservice.DescribeNamespaceResponse, error) {
		return ws.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
	})
	if err != nil {
		return false, fmt.Errorf("devtemporal: describing namespace %q: %w", ns, err)
	}
	changed := desc.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration() != retention
	_, err = retry(ctx, func() (*workflowservice.UpdateNamespaceResponse, error) {
		return ws.UpdateNamespace(ctx, &workflowservice.UpdateNamespaceRequest{
			Namespace: ns,
			Config: &namespacepb.NamespaceConfig{
				WorkflowExecutionRetentionTtl: durationpb.New(retention),
			},
		})
	})
	if err != nil {
		return false, fmt.Errorf("devtemporal: setting retention of namespace %q to %s: %w", ns, retention, err)
	}
	return changed, nil
}

// ensureSearchAttributes registers the attributes of want that ns lacks,
// through the operator service. An attribute that exists with another type
// is an error (SQL visibility cannot change a type in place). It reports
// the names it added, sorted.
func ensureSearchAttributes(ctx context.Context, ops operatorservice.OperatorServiceClient, ns string, want map[string]enumspb.IndexedValueType) ([]string, error) {
	if len(want) == 0 {
		return nil, nil
	}
	list, err := retry(ctx, func() (*operatorservice.ListSearchAttributesResponse, error) {
		return ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	})
	if err != nil {
		return nil, fmt.Errorf("devtemporal: listing search attributes of %q: %w", ns, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		typ := want[name]
		if have, ok := list.GetSystemAttributes()[name]; ok {
			return nil, fmt.Errorf("devtemporal: search attribute %q is a system attribute (%s)", name, have)
		}
		have, ok := list.GetCustomAttributes()[name]
		switch {
		case !ok:
			missing[name] = typ
		case have != typ:
			return nil, fmt.Errorf("devtemporal: search attribute %q exists in %q as %s, want %s (use a new state dir or another name)", name, ns, have, typ)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	_, err = retry(ctx, func() (*operatorservice.AddSearchAttributesResponse, error) {
		return ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
			Namespace:        ns,
			SearchAttributes: missing,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("devtemporal: adding search attributes %v to %q: %w", slices.Sorted(maps.Keys(missing)), ns, err)
	}
	return slices.Sorted(maps.Keys(missing)), nil
}

// retry calls f until it succeeds, fails with an error retrying cannot fix,
// or ctx ends. Right after start the frontend may still answer Unavailable
// or NamespaceNotFound for a moment, and namespace updates are rate limited.
func retry[T any](ctx context.Context, f func() (T, error)) (T, error) {
	for {
		v, err := f()
		if err == nil || !transient(err) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func transient(err error) bool {
	var (
		unavailable *serviceerror.Unavailable
		notFound    *serviceerror.NamespaceNotFound
		exhausted   *serviceerror.ResourceExhausted
		deadline    *serviceerror.DeadlineExceeded
	)
	return errors.As(err, &unavailable) || errors.As(err, &notFound) ||
		errors.As(err, &exhausted) || errors.As(err, &deadline)
}
