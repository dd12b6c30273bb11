package workflows

import (
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
)

// newExpiryRig is newOwnerRig with CheckoutExpiry registered and power-off
// counted; the test environment skips time, so an 8 h checkout runs in
// milliseconds.
func newExpiryRig(t *testing.T) (*rig, *directory) {
	r, d := newOwnerRig(t)
	r.env.RegisterWorkflow(CheckoutExpiry)
	return r, d
}

func (r *rig) expiry(in CheckoutExpiryInput) (CheckoutExpiryResult, error) {
	r.t.Helper()
	r.env.ExecuteWorkflow(CheckoutExpiry, in)
	if !r.env.IsWorkflowCompleted() {
		r.t.Fatal("workflow did not complete")
	}
	var res CheckoutExpiryResult
	err := r.env.GetWorkflowResult(&res)
	return res, err
}

func TestCheckoutExpiryReleasesWhenTheTimeIsUp(t *testing.T) {
	r, d := newExpiryRig(t)
	start := r.env.Now()
	res, err := r.expiry(CheckoutExpiryInput{Node: "r01n01", User: alice, Duration: 8 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, r.calls, "lookup", "checkowner", "power:off", "boot:local", "unexport", "destroy", "clearowner")
	if res.Released == nil || res.Released.Node != "r01n01" || res.Released.Policy != ReleasePowerOff || res.Note != "" {
		t.Fatalf("result = %+v", res)
	}
	if got := res.Expired.Sub(start); got < 8*time.Hour || got > 8*time.Hour+time.Minute {
		t.Errorf("expired %s after the checkout, want 8h", got)
	}
	if _, owned := d.owner["r01n01"]; owned {
		t.Error("r01n01 still has an owner after its checkout expired")
	}
	if len(d.cleared) != 1 || d.cleared[0] != (ClearOwnerInput{Node: "r01n01", User: alice}) {
		t.Errorf("ClearOwner inputs = %+v", d.cleared)
	}
}

func TestCheckoutExpiryCancelledTouchesNothing(t *testing.T) {
	r, d := newExpiryRig(t)
	// The user releases the node after an hour: the release (or a new
	// checkout) cancels checkout/<node>.
	r.env.RegisterDelayedCallback(r.env.CancelWorkflow, time.Hour)
	_, err := r.expiry(CheckoutExpiryInput{Node: "r01n01", User: alice, Duration: 8 * time.Hour})
	var canceled *temporal.CanceledError
	if !errors.As(err, &canceled) {
		t.Fatalf("err = %v, want cancelled", err)
	}
	wantCalls(t, r.calls)
	if d.owner["r01n01"] != alice {
		t.Error("a cancelled expiry cleared the owner")
	}
}

func TestCheckoutExpiryLeavesANodeTheUserNoLongerOwns(t *testing.T) {
	r, d := newExpiryRig(t)
	// An admin transferred r01n01 to bob during alice's checkout.
	r.env.RegisterDelayedCallback(func() { d.mu.Lock(); d.owner["r01n01"] = bob; d.mu.Unlock() }, 2*time.Hour)
	res, err := r.expiry(CheckoutExpiryInput{Node: "r01n01", User: alice, Duration: 8 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, r.calls, "lookup", "checkowner")
	if res.Released != nil || res.Note == "" {
		t.Fatalf("result = %+v, want nothing released and a note", res)
	}
	if d.owner["r01n01"] != bob {
		t.Errorf("owner = %q, want bob's ownership untouched", d.owner["r01n01"])
	}
}

func TestCheckoutExpiryFailsOnAFailedRelease(t *testing.T) {
	r, _ := newExpiryRig(t)
	r.lookupErr = temporal.NewNonRetryableApplicationError("unknown node r01n01", ErrUnknownNode, nil)
	_, err := r.expiry(CheckoutExpiryInput{Node: "r01n01", User: alice, Duration: time.Minute})
	if errorType(err) != ErrUnknownNode {
		t.Fatalf("err = %v (type %q), want the release's UnknownNode", err, errorType(err))
	}
}

func TestCheckoutExpiryRefusesBadInput(t *testing.T) {
	for name, in := range map[string]CheckoutExpiryInput{
		"no node":       {User: alice, Duration: time.Hour},
		"no user":       {Node: "r01n01", Duration: time.Hour},
		"zero duration": {Node: "r01n01", User: alice},
		"negative":      {Node: "r01n01", User: alice, Duration: -time.Hour},
	} {
		t.Run(name, func(t *testing.T) {
			r, _ := newExpiryRig(t)
			_, err := r.expiry(in)
			if errorType(err) != ErrInvalidCheckout {
				t.Fatalf("err = %v, want %s", err, ErrInvalidCheckout)
			}
			wantCalls(t, r.calls)
		})
	}
}
