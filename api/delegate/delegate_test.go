package delegate

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

// once is a retry of a single try: tests never sleep.
var once = wait.Backoff{Steps: 1}

// fakeReviews is a fake apiserver answering creates of resource, counted
// in reviews, with answer; it fails while failing is set.
func fakeReviews(resource string, reviews *atomic.Int32, failing *atomic.Bool, answer func(runtime.Object) runtime.Object) *fake.Clientset {
	client := fake.NewClientset()
	client.PrependReactor("create", resource, func(a k8stesting.Action) (bool, runtime.Object, error) {
		reviews.Add(1)
		if failing.Load() {
			return true, nil, errors.New("connection refused")
		}
		return true, answer(a.(k8stesting.CreateAction).GetObject().DeepCopyObject()), nil
	})
	return client
}

// tokenServer is a fake apiserver's TokenReview: it knows one token.
func tokenServer(reviews *atomic.Int32, failing *atomic.Bool) *fake.Clientset {
	return fakeReviews("tokenreviews", reviews, failing, func(o runtime.Object) runtime.Object {
		r := o.(*authenticationv1.TokenReview)
		if r.Spec.Token == "good" {
			r.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{
				Username: "system:serviceaccount:default:reader", UID: "u1", Groups: []string{"system:serviceaccounts"},
				Extra: map[string]authenticationv1.ExtraValue{"authentication.kubernetes.io/pod-name": {"p"}}}}
		} else {
			r.Status = authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
		}
		return r
	})
}

// TestTokenAuthenticator: answers are kept, yes and no alike, so a second
// request with a token sends no review; a failed review is not kept.
func TestTokenAuthenticator(t *testing.T) {
	var reviews atomic.Int32
	var failing atomic.Bool
	client := tokenServer(&reviews, &failing)
	tokens := NewTokenAuthenticator(client.AuthenticationV1().TokenReviews(), DefaultTokenCacheTTL, once)
	ctx := context.Background()

	for range 3 {
		resp, ok, err := tokens.AuthenticateToken(ctx, "good")
		if err != nil || !ok || resp.User.GetName() != "system:serviceaccount:default:reader" || resp.User.GetUID() != "u1" ||
			!slices.Equal(resp.User.GetGroups(), []string{"system:serviceaccounts"}) || len(resp.User.GetExtra()) != 1 {
			t.Fatalf("good token: %+v %v %v", resp, ok, err)
		}
	}
	if n := reviews.Load(); n != 1 {
		t.Errorf("%d reviews for a token asked about three times, want 1", n)
	}
	for range 3 {
		if resp, ok, err := tokens.AuthenticateToken(ctx, "bad"); ok || err != nil {
			t.Fatalf("bad token: %+v %v %v, want refused without error", resp, ok, err)
		}
	}
	if n := reviews.Load(); n != 2 {
		t.Errorf("%d reviews after a refused token asked about three times, want 2", n)
	}

	failing.Store(true)
	for range 2 {
		if _, ok, err := tokens.AuthenticateToken(ctx, "other"); ok || err == nil {
			t.Fatalf("failed review: %v %v, want an error", ok, err)
		}
	}
	if n := reviews.Load(); n != 4 {
		t.Errorf("%d reviews after two failed ones, want 4: a failure is not kept", n)
	}
	if _, ok, err := tokens.AuthenticateToken(ctx, "good"); !ok || err != nil {
		t.Errorf("a kept answer is given while the apiserver fails: %v %v", ok, err)
	}

	t.Log("a cache time of 0 keeps nothing")
	reviews.Store(0)
	failing.Store(false)
	uncached := NewTokenAuthenticator(client.AuthenticationV1().TokenReviews(), 0, once)
	uncached.AuthenticateToken(ctx, "good")
	uncached.AuthenticateToken(ctx, "good")
	if n := reviews.Load(); n != 2 {
		t.Errorf("%d reviews without a cache, want 2", n)
	}
}

// TestRetry: a transient failure (a 500) is tried again, a refusal (a 403:
// podsup's node may not review) is not.
func TestRetry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		tries int32
	}{
		{"internal error", apierrors.NewInternalError(errors.New("etcd")), 3},
		{"forbidden", apierrors.NewForbidden(authenticationv1.Resource("tokenreviews"), "", errors.New("no")), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tries atomic.Int32
			client := fake.NewClientset()
			client.PrependReactor("create", "tokenreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
				tries.Add(1)
				return true, nil, tc.err
			})
			tokens := NewTokenAuthenticator(client.AuthenticationV1().TokenReviews(), 0, wait.Backoff{Steps: 3})
			if _, _, err := tokens.AuthenticateToken(context.Background(), "t"); !errors.Is(err, tc.err) {
				t.Errorf("error %v, want %v", err, tc.err)
			}
			if n := tries.Load(); n != tc.tries {
				t.Errorf("%d tries, want %d", n, tc.tries)
			}
		})
	}
}

// sarServer is a fake apiserver's SubjectAccessReview: RBAC that allows
// alice to get nodes/stats, and denies mallory outright.
func sarServer(reviews *atomic.Int32, failing *atomic.Bool, got *authorizationv1.SubjectAccessReviewSpec) *fake.Clientset {
	return fakeReviews("subjectaccessreviews", reviews, failing, func(o runtime.Object) runtime.Object {
		r := o.(*authorizationv1.SubjectAccessReview)
		*got = r.Spec
		ra := r.Spec.ResourceAttributes
		switch {
		case r.Spec.User == "mallory":
			r.Status = authorizationv1.SubjectAccessReviewStatus{Denied: true, Reason: "banned"}
		case r.Spec.User == "both":
			r.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: true, Denied: true}
		case r.Spec.User == "alice" && ra != nil && ra.Verb == "get" && ra.Resource == "nodes" && ra.Subresource == "stats":
			r.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "RBAC: allowed"}
		}
		return r
	})
}

func attrs(name, verb, subresource string) authorizer.AttributesRecord {
	return authorizer.AttributesRecord{User: &user.DefaultInfo{Name: name, UID: "1", Groups: []string{"g"}, Extra: map[string][]string{"k": {"v"}}},
		Verb: verb, APIVersion: "v1", Resource: "nodes", Subresource: subresource, Name: "node1", ResourceRequest: true, Path: "/x"}
}

// TestAuthorizer: the review asks what the attributes say; allowed answers
// are kept for the authorized time, others for the unauthorized time, by
// the injected clock; failures are not kept.
func TestAuthorizer(t *testing.T) {
	var reviews atomic.Int32
	var failing atomic.Bool
	var spec authorizationv1.SubjectAccessReviewSpec
	client := sarServer(&reviews, &failing, &spec)
	clk := clocktesting.NewFakeClock(time.Unix(1e9, 0))
	az, err := NewAuthorizer(client.AuthorizationV1().SubjectAccessReviews(), WithClock(clk), WithRetry(once))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ask := func(a authorizer.Attributes, want authorizer.Decision, wantReviews int32) {
		t.Helper()
		d, _, err := az.Authorize(ctx, a)
		if err != nil || d != want {
			t.Fatalf("%s %s nodes/%s: %v %v, want %v", a.GetUser().GetName(), a.GetVerb(), a.GetSubresource(), d, err, want)
		}
		if n := reviews.Load(); n != wantReviews {
			t.Fatalf("%d reviews, want %d", n, wantReviews)
		}
	}

	ask(attrs("alice", "get", "stats"), authorizer.DecisionAllow, 1)
	want := authorizationv1.SubjectAccessReviewSpec{User: "alice", UID: "1", Groups: []string{"g"},
		Extra:              map[string]authorizationv1.ExtraValue{"k": {"v"}},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Version: "v1", Resource: "nodes", Subresource: "stats", Name: "node1"}}
	if spec.User != want.User || spec.UID != want.UID || !slices.Equal(spec.Groups, want.Groups) || len(spec.Extra) != 1 ||
		spec.ResourceAttributes == nil || *spec.ResourceAttributes != *want.ResourceAttributes || spec.NonResourceAttributes != nil {
		t.Errorf("review %+v, want %+v", spec, want)
	}
	ask(attrs("alice", "get", "stats"), authorizer.DecisionAllow, 1)
	ask(attrs("alice", "get", "proxy"), authorizer.DecisionNoOpinion, 2)
	ask(attrs("alice", "get", "proxy"), authorizer.DecisionNoOpinion, 2)
	ask(attrs("mallory", "get", "stats"), authorizer.DecisionDeny, 3)

	t.Log("refusals expire after 30s, permissions after 5m")
	clk.Step(DefaultUnauthorizedTTL + time.Second)
	ask(attrs("alice", "get", "stats"), authorizer.DecisionAllow, 3)
	ask(attrs("alice", "get", "proxy"), authorizer.DecisionNoOpinion, 4)
	clk.Step(DefaultAuthorizedTTL)
	ask(attrs("alice", "get", "stats"), authorizer.DecisionAllow, 5)

	t.Log("a failed review is an error and is not kept")
	failing.Store(true)
	for i := range 2 {
		if d, _, err := az.Authorize(ctx, attrs("bob", "get", "stats")); err == nil || d == authorizer.DecisionAllow {
			t.Fatalf("failed review %d: %v %v", i, d, err)
		}
	}
	if n := reviews.Load(); n != 7 {
		t.Errorf("%d reviews, want 7", n)
	}
	ask(attrs("alice", "get", "stats"), authorizer.DecisionAllow, 7) // kept

	failing.Store(false)
	if d, _, err := az.Authorize(ctx, attrs("both", "get", "stats")); err == nil || d != authorizer.DecisionDeny {
		t.Errorf("allowed and denied: %v %v, want Deny and an error", d, err)
	}
}

func TestAuthorizerOptions(t *testing.T) {
	if _, err := NewAuthorizer(fake.NewClientset().AuthorizationV1().SubjectAccessReviews(), WithTTLs(-time.Second, 0)); err == nil {
		t.Error("a negative cache time was taken")
	}
}
