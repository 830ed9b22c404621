package stack

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/wedsync/backup-replication/infra/local/rie"
	"github.com/wedsync/backup-replication/infra/local/samtemplate"
)

// defaultInstances is how many invocations of a function run at once
// unless Options.Instances says otherwise.
func defaultInstances(f *samtemplate.Function) int {
	switch {
	case len(f.HTTP) > 0:
		return 3
	case len(f.SQS) > 0:
		return 2
	}
	return 1
}

// startFunctions builds every function to run for this machine and starts
// it under aws-lambda-rie with its environment.
func (s *Stack) startFunctions(ctx context.Context, wsEndpoint string) error {
	want := map[string]bool{}
	for _, id := range s.opts.Functions {
		if _, ok := s.Template.Functions[id]; !ok {
			return fmt.Errorf("function %s is not in template.yaml", id)
		}
		want[id] = true
	}
	dirs := map[string]string{}
	for _, id := range s.Template.FunctionIDs() {
		if len(want) > 0 && !want[id] {
			s.Skipped[id] = "not selected"
			continue
		}
		dir, err := FunctionDir(ctx, s.root, id)
		if err != nil {
			return err
		}
		if !FunctionExists(s.root, dir) {
			s.Skipped[id] = "functions/" + dir + " does not exist yet"
			s.log.Info("function skipped", "function", id, "reason", s.Skipped[id])
			continue
		}
		dirs[id] = dir
	}
	// Build each folder once (the three replicate deployments share one).
	binaries := map[string]string{}
	for _, dir := range uniqueValues(dirs) {
		bin, err := BuildNative(ctx, s.root, dir)
		if err != nil {
			return err
		}
		binaries[dir] = bin
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	for id, dir := range dirs {
		f := s.Template.Functions[id]
		n := s.opts.Instances[id]
		if n <= 0 {
			n = defaultInstances(f)
		}
		cfg := rie.Config{
			Name: id, Bootstrap: binaries[dir], Env: s.functionEnv(f, wsEndpoint),
			Timeout: f.Timeout, MemoryMB: f.MemoryMB, Instances: n, Output: s.opts.Output,
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn, err := rie.Start(ctx, cfg)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			s.fnMu.Lock()
			s.functions[id] = fn
			s.fnMu.Unlock()
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// startEventSources starts the SQS pollers and the schedules.
func (s *Stack) startEventSources(ctx context.Context) {
	region := s.Template.Ref("AWS::Region")
	for _, id := range s.Running() {
		f, fn := s.Template.Functions[id], s.functions[id]
		for _, ev := range f.SQS {
			qid, ok := s.Template.LogicalIDByArn(ev.QueueArn)
			if !ok {
				s.log.Warn("SQS event names an unknown queue", "function", id, "queue", ev.QueueArn)
				continue
			}
			n := s.opts.Instances[id]
			if n <= 0 {
				n = defaultInstances(f)
			}
			for i := 0; i < n; i++ {
				p := &poller{
					sqs: s.clients.sqs, queueURL: s.Template.Ref(qid), queueArn: ev.QueueArn, region: region,
					batchSize: ev.BatchSize, partial: ev.ReportBatchItemFailures, wait: s.opts.PollWait, fn: fn,
					log: s.log.With("function", id, "queue", qid),
				}
				s.wg.Add(1)
				go func() { defer s.wg.Done(); p.run(ctx) }()
			}
		}
		if s.opts.ScheduleInterval < 0 {
			continue
		}
		for _, ev := range f.Schedules {
			every := s.opts.ScheduleInterval
			if every == 0 {
				var err error
				if every, err = RateInterval(ev.Expression); err != nil {
					s.log.Warn("schedule not played", "function", id, "error", err.Error())
					continue
				}
			}
			sc := &schedule{fn: fn, interval: every, accountID: s.Template.Ref("AWS::AccountId"), region: region,
				ruleArn: fmt.Sprintf("arn:aws:events:%s:%s:rule/%s-%s", region, s.Template.Ref("AWS::AccountId"), f.Name, ev.Name),
				log:     s.log.With("function", id)}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); sc.run(ctx) }()
		}
	}
}

// functionEnv is a function's environment: the template's variables
// (resolved to local names), then the local endpoints and credentials,
// then Options.Env and Options.FunctionEnv.
func (s *Stack) functionEnv(f *samtemplate.Function, wsEndpoint string) []string {
	env := map[string]string{}
	for k, v := range f.Env {
		env[k] = v
	}
	for k, v := range s.localEnv(wsEndpoint) {
		env[k] = v
	}
	for k, v := range s.opts.Env {
		env[k] = v
	}
	for k, v := range s.opts.FunctionEnv[f.LogicalID] {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// FunctionEnv returns the environment the stack gives a function (for
// tests that run a bootstrap themselves).
func (s *Stack) FunctionEnv(logicalID string) map[string]string {
	f, ok := s.Template.Functions[logicalID]
	if !ok {
		return nil
	}
	out := map[string]string{}
	for _, kv := range s.functionEnv(f, "") {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

func uniqueValues(m map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range m {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}
