package files

import (
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// CheckInterval is how often Get may stat the files to look for a change:
// reads in between cost one atomic load.
const CheckInterval = time.Second

// Watch describes a value loaded from files.
type Watch[T any] struct {
	// Paths are the files the value is loaded from; any change of one of
	// them (modification time, size or inode) triggers a reload.
	Paths []string
	// Load reads the files and builds the value. It is never called
	// concurrently with itself.
	Load func() (T, error)
	// Interval is the least time between two checks in Get; zero checks
	// at every Get. Use CheckInterval unless there is a reason not to.
	Interval time.Duration
	// Loaded, if set, is called after each successful reload (not the
	// first load), to log it.
	Loaded func(T)
	// Failed, if set, is called when a reload fails, to log it; the
	// current value stays. A change check calls it once per bad version
	// of the files, Reload every time.
	Failed func(error)
}

// Watched holds a value loaded from files and reloads it when they change:
// checked during Get at most once per Interval, and on Reload (SIGHUP). A
// failed reload keeps the current value. It is safe for concurrent use.
type Watched[T any] struct {
	w Watch[T]

	current   atomic.Pointer[version[T]] // read by every Get
	lastCheck atomic.Int64               // unix nanoseconds of the last change check

	mu        sync.Mutex // serializes loads
	failed    []stamp    // the files as they were at the last failed load; guarded by mu
	hasFailed bool       // guarded by mu
}

// version is one loaded value and the state of the files it came from.
type version[T any] struct {
	value T
	files []stamp
}

// stamp identifies a version of one file. A file that cannot be statted
// has the zero stamp.
type stamp struct {
	ok            bool
	modTime, size int64
	dev, ino      uint64
}

// New loads the value for the first time; its error is Load's.
func New[T any](w Watch[T]) (*Watched[T], error) {
	wt := &Watched[T]{w: w}
	v, err := wt.load()
	if err != nil {
		return nil, err
	}
	wt.current.Store(v)
	wt.lastCheck.Store(time.Now().UnixNano())
	return wt, nil
}

// Get returns the current value, after looking for changed files if
// Interval has passed since the last look. While one caller reloads,
// the others get the current value without waiting.
func (wt *Watched[T]) Get() T {
	wt.reloadIfChanged()
	return wt.current.Load().value
}

// Current returns the current value without looking at the files.
func (wt *Watched[T]) Current() T { return wt.current.Load().value }

// Reload loads the files again, changed or not. On an error it keeps the
// current value, reports the error to Failed and returns it.
func (wt *Watched[T]) Reload() error {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	return wt.reloadLocked()
}

// Recheck makes the next Get look at the files, as if Interval had passed.
func (wt *Watched[T]) Recheck() { wt.lastCheck.Store(0) }

// Set replaces the value with v, recorded as loaded from the files as they
// are now: for an owner that has just written the files itself and needs
// no re-read.
func (wt *Watched[T]) Set(v T) {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	wt.current.Store(&version[T]{value: v, files: wt.stat()})
	wt.hasFailed = false
}

// reloadLocked replaces the current value. wt.mu must be held.
func (wt *Watched[T]) reloadLocked() error {
	v, err := wt.load()
	if err != nil {
		wt.failed, wt.hasFailed = v.files, true
		if wt.w.Failed != nil {
			wt.w.Failed(err)
		}
		return err
	}
	wt.current.Store(v)
	wt.failed, wt.hasFailed = nil, false
	if wt.w.Loaded != nil {
		wt.w.Loaded(v.value)
	}
	return nil
}

// load stats, then reads, the files. Statting first means a change made
// during the read is seen as a change at the next check. The returned
// version always carries the stamps, even with an error.
func (wt *Watched[T]) load() (*version[T], error) {
	files := wt.stat()
	value, err := wt.w.Load()
	return &version[T]{value: value, files: files}, err
}

func (wt *Watched[T]) stat() []stamp {
	s := make([]stamp, len(wt.w.Paths))
	for i, p := range wt.w.Paths {
		s[i] = statFile(p)
	}
	return s
}

// statFile returns the stamp of path, or the zero stamp if it cannot be
// statted (the load that follows reports why).
func statFile(path string) stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}
	}
	s := stamp{ok: true, modTime: fi.ModTime().UnixNano(), size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino = uint64(st.Dev), st.Ino
	}
	return s
}

// reloadIfChanged is Get's check. At most once per Interval one caller
// stats the files and, if they changed, reloads them while the others
// carry on with the current value. Files that failed to load are reported
// once, not at every check.
func (wt *Watched[T]) reloadIfChanged() {
	if wt.w.Interval > 0 {
		now := time.Now().UnixNano()
		last := wt.lastCheck.Load()
		if now-last < int64(wt.w.Interval) || !wt.lastCheck.CompareAndSwap(last, now) {
			return
		}
	}
	files := wt.stat()
	if slices.Equal(files, wt.current.Load().files) {
		return
	}
	if !wt.mu.TryLock() {
		return // a Reload is running; it reads the new files
	}
	defer wt.mu.Unlock()
	if wt.hasFailed && slices.Equal(files, wt.failed) || slices.Equal(files, wt.current.Load().files) {
		return // already failed and reported, or just loaded
	}
	_ = wt.reloadLocked() // reported inside
}
