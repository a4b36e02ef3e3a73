package supervisor

import (
	"testing"

	v1 "k8s.io/api/core/v1"
)

// TestAdmissionInOrder: admitters are asked in order and the first refusal
// is the pod's reason; a pod all admit is admitted.
func TestAdmissionInOrder(t *testing.T) {
	var asked []string
	admitter := func(name string, ok bool) AdmitFunc {
		return func(*v1.Pod) (bool, string, string) {
			asked = append(asked, name)
			if ok {
				return true, "", ""
			}
			return false, name, name + " refuses"
		}
	}
	s := &Supervisor{}
	WithAdmission(admitter("eviction", true), admitter("AppArmor", false), admitter("never", false))(s)
	ok, reason, message := s.admit(&v1.Pod{})
	if ok || reason != "AppArmor" || message != "AppArmor refuses" || len(asked) != 2 {
		t.Errorf("admitted %v with %q %q after asking %q; want AppArmor's refusal, the third not asked", ok, reason, message, asked)
	}
	WithAdmission(admitter("eviction", true), admitter("runtime", true))(s)
	if ok, reason, _ := s.admit(&v1.Pod{}); !ok {
		t.Errorf("refused with %q; want admitted", reason)
	}
}
