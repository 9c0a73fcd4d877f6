//! What one component instance sees while it serves one request: its WASI context, its
//! resources, and the component's and the app's shared configuration.

use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::body::HyperOutgoingBody;
use wasmtime_wasi_http::types::{HostFutureIncomingResponse, OutgoingRequestConfig};
use wasmtime_wasi_http::{HttpResult, WasiHttpCtx, WasiHttpView};

use crate::allowed_hosts::{AllowedHosts, Verdict};
use crate::logs::{LogSink, LogStream};
use crate::outbound_pg::PgPools;
use crate::variables::VariableResolver;

/// Shared by every component of an app, for the app's lifetime.
pub struct AppContext {
    pub variables: VariableResolver,
    pub pg_pools: PgPools,
    /// Spin's state directory: the `default` SQLite database lives in it.
    pub state_dir: PathBuf,
    pub logs: LogSink,
}

impl AppContext {
    pub fn sqlite_default_path(&self) -> PathBuf {
        // Spin's default location for the `default` database (factor-sqlite's runtime config).
        self.state_dir.join("sqlite_db.db")
    }
}

/// One component's configuration, resolved at load.
pub struct ComponentContext {
    pub id: Arc<str>,
    pub allowed_hosts: AllowedHosts,
    pub sqlite_databases: Vec<String>,
    pub app: Arc<AppContext>,
}

impl ComponentContext {
    /// Checks an outbound address; a refusal is logged as Spin logs it.
    pub fn check_outbound(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        match self.allowed_hosts.check(scheme, host, port) {
            Verdict::Allowed => true,
            Verdict::Denied { pattern } => {
                let message = format!(
                    "A component tried to make an outbound network connection to disallowed destination \
                     '{pattern}'. To allow this request, add 'allowed_outbound_hosts = [\"{pattern}\"]' to \
                     the manifest component section."
                );
                self.app.logs.push(&self.id, LogStream::Host, message);
                false
            }
        }
    }
}

/// The store data of one instance.
pub struct InstanceState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) component: Arc<ComponentContext>,
}

impl InstanceState {
    pub fn new(component: Arc<ComponentContext>) -> Self {
        let logs = &component.app.logs;
        let wasi = WasiCtx::builder()
            .stdout(logs.output(&component.id, LogStream::Stdout))
            .stderr(logs.output(&component.id, LogStream::Stderr))
            .build();
        Self { wasi, http: WasiHttpCtx::new(), table: ResourceTable::new(), component }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for InstanceState {
    fn ctx(&mut self) -> &mut WasiHttpCtx {
        &mut self.http
    }

    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// The components make no outbound HTTP requests; one that tries is refused as Spin refuses
    /// a destination missing from `allowed_outbound_hosts`. Allowed destinations are not
    /// served either: this host is not an HTTP client.
    fn send_request(
        &mut self,
        request: hyper::Request<HyperOutgoingBody>,
        _config: OutgoingRequestConfig,
    ) -> HttpResult<HostFutureIncomingResponse> {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("http");
        let host = uri.host().unwrap_or_default();
        if !self.component.check_outbound(scheme, host, uri.port_u16()) {
            return Err(ErrorCode::HttpRequestDenied.into());
        }
        Err(ErrorCode::InternalError(Some("the test host does not make outbound HTTP requests".into())).into())
    }
}
