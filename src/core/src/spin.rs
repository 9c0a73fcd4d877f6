//! The Spin side of a request: the head of the `wasi:http` request becomes an `http::Request`,
//! its body a stream read only on demand (see [`crate::body`]), and the response is written
//! back with its length.

use spin_sdk::http::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};

use crate::body::{Body, BodyError, ReadBody};
use crate::host::SpinHost;
use crate::{api, Component, Response};

/// What WASI lets a component write to an output stream at once.
const WRITE_CHUNK: usize = 4096;
/// How much is asked of the input stream at once.
const READ_CHUNK: u64 = 16 * 1024;

/// Handles one request for the component `C`.
pub fn serve<C: Component>(incoming: IncomingRequest, out: ResponseOutparam) {
    let mut request = http::Request::new(Body::empty());
    *request.method_mut() = method(&incoming.method());
    if let Some(uri) = incoming.path_with_query().and_then(|path| path.parse().ok()) {
        *request.uri_mut() = uri;
    }
    let headers = request.headers_mut();
    for (name, value) in incoming.headers().entries() {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_bytes(&value))
        {
            headers.append(name, value);
        }
    }
    let head_only = request.method() == http::Method::HEAD;
    *request.body_mut() = Body::new(IncomingBody::new(incoming));
    let response = api::handle::<C>(request, &SpinHost::default());
    send(response, out, head_only);
}

fn method(method: &Method) -> http::Method {
    match method {
        Method::Get => http::Method::GET,
        Method::Head => http::Method::HEAD,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
        Method::Connect => http::Method::CONNECT,
        Method::Options => http::Method::OPTIONS,
        Method::Trace => http::Method::TRACE,
        Method::Patch => http::Method::PATCH,
        Method::Other(other) => http::Method::from_bytes(other.as_bytes()).unwrap_or(http::Method::GET),
    }
}

/// The request body as the host streams it. Fields drop in order: a stream before its body,
/// a body before its request, as WASI requires of child resources.
struct IncomingBody {
    stream: Option<wasi::io::streams::InputStream>,
    body: Option<spin_sdk::wit::wasi::http0_2_0::types::IncomingBody>,
    request: IncomingRequest,
}

impl IncomingBody {
    fn new(request: IncomingRequest) -> Self {
        Self { stream: None, body: None, request }
    }
}

impl ReadBody for IncomingBody {
    fn read_up_to(&mut self, limit: usize) -> Result<Vec<u8>, BodyError> {
        if self.stream.is_none() {
            let body = self.request.consume().map_err(|()| BodyError::Broken)?;
            self.stream = Some(body.stream().map_err(|()| BodyError::Broken)?);
            self.body = Some(body);
        }
        let stream = self.stream.as_ref().expect("opened above");
        let mut bytes = Vec::new();
        loop {
            match stream.blocking_read(READ_CHUNK) {
                Ok(chunk) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > limit {
                        return Err(BodyError::TooLarge);
                    }
                }
                Err(wasi::io::streams::StreamError::Closed) => return Ok(bytes),
                Err(wasi::io::streams::StreamError::LastOperationFailed(_)) => return Err(BodyError::Broken),
            }
        }
    }
}

fn send(response: Response, out: ResponseOutparam, head_only: bool) {
    let (parts, body) = response.into_parts();
    let mut headers: Vec<(String, Vec<u8>)> =
        parts.headers.iter().map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec())).collect();
    // A HEAD answer promises no length: the host would hold it to one and refuse the empty body.
    if !head_only {
        headers.push(("content-length".into(), body.len().to_string().into_bytes()));
    }
    let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(fields);
    // Every status this crate produces is valid.
    let _ = response.set_status_code(parts.status.as_u16());
    let Ok(outgoing) = response.body() else { return };
    let stream = if head_only { None } else { outgoing.write().ok() };
    // What the host takes before the head is sent leaves with it, in one write to the socket. Spin
    // leaves Nagle's algorithm on, so a body that trails its head in a second segment waits for
    // the client's delayed ACK: 40 ms on Linux, measured as the p99 of every cached read.
    let early = match &stream {
        Some(stream) => early_write(stream, &body),
        None => 0,
    };
    out.set(response);
    if let Some(stream) = &stream {
        for chunk in body[early..].chunks(WRITE_CHUNK) {
            // The client went away: nothing left to tell it.
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(outgoing, None);
}

/// Writes as much of `body` as the stream takes without waiting (the head is not sent yet, so
/// nothing would drain it), and returns how much that was.
fn early_write(stream: &wasi::io::streams::OutputStream, body: &[u8]) -> usize {
    let permitted = stream.check_write().map_or(0, |permit| usize::try_from(permit).unwrap_or(usize::MAX));
    let early = body.len().min(permitted);
    if early == 0 || stream.write(&body[..early]).is_err() {
        return 0;
    }
    // Starts the flush; the writes after the head (or finishing the body) complete it.
    let _ = stream.flush();
    early
}
