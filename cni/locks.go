package cni

import "sync"

// keyedMutex serializes work on one sandbox while others proceed.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyLock // guarded by mu; an entry lives while refs > 0
}

type keyLock struct {
	mu   sync.Mutex
	refs int // guarded by keyedMutex.mu
}

// lock waits for key and returns its unlock.
func (k *keyedMutex) lock(key string) (unlock func()) {
	l := k.ref(key)
	l.mu.Lock()
	return func() { l.mu.Unlock(); k.unref(key, l) }
}

// tryLock takes key if nobody holds or waits for it.
func (k *keyedMutex) tryLock(key string) (unlock func(), ok bool) {
	l := k.ref(key)
	if !l.mu.TryLock() {
		k.unref(key, l)
		return nil, false
	}
	return func() { l.mu.Unlock(); k.unref(key, l) }, true
}

func (k *keyedMutex) ref(key string) *keyLock {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{}
		k.locks[key] = l
	}
	l.refs++
	return l
}

func (k *keyedMutex) unref(key string, l *keyLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if l.refs--; l.refs == 0 {
		delete(k.locks, key)
	}
}
