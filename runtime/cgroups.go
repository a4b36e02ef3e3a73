package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	"google.golang.org/grpc"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsup/podsup/cgroups"
)

// setCgroupDriver places pods with the named driver. Pods of another
// podsup, in another containerd namespace, must never share a cgroup with
// these: the parent is named after the namespace, /podsup by default.
func (r *Runtime) setCgroupDriver(name string) error {
	d, err := cgroups.New(name, cgroups.Root, "/"+r.namespace)
	if err != nil {
		return err
	}
	r.cgroups = d
	return nil
}

// CgroupDriver is the name of the driver in use.
func (r *Runtime) CgroupDriver() string { return r.cgroups.Name() }

// UseRuntimeCgroupDriver asks containerd which cgroup driver its CRI
// runtime is configured with (runc's SystemdCgroup), as the kubelet asks
// the runtime, and uses that one: the host's containerd knows whether
// systemd owns its cgroups. A containerd that cannot say (1.6, or a CRI
// plugin that is disabled) leaves --cgroup-driver in force. It returns the
// driver in use and whether the runtime chose it. Call it before the first
// pod starts.
func (r *Runtime) UseRuntimeCgroupDriver(ctx context.Context) (string, bool) {
	conn, ok := r.client.Conn().(*grpc.ClientConn)
	if !ok {
		return r.CgroupDriver(), false
	}
	ctx, cancel := context.WithTimeout(r.Context(ctx), 10*time.Second)
	defer cancel()
	resp, err := runtimeapi.NewRuntimeServiceClient(conn).RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
	if err != nil || resp.GetLinux() == nil {
		r.log.Debug("containerd does not say which cgroup driver it uses; keeping --cgroup-driver", "driver", r.CgroupDriver(), "err", err)
		return r.CgroupDriver(), false
	}
	name := cgroups.CgroupFS
	if resp.GetLinux().GetCgroupDriver() == runtimeapi.CgroupDriver_SYSTEMD {
		name = cgroups.Systemd
	}
	if name != r.CgroupDriver() {
		r.log.Info("using the cgroup driver containerd is configured with, not --cgroup-driver", "driver", name, "flag", r.CgroupDriver())
		if err := r.setCgroupDriver(name); err != nil {
			return r.CgroupDriver(), false
		}
	}
	return name, true
}

// cgroupsPath is the OCI cgroupsPath of one container of a pod.
func (r *Runtime) cgroupsPath(key string, class v1.PodQOSClass, id string) string {
	return r.cgroups.ContainerPath(cgroups.Pod{Hash: PodHash(key), Class: class}, id)
}

// runcOptions are the options of podsup's runc containers: the systemd
// driver must be named to runc, which otherwise reads a slice:prefix:name
// cgroupsPath as a path.
func (r *Runtime) runcOptions() any {
	if r.cgroups.Name() == cgroups.Systemd {
		return &options.Options{SystemdCgroup: true}
	}
	return nil
}

// removeContainerCgroup removes a container's own cgroup once its task is
// gone: runc removes it when the task is deleted, but not one a create cut
// short made (containerd 2.3 deletes such a task with "container not
// created" and leaves the cgroup; seen when podsup was killed while it
// created a task).
func (r *Runtime) removeContainerCgroup(ctx context.Context, cgroupsPath string) error {
	if err := r.cgroups.RemoveContainer(ctx, cgroupsPath); err != nil {
		return fmt.Errorf("cgroup %s: %w", cgroupsPath, err)
	}
	return nil
}
