package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Sources of desired state, as the kubelet names them in the
// kubernetes.io/config.source annotation.
const (
	SourceFile = "file"
	SourceHTTP = "http"
	SourceAPI  = "api"
)

// Annotations the kubelet sets on static pods, and podsup's own.
const (
	AnnotationSource = "kubernetes.io/config.source"
	AnnotationHash   = "kubernetes.io/config.hash"
	AnnotationSeen   = "kubernetes.io/config.seen"
	AnnotationMirror = "kubernetes.io/config.mirror"
	// AnnotationManifest names the file, URL or pushed name a pod came from.
	AnnotationManifest = "podsup.io/manifest"
)

// Static is what fixes the identity of the pods of one manifest: the node
// they run on and the source they came from.
type Static struct {
	NodeName string
	Source   string // SourceFile, SourceHTTP or SourceAPI
}

// StaticName is the name a static pod runs under: "<name>-<node>", as the
// kubelet names it, so that mirror pods of several nodes do not collide.
func StaticName(name, nodeName string) string { return name + "-" + nodeName }

// applyIdentity turns a pod as declared into the static pod the kubelet would
// run: name <name>-<node>, namespace "default" when unset, spec.nodeName set,
// and a UID that is a hash of the pod as written (before defaulting, so that
// a podsup upgrade that defaults a new field does not change it), the node,
// the source and the origin. A UID set in the manifest is kept, as the
// kubelet keeps it. The config.source and config.hash annotations record
// both; config.seen is set by the merger when it first sees the pod.
func (s Static) applyIdentity(pod *v1.Pod, asWritten []byte, origin string) {
	if pod.UID == "" {
		h := sha256.New()
		h.Write(asWritten)
		fmt.Fprintf(h, "\x00host:%s\x00%s:%s", s.NodeName, s.Source, origin)
		pod.UID = types.UID(hex.EncodeToString(h.Sum(nil)[:16]))
	}
	pod.Name = StaticName(pod.Name, s.NodeName)
	if pod.Namespace == "" {
		pod.Namespace = "default"
	}
	pod.Spec.NodeName = s.NodeName
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationSource] = s.Source
	pod.Annotations[AnnotationHash] = string(pod.UID)
	pod.Annotations[AnnotationManifest] = displayOrigin(origin)
	// As the kubelet does for file pods: tolerate every NoExecute taint, so a
	// mirror pod is never evicted by the taint manager.
	if s.Source == SourceFile && !toleratesNoExecute(pod) {
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, v1.Toleration{Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute})
	}
	pod.Status = v1.PodStatus{Phase: v1.PodPending}
}

func toleratesNoExecute(pod *v1.Pod) bool {
	for _, t := range pod.Spec.Tolerations {
		if t.Operator == v1.TolerationOpExists && t.Key == "" && t.Effect == v1.TaintEffectNoExecute {
			return true
		}
	}
	return false
}

// displayOrigin drops credentials and query strings from a URL origin so
// they never reach a status or log line.
func displayOrigin(origin string) string {
	u, err := url.Parse(origin)
	if err != nil {
		// Unparsable: cut anything that may be a credential or a query.
		origin, _, _ = strings.Cut(origin, "?")
		if scheme, rest, ok := strings.Cut(origin, "://"); ok {
			if at := strings.LastIndexByte(rest, '@'); at >= 0 {
				rest = rest[at+1:]
			}
			origin = scheme + "://" + rest
		}
		return origin
	}
	if u.Scheme == "" || u.Host == "" {
		return origin
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

// canonical is the JSON of an object as decoded. k8s.io/api types omit
// empty optional fields, so a newer API version with more fields encodes an
// old manifest the same way.
func canonical(obj any) []byte {
	js, err := json.Marshal(obj)
	if err != nil {
		panic(fmt.Sprintf("encode %T: %v", obj, err)) // k8s.io/api types always encode
	}
	return js
}
