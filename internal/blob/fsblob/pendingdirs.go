package fsblob

import (
	"path/filepath"
	"sync"
)

// pendingDirs tracks directories whose creation may not be durable yet.
//
// When Put A creates a directory, Put B may rename its own object into it
// before A has fsynced the directory's parent. B's fsync of the directory
// itself does not make the directory's entry durable, so without help B could
// return "durable" for an object a crash would lose. Creators register a
// directory before mkdir and release it after its parent is fsynced; a Put
// that, after its rename, finds one of its ancestors still registered fsyncs
// that ancestor's parent itself. Registering before mkdir is what makes the
// check sound: anyone who saw the directory exist checks after it was added.
// The set holds only directories of Puts in flight, so it stays small.
type pendingDirs struct {
	mu   sync.Mutex
	refs map[string]int
}

func (p *pendingDirs) add(dir string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refs == nil {
		p.refs = make(map[string]int)
	}
	p.refs[dir]++
}

func (p *pendingDirs) release(dirs ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range dirs {
		if p.refs[d]--; p.refs[d] <= 0 {
			delete(p.refs, d)
		}
	}
}

// pendingAncestors returns the ancestors of dir, dir included, below root
// that are registered.
func (p *pendingDirs) pendingAncestors(root, dir string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.refs) == 0 {
		return nil
	}
	var out []string
	for ; len(dir) > len(root); dir = filepath.Dir(dir) {
		if p.refs[dir] > 0 {
			out = append(out, dir)
		}
	}
	return out
}
