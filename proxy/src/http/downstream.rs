//! The downstream request body as the request path reads it: its errors
//! (a client's framing error, a disconnect) are typed as the downstream's,
//! so an attempt that fails because the client's body failed is told apart
//! from an upstream failure (`attempt::send`) and never counts against the
//! endpoint, its breakers or the retry policy. With a stream timer, every
//! frame received is activity and the body's end marks the request received.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::timeout::Activity;
use crate::body::BoxError;

/// An error of the downstream request body.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DownstreamError(pub BoxError);

impl DownstreamError {
    /// The downstream body error somewhere in `err`'s source chain.
    pub fn find<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a DownstreamError> {
        let mut current = Some(err);
        while let Some(err) = current {
            if let Some(found) = err.downcast_ref::<DownstreamError>() {
                return Some(found);
            }
            current = err.source();
        }
        None
    }

    /// True when the client sent a malformed body (bad chunk framing) rather
    /// than going away: an `InvalidData` or `InvalidInput` I/O error
    /// underneath (hyper's chunked decoder reports malformed framing so).
    pub fn is_framing(&self) -> bool {
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&*self.0);
        while let Some(err) = current {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                return matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
                );
            }
            current = err.source();
        }
        false
    }
}

/// A downstream request body whose errors are [`DownstreamError`]s.
pub struct DownstreamBody<B> {
    inner: B,
    activity: Option<Arc<Activity>>,
}

impl<B: Body> DownstreamBody<B> {
    /// Wraps `inner`; with `activity`, frames are recorded on it and the
    /// body's end marks the request received.
    pub fn new(inner: B, activity: Option<Arc<Activity>>) -> Self {
        if let Some(activity) = &activity
            && inner.is_end_stream()
        {
            activity.received();
        }
        Self { inner, activity }
    }
}

impl<B> Body for DownstreamBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map_err(|err| Box::new(DownstreamError(err.into())) as BoxError);
        if let (Some(activity), Poll::Ready(frame)) = (&this.activity, &polled) {
            match frame {
                Some(Ok(_)) if !this.inner.is_end_stream() => activity.touch(),
                _ => activity.received(),
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_downstream_error_is_found_through_wrappers() {
        let framing = DownstreamError(Box::new(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "bad chunk size",
        )));
        assert!(framing.is_framing());
        #[derive(Debug, thiserror::Error)]
        #[error("wrapper")]
        struct Wrapper(#[source] BoxError);
        assert_eq!(framing.to_string(), "bad chunk size");
        let wrapped = Wrapper(Box::new(framing));
        assert!(DownstreamError::find(&wrapped).is_some());
        let gone = DownstreamError(Box::new(std::io::Error::from(
            std::io::ErrorKind::UnexpectedEof,
        )));
        assert!(!gone.is_framing());
        let other = Wrapper("upstream".into());
        assert!(DownstreamError::find(&other).is_none());
    }
}
