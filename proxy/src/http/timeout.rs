//! A listener's per-request timeouts, on one timer per request:
//! `request_timeout` (the request received completely within it, counted
//! from its start) and `stream_idle_timeout` (no body bytes either way for
//! it). A listener with neither configured gets no timer at all.
//!
//! The handler races the request's exchange against the timer until the
//! response headers (then the answer is 408); after that the response body
//! carries the timer and fails when it fires, which resets the stream.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

pub use crate::limits::Timeouts;

/// What the request's bodies tell the timer: the last byte either way and
/// whether the request has been received completely.
pub struct Activity {
    start: Instant,
    /// Milliseconds after `start` of the last frame either way.
    last_ms: AtomicU64,
    received: AtomicBool,
}

impl Activity {
    /// A frame passed, either way.
    pub fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// The request has been received completely (also a frame).
    pub fn received(&self) {
        self.touch();
        self.received.store(true, Ordering::Relaxed);
    }
}

/// Which timeout fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Expired {
    /// `request_timeout`: the request was not received completely.
    #[error("request not received within {0:?}")]
    Request(Duration),
    /// `stream_idle_timeout`: no bytes either way.
    #[error("stream idle for {0:?}")]
    Idle(Duration),
}

/// One request's timer.
pub struct StreamTimer {
    timeouts: Timeouts,
    activity: Arc<Activity>,
    sleep: Pin<Box<Sleep>>,
}

impl StreamTimer {
    /// A timer for a request starting now; none when no timeout is set.
    pub fn start(timeouts: &Timeouts) -> Option<Self> {
        if timeouts.request.is_none() && timeouts.idle.is_none() {
            return None;
        }
        let start = Instant::now();
        Some(Self {
            timeouts: timeouts.clone(),
            activity: Arc::new(Activity {
                start,
                last_ms: AtomicU64::new(0),
                received: AtomicBool::new(false),
            }),
            sleep: Box::pin(tokio::time::sleep_until(start)),
        })
    }

    /// What the request's bodies report to.
    pub fn activity(&self) -> Arc<Activity> {
        Arc::clone(&self.activity)
    }

    /// A frame of the response passed.
    pub fn touch(&self) {
        self.activity.touch();
    }

    /// The next deadline, or the timeout that passed.
    fn deadline(&self, now: Instant) -> Result<Instant, Expired> {
        let start = self.activity.start;
        let mut next: Option<Instant> = None;
        if let Some(limit) = self.timeouts.request
            && !self.activity.received.load(Ordering::Relaxed)
        {
            let at = start + limit;
            if now >= at {
                return Err(Expired::Request(limit));
            }
            next = Some(at);
        }
        if let Some(limit) = self.timeouts.idle {
            let last = start + Duration::from_millis(self.activity.last_ms.load(Ordering::Relaxed));
            let at = last + limit;
            if now >= at {
                return Err(Expired::Idle(limit));
            }
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        // Only the request timeout was set and the request is in: never.
        Ok(next.unwrap_or(start + Duration::from_secs(86400 * 365)))
    }

    /// Ready with the timeout that fired (counted in its metric).
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<Expired> {
        loop {
            match self.deadline(Instant::now()) {
                Err(expired) => {
                    let counter = match expired {
                        Expired::Request(_) => &self.timeouts.request_expired,
                        Expired::Idle(_) => &self.timeouts.idle_expired,
                    };
                    if let Some(counter) = counter {
                        counter.inc();
                    }
                    return Poll::Ready(expired);
                }
                Ok(deadline) => {
                    if self.sleep.deadline() != deadline {
                        self.sleep.as_mut().reset(deadline);
                    }
                    ready!(self.sleep.as_mut().poll(cx));
                }
            }
        }
    }

    /// Waits for a timeout to fire.
    pub async fn expired(&mut self) -> Expired {
        std::future::poll_fn(|cx| self.poll_expired(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts(request: Option<u64>, idle: Option<u64>) -> Timeouts {
        Timeouts {
            request: request.map(Duration::from_secs),
            idle: idle.map(Duration::from_secs),
            ..Timeouts::default()
        }
    }

    #[test]
    fn no_timeout_means_no_timer() {
        assert!(StreamTimer::start(&Timeouts::default()).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_request_timeout_fires_unless_the_request_was_received() {
        let mut timer = StreamTimer::start(&timeouts(Some(5), None)).unwrap();
        let activity = timer.activity();
        tokio::time::sleep(Duration::from_secs(4)).await;
        activity.touch();
        assert_eq!(
            timer.expired().await,
            Expired::Request(Duration::from_secs(5))
        );
        let mut timer = StreamTimer::start(&timeouts(Some(5), None)).unwrap();
        timer.activity().received();
        let waited = tokio::time::timeout(Duration::from_secs(60), timer.expired()).await;
        assert!(waited.is_err(), "a received request never times out");
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_timeout_restarts_with_each_frame() {
        let mut timer = StreamTimer::start(&timeouts(None, Some(2))).unwrap();
        let activity = timer.activity();
        let begun = Instant::now();
        let feeder = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                activity.touch();
            }
        });
        assert_eq!(timer.expired().await, Expired::Idle(Duration::from_secs(2)));
        assert_eq!(begun.elapsed(), Duration::from_secs(5));
        feeder.await.unwrap();
    }
}
