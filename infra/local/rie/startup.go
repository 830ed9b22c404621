package rie

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// startupWriter holds what an emulator attempt writes until it listens.
// An attempt that exits before listening (its port taken by another
// process; start tries again on other ports) then leaves nothing in the
// function's log, where its "[PANIC] … bind: address already in use"
// would read as the function crashing; what it said goes into start's
// error instead, should every attempt fail.
type startupWriter struct {
	mu   sync.Mutex
	w    io.Writer
	held bytes.Buffer
	open bool
}

func (s *startupWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open {
		return s.w.Write(b)
	}
	return s.held.Write(b)
}

// release passes on what was held and everything written from now on.
func (s *startupWriter) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open = true
	if s.held.Len() > 0 {
		s.w.Write(s.held.Bytes())
		s.held.Reset()
	}
}

// said is what the attempt wrote while held, on one line.
func (s *startupWriter) said() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return truncate([]byte(strings.Join(strings.Fields(s.held.String()), " ")), 500)
}
