package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tokenproxy/tokenproxy/tokensource"
)

// HoldRefusals records for the fleet that refusals fetch nothing before until, sealed as a token record is
// and bound to this slot's key; a hold is never written for longer than the longest refusal backoff.
func (sl *slot) HoldRefusals(ctx context.Context, until time.Time) {
	now := sl.s.now()
	until = minTime(until, now.Add(tokensource.RefusalBackoffMax))
	ttl := until.Sub(now)
	if ttl <= 0 {
		return
	}
	sealed, err := sl.s.sealHold(sl.holdKey(), now, until)
	if err != nil {
		return
	}
	call, cancel := sl.s.call(ctx)
	defer cancel()
	_ = sl.s.result("hold", sl.s.client.Set(call, sl.holdKey(), sealed, ttl).Err())
}

// RefusalsHeld returns when the fleet lets refusals fetch again, at most the longest refusal backoff from
// now; zero when it does now, or when Redis cannot say (the replica's own refusal backoff still applies).
// A value that does not open (written by anyone but a replica with the secret key, altered, or copied from
// another key) is no hold: it is counted, and logged once until a readable one is found again.
func (sl *slot) RefusalsHeld(ctx context.Context) time.Time {
	call, cancel := sl.s.call(ctx)
	defer cancel()
	key := sl.holdKey()
	sealed, err := sl.s.client.Get(call, key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		sl.s.healthyAgain()
		sl.s.metrics.StoreOperation("held", "miss")
		sl.holdUnreadable.Store(false)
		return time.Time{}
	case err != nil:
		_ = sl.s.result("held", err)
		return time.Time{}
	}
	sl.s.healthyAgain()
	until, err := sl.s.openHold(key, sealed, sl.s.now())
	if err != nil {
		sl.s.metrics.StoreOperation("held", "unreadable")
		if !sl.holdUnreadable.Swap(true) {
			sl.s.log.Warn("a refusal hold in the shared store does not open; treated as absent, 401s are replayed",
				"key", key, "error", err)
		}
		return time.Time{}
	}
	sl.s.metrics.StoreOperation("held", "ok")
	sl.holdUnreadable.Store(false)
	return until
}

// holdKey is where the fleet's refusal hold of this slot is: not the ":refused" key of the plain numbers
// earlier versions wrote, so that in a rolling upgrade neither version reads the other's holds as a fault.
func (sl *slot) holdKey() string { return sl.redisKey + ":refusal-hold" }

// holdRecord is what Redis holds for the fleet's refusal hold: when it began, so that a reader can bound
// it by the longest refusal backoff whatever its end says, and when it ends.
type holdRecord struct {
	Since int64 `json:"f"` // unix milliseconds
	Until int64 `json:"u"`
}

// sealHold encrypts a refusal hold from since to until, bound to key as token records are.
func (s *Store) sealHold(key string, since, until time.Time) (string, error) {
	return s.sealJSON(key, holdRecord{Since: since.UnixMilli(), Until: until.UnixMilli()})
}

// openHold returns until when the hold sealed at key holds refusals back, as seen at now: never longer than
// the longest refusal backoff after it began, nor after now; zero once it is over. A hold that begins more
// than that backoff after now is an error: no replica of the fleet can have begun it yet.
func (s *Store) openHold(key, sealed string, now time.Time) (time.Time, error) {
	var h holdRecord
	if err := s.openJSON(key, sealed, &h); err != nil {
		return time.Time{}, err
	}
	since, until := time.UnixMilli(h.Since), time.UnixMilli(h.Until)
	if since.After(now.Add(tokensource.RefusalBackoffMax)) {
		return time.Time{}, fmt.Errorf("the hold begins more than %s from now (a clock ahead of this one)", tokensource.RefusalBackoffMax)
	}
	until = minTime(until, since.Add(tokensource.RefusalBackoffMax), now.Add(tokensource.RefusalBackoffMax))
	if !now.Before(until) {
		return time.Time{}, nil
	}
	return until, nil
}

// minTime is the earliest of the times.
func minTime(first time.Time, rest ...time.Time) time.Time {
	for _, t := range rest {
		if t.Before(first) {
			first = t
		}
	}
	return first
}
