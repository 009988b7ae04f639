//! A body streamed through a filter chain: each data frame goes through the
//! chain's body phase (which may hold it back while a filter buffers), and
//! trailers through the trailers phase, in the direction given.
//!
//! The output has no announced size, so a changed body is re-framed (chunked
//! on HTTP/1.1) when the filter dropped `content-length`. A local reply sent
//! during a body phase is stored in the shared [`ReplySlot`] and ends this
//! body with an error.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use wasp_filter_host::{ChainStream, LocalReply};

use super::convert;
use crate::body::{BoxError, UpstreamBody};

/// Where a local reply sent during a body phase is left for the request path.
pub type ReplySlot = Arc<Mutex<Option<LocalReply>>>;

/// Which body phase the frames go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Request body and trailers, filters in order.
    Request,
    /// Response body and trailers, filters in reverse.
    Response,
}

type Step = Pin<Box<dyn Future<Output = Result<Vec<Frame<Bytes>>, LocalReply>> + Send>>;

/// A body passed through a filter chain.
pub struct FilteredBody {
    inner: UpstreamBody,
    chain: Arc<ChainStream>,
    phase: Phase,
    step: Option<Step>,
    ready: VecDeque<Frame<Bytes>>,
    finished: bool,
    reply: ReplySlot,
}

/// The error ending a body a filter answered locally.
#[derive(Debug, thiserror::Error)]
#[error("a filter sent a local reply during the body")]
pub struct RepliedDuringBody;

impl FilteredBody {
    /// Wraps `inner`.
    pub fn new(
        inner: UpstreamBody,
        chain: Arc<ChainStream>,
        phase: Phase,
        reply: ReplySlot,
    ) -> Self {
        Self {
            inner,
            chain,
            phase,
            step: None,
            ready: VecDeque::new(),
            finished: false,
            reply,
        }
    }

    /// Marks the body complete already (the head ended the stream): the
    /// chain sees no body phase.
    pub fn ended(mut self) -> Self {
        self.finished = true;
        self
    }

    fn data_step(&self, data: Bytes, eos: bool) -> Step {
        let (chain, phase) = (Arc::clone(&self.chain), self.phase);
        Box::pin(async move {
            let out = match phase {
                Phase::Request => chain.request_body(data, eos).await?,
                Phase::Response => chain.response_body(data, eos).await?,
            };
            Ok(if out.is_empty() {
                Vec::new()
            } else {
                vec![Frame::data(out)]
            })
        })
    }

    fn trailers_step(&self, trailers: http::HeaderMap) -> Step {
        let (chain, phase) = (Arc::clone(&self.chain), self.phase);
        Box::pin(async move {
            let list = convert::trailer_list(&trailers);
            let (data, list) = match phase {
                Phase::Request => chain.request_trailers(list).await?,
                Phase::Response => chain.response_trailers(list).await?,
            };
            let mut frames = Vec::new();
            if !data.is_empty() {
                frames.push(Frame::data(data));
            }
            frames.push(Frame::trailers(convert::header_map(&list)));
            Ok(frames)
        })
    }
}

impl Body for FilteredBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if let Some(frame) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(frame)));
            }
            if let Some(step) = this.step.as_mut() {
                match step.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(frames)) => {
                        this.step = None;
                        this.ready.extend(frames);
                        continue;
                    }
                    Poll::Ready(Err(reply)) => {
                        this.step = None;
                        this.finished = true;
                        *this.reply.lock().unwrap_or_else(PoisonError::into_inner) = Some(reply);
                        return Poll::Ready(Some(Err(Box::new(RepliedDuringBody))));
                    }
                }
            }
            if this.finished {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.finished = true;
                    this.step = Some(this.data_step(Bytes::new(), true));
                }
                Poll::Ready(Some(Err(err))) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let eos = this.inner.is_end_stream();
                        this.finished = eos;
                        this.step = Some(this.data_step(data, eos));
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            this.finished = true;
                            this.step = Some(this.trailers_step(trailers));
                        }
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished && self.step.is_none() && self.ready.is_empty()
    }
}
