//! A real browser for the tests: headless Chromium (Debian's `chromium` package) on a page that
//! the test serves from an origin of its own, so that every request the page makes to the app
//! crosses origins, as the admin UI's do. The test hands the page one request at a time
//! ([`Browser::fetch`]); the page makes it with `fetch()` and reports what a script of that origin
//! may see of the answer: the status, the headers CORS lets it read, the body, or the browser's
//! refusal. Whether to send a preflight, and whether the answer may be read, is Chromium's call,
//! not ours: that is what a client like curl cannot show. [`rendered`] is a page of the app's
//! own (`/docs`) as Chromium shows it, scripts run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Mutex};

/// The page: it asks its own origin for the next request (`GET /next`, answered when the test
/// has one), makes it, and posts what it saw back (`POST /result`).
const PAGE: &str = include_str!("../fixtures/browser-page.html");

/// How long Chromium may take to start and load the page, on a cold CI machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

const MISSING: &str = "headless Chromium does not start: install Debian's chromium package (or set CHROMIUM)";

/// Headless Chromium with a profile of its own at `profile`: `CHROMIUM` names the binary, else
/// `chromium` from `PATH`.
fn chromium(profile: &std::path::Path) -> tokio::process::Command {
    let binary = std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| "chromium".into());
    let mut command = tokio::process::Command::new(binary);
    command
        // No sandbox: the tests run as root, where Chromium's sandbox refuses to start.
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic"])
        // No calls home: the machine's network is closed, and the test wants only its own.
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        // Shared memory in /tmp, not /dev/shm: a container's (GitHub's CI job runs in one) is 64 MB.
        .arg("--disable-dev-shm-usage")
        .arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// The document at `url` once Chromium has loaded it and run its scripts (`--dump-dom`): the
/// page's own requests are waited for (virtual time stands still while any is under way), and
/// what its Content-Security-Policy forbids does not run.
pub async fn rendered(url: &str) -> Result<String> {
    let dir = tempfile::Builder::new().prefix("e2e-browser-").tempdir()?;
    let mut command = chromium(&dir.path().join("profile"));
    command.args(["--dump-dom", "--virtual-time-budget=10000", url]).stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(START_TIMEOUT, command.output())
        .await
        .with_context(|| format!("Chromium did not render {url} within {START_TIMEOUT:?}"))?
        .context(MISSING)?;
    if !output.status.success() {
        bail!("Chromium failed on {url}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// A request for the page to make, as `fetch(url, {method, headers, body, credentials})`.
pub struct BrowserRequest {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    credentials: &'static str,
}

impl BrowserRequest {
    pub fn get(path: &str) -> Self {
        Self { method: "GET", path: path.into(), headers: Vec::new(), body: None, credentials: "same-origin" }
    }

    /// A PUT of `body` as JSON, as the admin UI sends one (`Content-Type: application/json`,
    /// which no form could send: the browser asks the app first, with a preflight).
    pub fn put(path: &str, body: &Value) -> Self {
        Self { method: "PUT", body: Some(body.to_string()), ..Self::get(path) }
            .header("Content-Type", "application/json")
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// `credentials: "include"`: the browser then requires the answer to name the page's origin,
    /// never `*`, and to allow credentials.
    pub fn with_credentials(self) -> Self {
        Self { credentials: "include", ..self }
    }

    pub fn method(&self) -> &'static str {
        self.method
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

/// What the page's script could read of an answer.
#[derive(Debug)]
pub struct BrowserReply {
    pub status: u16,
    /// The headers the script can read, names in lower case: a cross-origin answer shows only
    /// the CORS-safelisted ones (`content-type` among them) and those it exposes.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl BrowserReply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Headless Chromium on the page, and the page's origin: a server of the test's own on a port
/// of 127.0.0.1 (an origin other than the app's, whose port differs).
pub struct Browser {
    requests: mpsc::Sender<Value>,
    results: Mutex<mpsc::Receiver<Value>>,
    origin: String,
    /// Chromium's process group (its pid).
    group: i32,
    /// How Chromium exited, once it has: a browser that dies fails the request at once.
    exited: watch::Receiver<Option<std::process::ExitStatus>>,
    server: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
    started: AtomicBool,
}

impl Browser {
    /// Serves the page and opens it in headless Chromium.
    pub async fn open() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let origin = format!("http://{}", listener.local_addr()?);
        let (requests, next) = mpsc::channel(1);
        let (report, results) = mpsc::channel(1);
        let server = tokio::spawn(serve(listener, Arc::new(Mutex::new(next)), report));

        let dir = tempfile::Builder::new().prefix("e2e-browser-").tempdir()?;
        let output = std::fs::File::create(dir.path().join("chromium.log"))?;
        let mut command = chromium(&dir.path().join("profile"));
        command
            .arg(format!("{origin}/"))
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            // Its own process group: Chromium starts a zygote, renderers and a GPU process, and
            // all of them go with it (Drop).
            .process_group(0);
        let mut chromium = command.spawn().context(MISSING)?;
        let group = chromium.id().context("Chromium's pid")? as i32;
        let (exit, exited) = watch::channel(None);
        tokio::spawn(async move {
            if let Ok(status) = chromium.wait().await {
                let _ = exit.send(Some(status));
            }
        });
        let results = Mutex::new(results);
        Ok(Self { requests, results, origin, group, exited, server, dir, started: Default::default() })
    }

    /// The page's origin, as the browser sends it in `Origin`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Has the page make `request` to the server at `base_url`: `Err` is the browser's refusal
    /// (a failed preflight, an answer the page may not read), as `fetch` rejects it, e.g.
    /// "TypeError: Failed to fetch".
    pub async fn fetch(&self, base_url: &str, request: &BrowserRequest) -> Result<BrowserReply, String> {
        let url = format!("{}{}", base_url.trim_end_matches('/'), request.path);
        let headers: serde_json::Map<String, Value> =
            request.headers.iter().map(|(name, value)| (name.clone(), json!(value))).collect();
        let order = json!({
            "method": request.method, "url": url, "headers": headers, "body": request.body,
            "credentials": request.credentials,
        });
        let first = !self.started.swap(true, Ordering::Relaxed);
        let limit = if first { START_TIMEOUT } else { crate::REQUEST_TIMEOUT };
        self.requests.send(order).await.expect("the page's server runs");
        let mut exited = self.exited.clone();
        let result = tokio::select! {
            result = async { self.results.lock().await.recv().await } => result,
            _ = exited.wait_for(Option::is_some) => None,
            () = tokio::time::sleep(limit) => None,
        };
        let Some(result) = result else {
            let exit = match *self.exited.borrow() {
                Some(status) => format!("Chromium exited ({status})"),
                None => format!("no report within {limit:?}"),
            };
            panic!("the browser did not make {} {url}: {exit}; Chromium said:\n{}", request.method, self.output());
        };
        if let Some(error) = result.get("error") {
            return Err(error.as_str().unwrap_or_default().to_owned());
        }
        let headers = result["headers"]
            .as_object()
            .map(|headers| headers.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().into())).collect())
            .unwrap_or_default();
        Ok(BrowserReply {
            status: result["status"].as_u64().and_then(|s| u16::try_from(s).ok()).expect("a status"),
            headers,
            body: result["body"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// What Chromium wrote to its stdout and stderr.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromium.log")).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SAFETY: killpg(2) on the group this struct created (process_group(0) above).
        unsafe { libc::killpg(self.group, libc::SIGKILL) };
        self.server.abort();
    }
}

/// The page's origin: `GET /` is the page, `GET /next` waits for the test's next request,
/// `POST /result` is what the page saw. One request per connection.
async fn serve(listener: TcpListener, next: Arc<Mutex<mpsc::Receiver<Value>>>, report: mpsc::Sender<Value>) {
    while let Ok((stream, _)) = listener.accept().await {
        let (next, report) = (next.clone(), report.clone());
        tokio::spawn(async move {
            // A connection that breaks off is the browser's business (it retries or gives up).
            let _ = answer(stream, &next, &report).await;
        });
    }
}

async fn answer(stream: TcpStream, next: &Mutex<mpsc::Receiver<Value>>, report: &mpsc::Sender<Value>) -> Result<()> {
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or_default().to_owned(), words.next().unwrap_or_default().to_owned());
    let mut length = 0;
    loop {
        let mut header = String::new();
        if stream.read_line(&mut header).await? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse()?;
            }
        }
    }
    if method.is_empty() {
        bail!("no request line");
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await?;

    let (status, content_type, reply) = match (method.as_str(), target.as_str()) {
        ("GET", "/") => ("200 OK", "text/html; charset=utf-8", PAGE.to_owned()),
        ("GET", "/next") => {
            let order = next.lock().await.recv().await;
            ("200 OK", "application/json", order.unwrap_or(Value::Null).to_string())
        }
        ("POST", "/result") => {
            report.send(serde_json::from_slice(&body)?).await?;
            ("204 No Content", "text/plain", String::new())
        }
        (_, _) => ("404 Not Found", "text/plain", String::new()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        reply.len()
    );
    let stream = stream.get_mut();
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}
