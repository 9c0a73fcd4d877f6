//! The HTTP side of `spin up`: hyper on a TCP listener, Spin's router, Spin's request headers,
//! and one fresh component instance per request (crates/trigger-http).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONNECTION, HOST};
use http::uri::{Authority, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use wasmtime_wasi_http::WasiHttpView as _;

use crate::logs::LogStream;
use crate::routing::{RouteMatch, Router};
use crate::runtime::LoadedApp;

pub type Body = UnsyncBoxBody<Bytes, anyhow::Error>;

/// Spin's well-known paths, answered by the trigger itself.
const WELL_KNOWN_PREFIX: &str = "/.well-known/spin/";

pub struct Server {
    pub app: LoadedApp,
    pub router: Router,
}

impl Server {
    /// Accepts connections until the task is dropped or aborted.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, client_addr)) = listener.accept().await else { continue };
            let server = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let server = server.clone();
                    async move { Ok::<_, Infallible>(server.respond(request, client_addr).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                // A client that goes away mid-request is not the host's problem.
                let _ = connection.await;
            });
        }
    }

    async fn respond(&self, request: Request<Incoming>, client_addr: SocketAddr) -> Response<Body> {
        let path = request.uri().path().to_string();
        let outcome = if let Some(well_known) = path.strip_prefix(WELL_KNOWN_PREFIX) {
            Ok(match well_known {
                "health" => text(StatusCode::OK, "OK"),
                _ => text(StatusCode::NOT_FOUND, ""),
            })
        } else {
            match self.router.route(&path) {
                Some(route) => self.handle(request, &route, client_addr).await,
                None => Ok(text(StatusCode::NOT_FOUND, "")),
            }
        };
        outcome.unwrap_or_else(|error| {
            eprintln!("spin-test-host: error processing request {path}: {error:?}");
            text(StatusCode::INTERNAL_SERVER_ERROR, "")
        })
    }

    async fn handle(
        &self,
        mut request: Request<Incoming>,
        route: &RouteMatch,
        client_addr: SocketAddr,
    ) -> Result<Response<Body>> {
        let component = self
            .app
            .components
            .get(&route.component)
            .with_context(|| format!("route names unknown component {}", route.component))?;
        request.headers_mut().remove(CONNECTION);
        set_absolute_uri(&mut request)?;
        add_spin_headers(&mut request, route, client_addr)?;

        let (mut store, proxy) = component.instantiate().await?;
        let incoming =
            store.data_mut().new_incoming_request(wasmtime_wasi_http::bindings::http::types::Scheme::Http, request)?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let outparam = store.data_mut().new_response_outparam(sender)?;
        let component_id = component.context.id.clone();
        let logs = component.context.app.logs.clone();
        let call = tokio::spawn(async move {
            proxy.wasi_http_incoming_handler().call_handle(&mut store, incoming, outparam).await
        });
        match receiver.await {
            Ok(response) => {
                // The body may still be streaming: report a later failure as Spin does.
                tokio::spawn(async move {
                    if let Ok(Err(error)) = call.await {
                        logs.push(
                            &component_id,
                            LogStream::Host,
                            format!("Component error after response started: {error:?}"),
                        );
                    }
                });
                let response = response.map_err(|code| anyhow!("guest failed to produce a response: {code:?}"))?;
                Ok(response.map(|body| body.map_err(|code| anyhow!("response body failed: {code:?}")).boxed_unsync()))
            }
            Err(_) => {
                let outcome = call.await.context("guest invocation panicked")?;
                if let Err(error) = outcome {
                    logs.push(&component_id, LogStream::Host, format!("guest invocation failed: {error:?}"));
                    return Err(error.context("guest invocation failed"));
                }
                bail!("guest failed to produce a response prior to returning")
            }
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let body = if body.is_empty() {
        Empty::new().map_err(|never| match never {}).boxed_unsync()
    } else {
        Full::new(Bytes::from_static(body.as_bytes())).map_err(|never| match never {}).boxed_unsync()
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

/// Spin's `set_req_uri`: the component sees an absolute URI, its authority from `Host`.
fn set_absolute_uri<B>(request: &mut Request<B>) -> Result<()> {
    let header_authority = request
        .headers()
        .get(HOST)
        .map(|value| -> Result<Authority> {
            let text = value.to_str().context("'Host' header is not valid UTF-8")?;
            text.parse().context("'Host' header contains an invalid authority")
        })
        .transpose()?;
    let mut parts = request.uri().clone().into_parts();
    let authority = match (header_authority, parts.authority.take()) {
        (None, None) => bail!("no 'Host' header present in request"),
        (Some(authority), None) | (None, Some(authority)) => authority,
        (Some(header), Some(uri)) if header != uri => {
            bail!("authority in 'Host' header does not match authority in URI")
        }
        (Some(header), Some(_)) => header,
    };
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority);
    *request.uri_mut() = Uri::from_parts(parts)?;
    Ok(())
}

/// Spin's `prepare_request_headers`: the client's headers, then the `spin-*` ones appended.
fn add_spin_headers<B>(request: &mut Request<B>, route: &RouteMatch, client_addr: SocketAddr) -> Result<()> {
    let host = match request.headers().get(HOST) {
        Some(value) => value.to_str().context("'Host' header is not valid UTF-8")?.to_string(),
        None => "localhost".to_string(),
    };
    let path_and_query = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let full_url = format!("http://{host}{path_and_query}");
    for (name, value) in route.spin_headers(&full_url, client_addr) {
        let (Ok(name), Ok(value)) = (name.parse::<HeaderName>(), HeaderValue::from_str(&value)) else { continue };
        request.headers_mut().append(name, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uri_takes_its_authority_from_host() {
        let mut request = Request::builder().uri("/a?b=1").header(HOST, "example.test:3000").body(()).unwrap();
        set_absolute_uri(&mut request).unwrap();
        assert_eq!(request.uri().to_string(), "http://example.test:3000/a?b=1");
    }

    #[test]
    fn a_request_without_any_authority_is_refused() {
        let mut request = Request::builder().uri("/a").body(()).unwrap();
        assert!(set_absolute_uri(&mut request).is_err());
    }
}
