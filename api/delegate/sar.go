package delegate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/utils/clock"
)

const (
	// DefaultAuthorizedTTL is how long an allowed answer is kept: the
	// kubelet's --authorization-webhook-cache-authorized-ttl.
	DefaultAuthorizedTTL = 5 * time.Minute
	// DefaultUnauthorizedTTL is how long a refusal is kept: the kubelet's
	// --authorization-webhook-cache-unauthorized-ttl.
	DefaultUnauthorizedTTL = 30 * time.Second
)

// cacheSize is how many answers are kept, as the apiserver's webhook
// authorizer keeps.
const cacheSize = 8192

// Authorizer asks the apiserver with SubjectAccessReviews, keeping allowed
// answers for one time and refused ones for another.
type Authorizer struct {
	client authorizationclient.SubjectAccessReviewInterface
	opts   options
	cache  *utilcache.LRUExpireCache // keyed by the review's spec in JSON
}

type options struct {
	clock           clock.Clock
	authorizedTTL   time.Duration
	unauthorizedTTL time.Duration
	retry           wait.Backoff
}

// Option configures an Authorizer.
type Option func(*options) error

// WithClock sets the clock the cached answers expire by.
func WithClock(c clock.Clock) Option { return func(o *options) error { o.clock = c; return nil } }

// WithTTLs sets how long an allowed and a refused answer are kept; 0 keeps
// none.
func WithTTLs(authorized, unauthorized time.Duration) Option {
	return func(o *options) error {
		if authorized < 0 || unauthorized < 0 {
			return fmt.Errorf("cache times %s and %s: must not be negative", authorized, unauthorized)
		}
		o.authorizedTTL, o.unauthorizedTTL = authorized, unauthorized
		return nil
	}
}

// WithRetry sets how failed reviews are retried.
func WithRetry(b wait.Backoff) Option { return func(o *options) error { o.retry = b; return nil } }

// NewAuthorizer returns an authorizer sending reviews with client.
func NewAuthorizer(client authorizationclient.SubjectAccessReviewInterface, opts ...Option) (*Authorizer, error) {
	o := options{authorizedTTL: DefaultAuthorizedTTL, unauthorizedTTL: DefaultUnauthorizedTTL, retry: DefaultRetry}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.clock == nil {
		o.clock = clock.RealClock{}
	}
	return &Authorizer{client: client, opts: o, cache: utilcache.NewLRUExpireCacheWithClock(cacheSize, o.clock)}, nil
}

// errBothAnswers is a review both allowed and denied.
var errBothAnswers = errors.New("subject access review both allowed and denied")

// Authorize asks whether a's user may do what a says: Allow, Deny (an
// explicit denial), or NoOpinion (no rule allows it). An error is a review
// that could not be made.
func (z *Authorizer) Authorize(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	review := &authorizationv1.SubjectAccessReview{Spec: specOf(a)}
	key, err := json.Marshal(review.Spec)
	if err != nil {
		return authorizer.DecisionNoOpinion, "", fmt.Errorf("subject access review: %w", err)
	}
	status, ok := z.cache.Get(string(key))
	if !ok {
		var result *authorizationv1.SubjectAccessReview
		err := withRetry(ctx, z.opts.retry, func() (err error) {
			result, err = z.client.Create(ctx, review, metav1.CreateOptions{})
			return err
		})
		if err != nil {
			return authorizer.DecisionNoOpinion, "", fmt.Errorf("subject access review: %w", err)
		}
		status = result.Status
		if ttl := z.ttl(result.Status); ttl > 0 {
			z.cache.Add(string(key), result.Status, ttl)
		}
	}
	st := status.(authorizationv1.SubjectAccessReviewStatus)
	switch {
	case st.Allowed && st.Denied:
		return authorizer.DecisionDeny, st.Reason, errBothAnswers
	case st.Denied:
		return authorizer.DecisionDeny, st.Reason, nil
	case st.Allowed:
		return authorizer.DecisionAllow, st.Reason, nil
	}
	return authorizer.DecisionNoOpinion, st.Reason, nil
}

func (z *Authorizer) ttl(st authorizationv1.SubjectAccessReviewStatus) time.Duration {
	if st.Allowed && !st.Denied {
		return z.opts.authorizedTTL
	}
	return z.opts.unauthorizedTTL
}

// specOf is the review of a's user and what a asks.
func specOf(a authorizer.Attributes) authorizationv1.SubjectAccessReviewSpec {
	var spec authorizationv1.SubjectAccessReviewSpec
	if u := a.GetUser(); u != nil {
		spec.User, spec.UID, spec.Groups = u.GetName(), u.GetUID(), u.GetGroups()
		if extra := u.GetExtra(); len(extra) > 0 {
			spec.Extra = make(map[string]authorizationv1.ExtraValue, len(extra))
			for k, v := range extra {
				spec.Extra[k] = v
			}
		}
	}
	if !a.IsResourceRequest() {
		spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Path: a.GetPath(), Verb: a.GetVerb()}
		return spec
	}
	spec.ResourceAttributes = &authorizationv1.ResourceAttributes{
		Namespace: a.GetNamespace(), Verb: a.GetVerb(), Group: a.GetAPIGroup(), Version: a.GetAPIVersion(),
		Resource: a.GetResource(), Subresource: a.GetSubresource(), Name: a.GetName(),
	}
	return spec
}
