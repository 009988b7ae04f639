//! The deadlines of a forwarded request on one timer: the route timeout
//! (counted from the end of the downstream request) and the running
//! attempt's per-try timeout. One `Sleep` is armed at the earlier of the
//! two and re-armed when an attempt starts, instead of a timer for each.
//! Nothing is registered with the runtime while neither is set.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::retry::EndOfRequest;

/// Which deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fired {
    /// The route timeout.
    Route,
    /// The running attempt's per-try timeout (its limit).
    Try(Duration),
}

/// The route and per-try deadlines of one forwarded request.
pub struct Deadlines<'a> {
    /// The route timeout; zero: none.
    route_timeout: Duration,
    /// When the route timeout passes, once the request is in.
    route_at: Option<Instant>,
    /// When the running attempt's per-try timeout passes, and its limit.
    try_at: Option<(Instant, Duration)>,
    end: &'a EndOfRequest,
    sleep: Pin<&'a mut Sleep>,
    /// The deadline `sleep` is armed at.
    armed: Option<Instant>,
}

impl<'a> Deadlines<'a> {
    /// Deadlines for a request whose route has `route_timeout` (zero:
    /// none), starting when `end` is set; `sleep` is the (not yet polled)
    /// timer they share.
    pub fn new(route_timeout: Duration, end: &'a EndOfRequest, sleep: Pin<&'a mut Sleep>) -> Self {
        Self {
            route_timeout,
            route_at: None,
            try_at: None,
            end,
            sleep,
            armed: None,
        }
    }

    /// An attempt starts now, with this per-try timeout (or none).
    pub fn start_try(&mut self, per_try: Option<Duration>) {
        self.try_at = per_try.map(|limit| (Instant::now() + limit, limit));
    }

    /// No attempt runs (between attempts): only the route timeout counts.
    pub fn between_tries(&mut self) {
        self.try_at = None;
    }

    /// Whether the route timeout still waits for the request's end.
    fn waits_for_end(&self) -> bool {
        !self.route_timeout.is_zero() && self.route_at.is_none()
    }

    /// Waits until a deadline passes; never, when none is set.
    pub async fn fired(&mut self) -> Fired {
        loop {
            if self.waits_for_end() && self.end.is_set() {
                self.route_at = Some(Instant::now() + self.route_timeout);
            }
            let next = match (self.route_at, self.try_at) {
                (Some(route), Some((attempt, _))) => Some(route.min(attempt)),
                (route, attempt) => route.or(attempt.map(|(at, _)| at)),
            };
            let Some(at) = next else {
                if self.waits_for_end() {
                    self.end.wait().await;
                    continue;
                }
                return std::future::pending().await;
            };
            if self.armed != Some(at) {
                self.sleep.as_mut().reset(at);
                self.armed = Some(at);
            }
            if self.waits_for_end() {
                let end = self.end;
                tokio::select! {
                    () = self.sleep.as_mut() => {}
                    () = end.wait() => continue,
                }
            } else {
                self.sleep.as_mut().await;
            }
            let now = Instant::now();
            if self.route_at.is_some_and(|route| route <= now) {
                return Fired::Route;
            }
            if let Some((attempt, limit)) = self.try_at
                && attempt <= now
            {
                self.try_at = None;
                return Fired::Try(limit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAR: Duration = Duration::from_secs(86400);

    #[tokio::test(start_paused = true)]
    async fn the_per_try_timeout_fires_before_a_later_route_timeout() {
        let end = EndOfRequest::default();
        end.set();
        let sleep = tokio::time::sleep(FAR);
        tokio::pin!(sleep);
        let mut deadlines = Deadlines::new(Duration::from_secs(5), &end, sleep);
        let started = Instant::now();
        deadlines.start_try(Some(Duration::from_secs(2)));
        assert_eq!(deadlines.fired().await, Fired::Try(Duration::from_secs(2)));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        deadlines.start_try(Some(Duration::from_secs(2)));
        assert_eq!(deadlines.fired().await, Fired::Try(Duration::from_secs(2)));
        deadlines.start_try(Some(Duration::from_secs(2)));
        assert_eq!(deadlines.fired().await, Fired::Route, "5 s from the start");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn the_route_timeout_counts_from_the_end_of_the_request() {
        let end = std::sync::Arc::new(EndOfRequest::default());
        let sleep = tokio::time::sleep(FAR);
        tokio::pin!(sleep);
        let mut deadlines = Deadlines::new(Duration::from_secs(1), &end, sleep);
        deadlines.start_try(None);
        let started = Instant::now();
        let ender = std::sync::Arc::clone(&end);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            ender.set();
        });
        assert_eq!(deadlines.fired().await, Fired::Route);
        assert_eq!(started.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn no_deadline_never_fires() {
        let end = EndOfRequest::default();
        end.set();
        let sleep = tokio::time::sleep(FAR);
        tokio::pin!(sleep);
        let mut deadlines = Deadlines::new(Duration::ZERO, &end, sleep);
        deadlines.start_try(None);
        let waited = tokio::time::timeout(Duration::from_secs(3600), deadlines.fired()).await;
        assert!(waited.is_err(), "nothing fired");
    }

    #[tokio::test(start_paused = true)]
    async fn between_tries_only_the_route_timeout_counts() {
        let end = EndOfRequest::default();
        end.set();
        let sleep = tokio::time::sleep(FAR);
        tokio::pin!(sleep);
        let mut deadlines = Deadlines::new(Duration::from_secs(10), &end, sleep);
        let started = Instant::now();
        deadlines.start_try(Some(Duration::from_secs(1)));
        deadlines.between_tries();
        assert_eq!(deadlines.fired().await, Fired::Route);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }
}
