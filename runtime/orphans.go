package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// RemoveOrphans removes what interrupted creates left of podsup's
// containers: tasks whose container record is gone, and writable snapshots
// and views no container uses (see RemoveOrphanSnapshots). A task is never
// made before its container, so one without a container belongs to no one;
// snapshots are touched only when older than minAge, so a start in progress
// keeps its own. prefix, when set, limits the sweep to one pod's (its hash
// and "_"); without it, the image volume views of pods whose directory is
// gone go too.
func (r *Runtime) RemoveOrphans(ctx context.Context, prefix string, minAge time.Duration) error {
	err := errors.Join(r.removeOrphanTasks(ctx, prefix), r.RemoveOrphanSnapshots(ctx, prefix, minAge))
	if prefix == "" {
		// And the image volumes of pods whose directory is gone.
		err = errors.Join(err, r.removeImageVolumes(ctx, r.podDirExists))
	}
	return err
}

// removeOrphanTasks kills and deletes podsup's tasks without a container.
// Tasks are listed before containers: a container made in between has its
// task, if any, made after the task list was taken.
func (r *Runtime) removeOrphanTasks(ctx context.Context, prefix string) error {
	ctx = r.Context(ctx)
	resp, err := r.client.TaskService().List(ctx, &tasks.ListTasksRequest{})
	if err != nil {
		return fmt.Errorf("list tasks: %w", errgrpc.ToNative(err))
	}
	recs, err := r.client.ContainerService().List(ctx)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	owned := map[string]bool{}
	for _, rec := range recs {
		owned[rec.ID] = rec.Labels[LabelKind] != kindOrphan
	}
	var errs []error
	for _, p := range resp.Tasks {
		id := p.ID
		if p.ContainerID != "" {
			id = p.ContainerID
		}
		if owned[id] || !isPodsupID(id) || !strings.HasPrefix(id, prefix) {
			continue
		}
		r.log.Info("removing a task whose container is gone", "container", id)
		if err := r.removeOrphanTask(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeOrphanTask removes one task without a container through a stand-in
// container record of its ID, deleted again afterwards. A stand-in that a
// podsup killed meanwhile leaves is found and used by the next sweep.
func (r *Runtime) removeOrphanTask(ctx context.Context, id string) error {
	spec, err := typeurl.MarshalAny(&specs.Spec{})
	if err != nil {
		return fmt.Errorf("stand-in for the task of %s: %w", id, err)
	}
	cs := r.client.ContainerService()
	_, err = cs.Create(ctx, containers.Container{ID: id, Runtime: containers.RuntimeInfo{Name: runcRuntime}, Spec: spec,
		Labels: map[string]string{LabelKind: kindOrphan}})
	if err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("stand-in for the task of %s: %w", id, err)
	}
	r.removeTaskByID(id)
	if err := cs.Delete(ctx, id); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove the stand-in for the task of %s: %w", id, err)
	}
	return nil
}
