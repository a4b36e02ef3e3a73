package manifest

import (
	"reflect"
	"regexp"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// decisions indexes FieldDecisions by path, for the entries of every value.
func decisions(t *testing.T) map[string]FieldDecision {
	t.Helper()
	byPath := map[string]FieldDecision{}
	seen := map[string]bool{}
	for _, d := range FieldDecisions {
		if seen[d.Path+"="+d.Value] {
			t.Errorf("%s=%q: recorded twice", d.Path, d.Value)
		}
		seen[d.Path+"="+d.Value] = true
		if d.Reason == "" {
			t.Errorf("%s: no reason", d.Path)
		}
		if d.Value == "" {
			byPath[d.Path] = d
		}
	}
	return byPath
}

// lookup finds the decision for a field; an init container's field falls
// back to the same field of a container.
func lookup(byPath map[string]FieldDecision, path string) (FieldDecision, bool) {
	if d, ok := byPath[path]; ok {
		return d, true
	}
	if rest, ok := strings.CutPrefix(path, "spec.initContainers[]"); ok {
		d, ok := byPath["spec.containers[]"+rest]
		return d, ok
	}
	return FieldDecision{}, false
}

// fieldWalk visits every field of a type by its manifest path. A warned or
// refused field covers what is under it; every other field must be a leaf
// with a decision of its own.
type fieldWalk struct {
	t      *testing.T
	byPath map[string]FieldDecision
	paths  map[string]bool // every path visited, for entries that name no field
}

func (w *fieldWalk) walk(typ reflect.Type, path string) {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	w.paths[path] = true
	d, ok := lookup(w.byPath, path)
	if ok && d.Decision != Honoured {
		return
	}
	switch {
	case typ.Kind() == reflect.Slice && typ.Elem().Kind() != reflect.Uint8:
		w.walk(typ.Elem(), path+"[]")
		return
	case typ.Kind() == reflect.Struct && typ.PkgPath() == reflect.TypeOf(v1.Pod{}).PkgPath():
		if ok {
			w.t.Errorf("%s: honoured as a whole; record each of its fields, so that a new one cannot slip through", path)
		}
		for name, f := range jsonFields(typ) {
			w.walk(f.Type, path+"."+name)
		}
		return
	}
	if !ok {
		w.t.Errorf("%s: no decision in FieldDecisions: honour it, warn of it or refuse it", path)
	}
}

// TestFieldDecisions: every field of a pod's spec, its containers and its
// volumes in this k8s.io/api has a decision, and every entry names a field.
func TestFieldDecisions(t *testing.T) {
	w := &fieldWalk{t: t, byPath: decisions(t), paths: map[string]bool{}}
	w.walk(reflect.TypeOf(v1.PodSpec{}), "spec")
	for _, d := range FieldDecisions {
		if !w.paths[d.Path] {
			t.Errorf("%s: names no field of a pod, or one under a warned or refused field", d.Path)
		}
	}
}

// basePod is a valid pod with an init container and a volume, for the
// fields under them to be set on.
func basePod() *v1.Pod {
	pod := &v1.Pod{Spec: v1.PodSpec{
		InitContainers: []v1.Container{{Name: "init", Image: "busybox:1"}},
		Containers:     []v1.Container{{Name: "app", Image: "busybox:1"}},
		Volumes:        []v1.Volume{{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}},
	}}
	pod.Name = "web"
	SetDefaults(pod)
	return pod
}

var listIndex = regexp.MustCompile(`\[[^\]]*\]`)

// names reports whether a problem's field path is the entry's field or
// under it: spec.containers[0].resources.limits[hugepages-2Mi] is under
// spec.containers[].resources.limits.
func names(problem, entry string) bool {
	p := listIndex.ReplaceAllString(problem, "[]")
	return p == entry || strings.HasPrefix(p, entry+".") || strings.HasPrefix(p, entry+"[")
}

// TestFieldDecisionsMatchValidator sets each field on a valid pod and
// checks that ValidatePod does what the table says: a warning naming a
// warned field, an error naming a refused one, and for an honoured one
// neither "not supported by podsup", "not honoured" nor "ignored" (unless
// the table names the values that are not honoured).
func TestFieldDecisionsMatchValidator(t *testing.T) {
	byValue := map[string]bool{}
	for _, d := range FieldDecisions {
		byValue[d.Path] = byValue[d.Path] || d.Value != ""
	}
	if errs, warnings := ValidatePod("web.yaml", basePod()); len(errs)+len(warnings) > 0 {
		t.Fatalf("the base pod is not clean: %v %v", errs, warnings)
	}
	for _, d := range FieldDecisions {
		t.Run(d.Path+"="+d.Value, func(t *testing.T) {
			pod := basePod()
			setField(t, reflect.ValueOf(&pod.Spec).Elem(), strings.Split(strings.TrimPrefix(d.Path, "spec."), "."), d.Value)
			errs, warnings := ValidatePod("web.yaml", pod)
			at := func(list []*Error) []*Error {
				var found []*Error
				for _, e := range list {
					if names(e.Field, d.Path) {
						found = append(found, e)
					}
				}
				return found
			}
			switch d.Decision {
			case Warned:
				if len(at(warnings)) == 0 || len(at(errs)) > 0 {
					t.Errorf("recorded as warned, but ValidatePod gave warnings %v and errors %v", at(warnings), at(errs))
				}
			case Refused:
				if len(at(errs)) == 0 {
					t.Errorf("recorded as refused, but ValidatePod gave no error naming it; errors: %v warnings: %v", errs, warnings)
				}
			case Honoured:
				if byValue[d.Path] {
					return // "x" may be one of the values warned of or refused
				}
				for _, e := range append(at(errs), at(warnings)...) {
					if strings.Contains(e.Msg, "not supported by podsup") || strings.Contains(e.Msg, "not honoured") || strings.Contains(e.Msg, "ignored") {
						t.Errorf("recorded as honoured, but: %v", e)
					}
				}
			}
		})
	}
}

// setField sets the field at path under v: the first element of each
// list on the way (added if there is none), then at the end the entry's
// value, or a value that is not the zero one.
func setField(t *testing.T, v reflect.Value, path []string, value string) {
	t.Helper()
	name, list := strings.CutSuffix(path[0], "[]")
	f, ok := jsonFields(v.Type())[name]
	if !ok {
		t.Fatalf("no field %q in %s", name, v.Type())
	}
	fv := v.FieldByIndex(f.Index)
	if list {
		if fv.Len() == 0 {
			fv.Set(reflect.Append(fv, reflect.Zero(fv.Type().Elem())))
		}
		fv = fv.Index(0)
	}
	if len(path) > 1 {
		if fv.Kind() == reflect.Pointer {
			if fv.IsNil() {
				fv.Set(reflect.New(fv.Type().Elem()))
			}
			fv = fv.Elem()
		}
		setField(t, fv, path[1:], value)
		return
	}
	if value != "" {
		setValue(t, fv, value)
		return
	}
	nonZero(fv)
}

// setValue sets a string-like field, or adds a key to a resource list.
func setValue(t *testing.T, v reflect.Value, value string) {
	switch {
	case v.Kind() == reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		setValue(t, v.Elem(), value)
	case v.Kind() == reflect.String:
		v.SetString(value)
	case v.Type() == reflect.TypeOf(v1.ResourceList{}):
		name := v1.ResourceName(strings.Replace(value, "*", "2Mi", 1))
		v.Set(reflect.ValueOf(v1.ResourceList{name: resource.MustParse("2Mi")}))
	default:
		t.Fatalf("cannot set %s to %q", v.Type(), value)
	}
}

// nonZero gives v a value that is not the zero one: a list of one zero
// element, a new zero struct, "x", 1 or true.
func nonZero(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		if v.Elem().Kind() != reflect.Struct {
			nonZero(v.Elem())
		}
	case reflect.Slice:
		elem := reflect.New(v.Type().Elem()).Elem()
		nonZero(elem)
		v.Set(reflect.Append(v, elem))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		nonZero(k)
		nonZero(e)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	}
}
