//! Loading an app as `spin up` does: one engine, each component compiled and pre-instantiated
//! once, its variables and `allowed_outbound_hosts` resolved at load; then a fresh instance
//! (and a fresh store) for every request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use anyhow::{Context as _, Result};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::bindings::ProxyPre;

use crate::allowed_hosts::AllowedHosts;
use crate::manifest::AppManifest;
use crate::state::{AppContext, ComponentContext, InstanceState};

/// One engine per process, as in Spin; compiled components are cached by file and mtime so
/// that tests which start the app many times compile each `.wasm` once.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = wasmtime::Config::new();
        config.async_support(true).wasm_component_model(true);
        Engine::new(&config).expect("a wasmtime engine")
    })
}

fn compile(path: &Path) -> Result<Component> {
    type Key = (PathBuf, SystemTime, u64);
    static CACHE: OnceLock<Mutex<HashMap<Key, Component>>> = OnceLock::new();
    let metadata = std::fs::metadata(path).with_context(|| {
        format!("component file {} is missing: build the app first (`spin build`, or tests/run)", path.display())
    })?;
    let key = (path.to_path_buf(), metadata.modified()?, metadata.len());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(component) = cache.lock().unwrap().get(&key) {
        return Ok(component.clone());
    }
    let component = Component::from_file(engine(), path).with_context(|| format!("compiling {}", path.display()))?;
    cache.lock().unwrap().insert(key, component.clone());
    Ok(component)
}

/// A component ready to serve: pre-instantiated against the host's interfaces.
pub struct LoadedComponent {
    pub context: Arc<ComponentContext>,
    pre: ProxyPre<InstanceState>,
}

impl LoadedComponent {
    /// A fresh store and instance for one request.
    pub async fn instantiate(&self) -> Result<(Store<InstanceState>, wasmtime_wasi_http::bindings::Proxy)> {
        let mut store = Store::new(engine(), InstanceState::new(self.context.clone()));
        let proxy = self.pre.instantiate_async(&mut store).await?;
        Ok((store, proxy))
    }
}

/// Every component of an app, by id.
pub struct LoadedApp {
    pub components: HashMap<String, LoadedComponent>,
}

impl LoadedApp {
    pub fn load(manifest: &AppManifest, context: AppContext) -> Result<Self> {
        let context = Arc::new(context);
        let linker = linker()?;
        let mut components = HashMap::new();
        for (id, component) in &manifest.components {
            let allowed_hosts = AllowedHosts::resolve(&component.allowed_outbound_hosts, &context.variables)
                .with_context(|| format!("component {id:?}: allowed_outbound_hosts"))?;
            let component_context = Arc::new(ComponentContext {
                id: Arc::from(id.as_str()),
                allowed_hosts,
                sqlite_databases: component.sqlite_databases.clone(),
                app: context.clone(),
            });
            let compiled = compile(&component.source)?;
            let pre = linker
                .instantiate_pre(&compiled)
                .with_context(|| format!("component {id:?} imports something the host does not provide"))?;
            let pre = ProxyPre::new(pre).with_context(|| format!("component {id:?} is not a wasi:http handler"))?;
            components.insert(id.clone(), LoadedComponent { context: component_context, pre });
        }
        Ok(Self { components })
    }
}

/// The host interfaces a Spin HTTP component may import: WASI 0.2, `wasi:http`, and Spin's.
fn linker() -> Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine());
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::add_only_http_to_linker_async(&mut linker)?;
    crate::bindings::SpinImports::add_to_linker::<_, wasmtime::component::HasSelf<InstanceState>>(
        &mut linker,
        |state| state,
    )?;
    Ok(linker)
}
