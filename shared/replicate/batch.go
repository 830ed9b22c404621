package replicate

import (
	"sync"

	"github.com/aws/aws-lambda-go/events"
)

// EachRecord runs handle on every record of an SQS batch, at most
// concurrency at a time, and lists the records handle reports not done
// (false) as batch item failures, so that the event source mapping
// (FunctionResponseTypes: ReportBatchItemFailures) returns only those to
// the queue. The replicate and seal handlers share it.
func EachRecord(records []events.SQSMessage, concurrency int, handle func(events.SQSMessage) bool) []events.SQSBatchItemFailure {
	var (
		mu     sync.Mutex
		failed []events.SQSBatchItemFailure
		wg     sync.WaitGroup
		sem    = make(chan struct{}, max(concurrency, 1))
	)
	for _, msg := range records {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if !handle(msg) {
				mu.Lock()
				failed = append(failed, events.SQSBatchItemFailure{ItemIdentifier: msg.MessageId})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failed
}
