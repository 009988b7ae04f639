//! The request path of a route with a filter chain: the request headers pass
//! the chain before routing upstream, the request body streams through it on
//! the way up, and the response (headers, body, trailers) passes it in
//! reverse on the way back. A filter's local reply replaces the exchange.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use wasp_filter_host::{ChainStream, FilterChain, LocalReply, StreamInfo};

use super::body::{BoxError, Completion, ProxyBody, UpstreamBody, version_str};
use super::handler::{ConnInfo, action_response};
use crate::filters::body::{FilteredBody, Phase, ReplySlot};
use crate::filters::convert;
use crate::router::{Route, RouteAction};

/// Serves one request through `chain`, then the route's action.
pub async fn serve(
    chain: &Arc<FilterChain>,
    conn: &ConnInfo,
    route: &Route,
    req: Request<Incoming>,
    completion: &mut Completion,
) -> Response<ProxyBody> {
    let info = StreamInfo {
        source: conn.client,
        destination: conn.address,
        connection_id: conn.id,
        tls: conn.tls.get().cloned(),
        protocol: version_str(req.version()).to_owned(),
        request_id: completion
            .request_id
            .to_str()
            .unwrap_or_default()
            .to_owned(),
        start: SystemTime::now(),
    };
    let stream = Arc::new(chain.start(info));
    let reply: ReplySlot = Arc::new(Mutex::new(None));
    let (mut parts, body) = req.into_parts();
    let request_ends = body.is_end_stream();
    match stream
        .request_headers(convert::request_list(&parts, conn.scheme), request_ends)
        .await
    {
        Ok(list) if convert::request_unchanged(&list, &parts, conn.scheme) => {}
        Ok(list) => convert::apply_request(&list, &mut parts),
        Err(local) => return respond_locally(stream, local).await,
    }
    let body: UpstreamBody = if request_ends {
        Empty::new().map_err(|never| match never {}).boxed_unsync()
    } else if !chain.handles_request_body() {
        body.map_err(BoxError::from).boxed_unsync()
    } else {
        let inner = body.map_err(BoxError::from).boxed_unsync();
        FilteredBody::new(
            inner,
            Arc::clone(&stream),
            Phase::Request,
            Arc::clone(&reply),
        )
        .boxed_unsync()
    };
    let response = match &route.action {
        RouteAction::Forward(forward) => {
            let req = Request::from_parts(parts, body);
            super::forward::forward(conn, forward, req, completion).await
        }
        action => match action_response(action, conn, &parts.uri, &parts.headers) {
            Some(response) => response,
            None => return super::local::text(http::StatusCode::INTERNAL_SERVER_ERROR, ""),
        },
    };
    // A filter that answered during the request body wins over the upstream.
    let replied = reply.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(local) = replied {
        return respond_locally(stream, local).await;
    }
    let (mut parts, body) = response.into_parts();
    let response_ends = body.is_end_stream();
    match stream
        .response_headers(convert::response_list(&parts), response_ends)
        .await
    {
        Ok(list) if convert::response_unchanged(&list, &parts) => {}
        Ok(list) => convert::apply_response(&list, &mut parts),
        Err(local) => return convert::local_response(local),
    }
    // The chain stream lives as long as the response body (on_done and
    // on_log run when it is dropped).
    if !chain.handles_response_body() {
        return Response::from_parts(parts, body.with_guard(stream));
    }
    // The headers keep the framing the filters left: a filter that changes
    // the body's length drops `content-length` and the body is re-framed.
    let mut body = FilteredBody::new(body.boxed(), stream, Phase::Response, reply);
    if response_ends {
        body = body.ended();
    }
    Response::from_parts(parts, ProxyBody::filtered(body))
}

/// The response for a local reply sent in a request phase, after the
/// response phase of the filters that saw the request.
async fn respond_locally(stream: Arc<ChainStream>, reply: LocalReply) -> Response<ProxyBody> {
    let reply = stream.respond_locally(reply).await;
    convert::local_response(reply).map(|body| body.with_guard(stream))
}
