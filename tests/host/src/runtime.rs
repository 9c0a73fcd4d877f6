//! Loading an app as `spin up` does: one engine, each component compiled and pre-instantiated
//! once, its variables and `allowed_outbound_hosts` resolved at load; then a fresh instance
//! (and a fresh store) for every request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use anyhow::{Context as _, Result};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi_http::bindings::ProxyPre;

use crate::allowed_hosts::AllowedHosts;
use crate::manifest::AppManifest;
use crate::state::{AppContext, ComponentContext, InstanceState};

/// One engine per process, as in Spin; compiled components are cached by file and mtime so
/// that tests which start the app many times compile each `.wasm` once.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let pooling = std::env::var("SPIN_WASMTIME_POOLING").map_or(true, |value| value != "0");
        if pooling {
            if let Ok(engine) = Engine::new(&config(Some(pooling_config()))) {
                return engine;
            }
        }
        Engine::new(&config(None)).expect("a wasmtime engine")
    })
}

fn config(pooling: Option<PoolingAllocationConfig>) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.async_support(true).wasm_component_model(true);
    // `perf record` can then name the guest's functions (/tmp/perf-<pid>.map).
    if std::env::var_os("SPIN_TEST_HOST_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if let Some(pooling) = pooling {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    }
    config
}

/// Spin's pooling allocator settings (crates/core, for `spin up`), so that instantiation costs
/// what it costs under Spin; like Spin, the host falls back to on-demand allocation where the
/// pool cannot be reserved, and `SPIN_WASMTIME_POOLING=0` turns it off.
fn pooling_config() -> PoolingAllocationConfig {
    const MB: usize = 1 << 20;
    const MAX_INSTANCES: u32 = 1_000;
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_component_instances(MAX_INSTANCES)
        .total_memories(MAX_INSTANCES)
        .total_tables(2 * MAX_INSTANCES)
        .total_stacks(MAX_INSTANCES)
        .total_core_instances(4 * MAX_INSTANCES)
        .table_elements(100_000)
        .max_component_instance_size(10 * MB)
        .max_core_instance_size(10 * MB)
        .max_core_instances_per_component(200)
        .max_tables_per_component(64)
        .max_memories_per_component(32)
        .max_tables_per_module(2)
        .max_memories_per_module(2)
        .max_memory_size(4 << 30)
        .linear_memory_keep_resident(2 * MB)
        .table_keep_resident(MB / 2);
    pooling
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
