//! A request's pass through its route's filter chain: the request headers
//! pass the chain before the route's action, the request body streams
//! through it on the way up, and the response (headers, body, trailers)
//! passes it in reverse on the way back. A filter's local reply replaces the
//! exchange. A route without a chain gets a pass that changes nothing and
//! costs nothing.

use std::sync::{Arc, OnceLock, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Empty};
use wasp_filter_host::{ChainStream, FilterChain, HeadChange, LocalReply, StreamFacts, StreamInfo};

use super::body::ProxyBody;
use super::headers::X_REQUEST_ID;
use super::local;
use crate::body::{BoxError, UpstreamBody};
use crate::conn::ConnInfo;
use crate::router::{Route, RouteAction, Target};
use crate::telemetry::{Completion, protocol_name};
use crate::wasm::body::{FilteredBody, Phase, ReplySlot};
use crate::wasm::canary::Tally;
use crate::wasm::convert;
use crate::wasm::head::{RequestHead, ResponseHead};

/// One request's pass through a filter chain (or through none).
pub struct ChainPass {
    active: Option<Active>,
}

struct Active {
    chain: Arc<FilterChain>,
    stream: Arc<ChainStream>,
    /// The request's count for its version, when the chain has a canary
    /// (it holds `stream` too).
    tally: Option<Arc<Tally>>,
    /// Where a filtered body leaves a reply a filter sent while it
    /// streamed; made only when a body passes the chain.
    reply: OnceLock<ReplySlot>,
    /// What the request path learns, for the filters' properties.
    facts: Arc<StreamFacts>,
}

impl Active {
    /// The reply slot of the filtered bodies, made on first use.
    fn reply_slot(&self) -> ReplySlot {
        Arc::clone(self.reply.get_or_init(ReplySlot::default))
    }
}

/// The request as the route's action gets it, or the local reply that
/// answers it instead.
pub type Passed = Result<Request<UpstreamBody>, Response<ProxyBody>>;

impl ChainPass {
    /// Starts a pass of the request `req` through the route's chain (none
    /// passes everything through unchanged). With a chain, `completion`
    /// shares the request's facts with it (route, cluster, endpoint, bytes).
    pub fn start<B>(
        route: &Route,
        conn: &ConnInfo,
        req: &Request<B>,
        completion: &mut Completion,
    ) -> Self {
        let active = route.filter_chain.as_ref().map(|chain| {
            let facts = Arc::new(StreamFacts::default());
            facts.set_route(&route.name);
            // A single cluster is known now (Envoy resolves the route, and
            // a weighted choice, before its filters run); a weighted choice
            // is made when forwarding and replaces nothing known yet.
            if let RouteAction::Forward(forward) = &route.action
                && let Target::Cluster(cluster) = &forward.target
            {
                facts.set_cluster(&cluster.name);
            }
            completion.facts = Some(Arc::clone(&facts));
            let info = StreamInfo {
                source: conn.client,
                destination: conn.address,
                connection_id: conn.id,
                tls: conn.tls.get().cloned(),
                protocol: protocol_name(req.version()),
                request_id: req
                    .headers()
                    .get(&X_REQUEST_ID)
                    .and_then(|id| id.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
                start: SystemTime::now(),
                facts,
            };
            // With a canary, one cheap draw picks the version this request runs.
            let canary = route.canary.as_ref().map(|c| (c, c.draw()));
            let chain = match canary {
                Some((c, true)) => &c.canary_chain,
                _ => chain,
            };
            let stream = Arc::new(chain.start(info));
            let tally = canary.map(|(c, is_canary)| {
                Arc::new(Tally::new(Arc::clone(c), is_canary, Arc::clone(&stream)))
            });
            Active {
                chain: Arc::clone(chain),
                stream,
                tally,
                reply: OnceLock::new(),
                facts: completion.facts.clone().expect("set above"),
            }
        });
        Self { active }
    }

    /// The request phase: headers now, the body as it streams upstream.
    pub async fn request<B>(&self, req: Request<B>, scheme: &'static str) -> Passed
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let Some(active) = &self.active else {
            // A request that ends with its head sends an empty body, boxed
            // without allocating.
            return Ok(req.map(|body| {
                if body.is_end_stream() {
                    Empty::new().map_err(|never| match never {}).boxed_unsync()
                } else {
                    body.map_err(Into::into).boxed_unsync()
                }
            }));
        };
        let (mut parts, body) = req.into_parts();
        let request_ends = body.is_end_stream();
        match active
            .stream
            .filter_request_head(RequestHead::new(&parts, scheme), request_ends)
            .await
        {
            Ok(None) => {}
            Ok(Some(HeadChange::Edited(edits))) => convert::edit_request(&edits, &mut parts),
            Ok(Some(HeadChange::Replaced(list)))
                if convert::request_unchanged(&list, &parts, scheme) => {}
            Ok(Some(HeadChange::Replaced(list))) => convert::apply_request(&list, &mut parts),
            Err(reply) => return Err(self.reply_locally(reply).await),
        }
        // The body bytes received, for `request.size` and `request.total_size`.
        let facts = Arc::clone(&active.facts);
        let body = body
            .map_err(Into::<BoxError>::into)
            .map_frame(move |frame| {
                if let Some(data) = frame.data_ref() {
                    facts.add_request_bytes(data.len() as u64);
                }
                frame
            });
        let body: UpstreamBody = if request_ends {
            Empty::new().map_err(|never| match never {}).boxed_unsync()
        } else if !active.chain.handles_request_body() {
            body.boxed_unsync()
        } else {
            let inner = body.boxed_unsync();
            FilteredBody::new(
                inner,
                Arc::clone(&active.stream),
                Phase::Request,
                active.reply_slot(),
            )
            .boxed_unsync()
        };
        Ok(Request::from_parts(parts, body))
    }

    /// The response phase, in reverse: headers now, the body as it streams
    /// to the client. A reply a filter sent during the request body wins
    /// over `response`.
    pub async fn response(self, response: Response<ProxyBody>) -> Response<ProxyBody> {
        let Some(active) = &self.active else {
            return response;
        };
        let replied = active
            .reply
            .get()
            .and_then(|slot| slot.lock().unwrap_or_else(PoisonError::into_inner).take());
        if let Some(reply) = replied {
            return self.reply_locally(reply).await;
        }
        let (mut parts, body) = response.into_parts();
        let response_ends = body.is_end_stream();
        match active
            .stream
            .filter_response_head(ResponseHead::new(&parts), response_ends)
            .await
        {
            Ok(None) => {}
            Ok(Some(HeadChange::Edited(edits))) => convert::edit_response(&edits, &mut parts),
            Ok(Some(HeadChange::Replaced(list))) if convert::response_unchanged(&list, &parts) => {}
            Ok(Some(HeadChange::Replaced(list))) => convert::apply_response(&list, &mut parts),
            Err(reply) => {
                active.facts.set_response(reply.details.clone(), 0);
                let response = local::filter_reply(reply);
                if let Some(tally) = &active.tally {
                    tally.set_status(response.status());
                }
                return response;
            }
        }
        let Active {
            chain,
            stream,
            reply,
            tally,
            ..
        } = self.active.expect("checked above");
        if let Some(tally) = &tally {
            tally.set_status(parts.status);
        }
        // The chain stream lives as long as the response body (on_done and
        // on_log run when it is dropped); so does the request's tally.
        if !chain.handles_response_body() {
            let guard: Arc<dyn Send + Sync> = match tally {
                Some(tally) => tally,
                None => stream,
            };
            return Response::from_parts(parts, body.with_guard(guard));
        }
        // The headers keep the framing the filters left: a filter that
        // changes the body's length drops `content-length` and the body is
        // re-framed.
        let reply = reply.into_inner().unwrap_or_default();
        let mut body = FilteredBody::new(body.boxed(), stream, Phase::Response, reply);
        if response_ends {
            body = body.ended();
        }
        let body = ProxyBody::filtered(body);
        let body = match tally {
            Some(tally) => body.with_guard(tally),
            None => body,
        };
        Response::from_parts(parts, body)
    }

    /// The response for a local reply sent in a request phase, after the
    /// response phase of the filters that saw the request.
    async fn reply_locally(&self, reply: LocalReply) -> Response<ProxyBody> {
        let active = self.active.as_ref().expect("a reply comes from a chain");
        let stream = &active.stream;
        active.facts.set_response(reply.details.clone(), 0);
        let reply = stream.respond_locally(reply).await;
        let response = local::filter_reply(reply);
        let guard: Arc<dyn Send + Sync> = match &active.tally {
            Some(tally) => {
                tally.set_status(response.status());
                Arc::clone(tally) as _
            }
            None => Arc::clone(stream) as _,
        };
        response.map(|body| body.with_guard(guard))
    }
}
