//! The built components: `wit/world.wit` is exactly what they import (nothing they use is missing
//! from it, and nothing in it is unused), and each starts with a small linear memory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use wasmparser::{Parser, Payload};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Each component of `spin.toml` with the `.wasm` file it runs.
fn component_sources() -> Vec<(String, PathBuf)> {
    let manifest = app_manifest::Manifest::of_the_app();
    manifest.component.iter().map(|(id, component)| (id.clone(), root().join(&component.source))).collect()
}

/// The `import` lines of every world in `wit/world.wit`.
fn world_imports() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("wit/world.wit")).unwrap();
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("import "))
        .map(|rest| rest.trim_end_matches(';').trim().to_string())
        .collect()
}

/// The top-level imports of a component (not those of the core modules inside it).
fn component_imports(wasm: &[u8]) -> BTreeSet<String> {
    let mut imports = BTreeSet::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.expect("a valid component") {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    imports.insert(import.unwrap().name.0.to_string());
                }
            }
            _ => {}
        }
    }
    imports
}

#[test]
fn the_world_is_exactly_what_the_components_import() {
    let world = world_imports();
    let mut used = BTreeSet::new();
    for (id, source) in component_sources() {
        let wasm = std::fs::read(&source)
            .unwrap_or_else(|e| panic!("{} ({e}): build the components first (tests/run)", source.display()));
        let imports = component_imports(&wasm);
        let unknown: Vec<_> = imports.difference(&world).collect();
        assert!(unknown.is_empty(), "{id} imports {unknown:?}, which wit/world.wit does not name");
        used.extend(imports);
    }
    let unused: Vec<_> = world.difference(&used).collect();
    assert!(unused.is_empty(), "wit/world.wit names {unused:?}, which no component imports");
}

/// The largest initial memory, in 64 KiB pages, of the core modules inside a component.
fn initial_pages(wasm: &[u8]) -> u64 {
    let mut pages = 0;
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::MemorySection(section) = payload.expect("a valid component") {
            for memory in section {
                pages = pages.max(memory.unwrap().initial);
            }
        }
    }
    pages
}

/// Spin zeroes up to 2 MiB of a component's memory after every request, so what a component
/// starts with is paid on each one. Rust's default 1 MiB stack alone is 16 pages, and made every
/// component start with 17 or more; `.cargo/config.toml` sets 256 KiB (the openapi component,
/// holding the description and the docs page, starts with 8 pages, the others with 5).
#[test]
fn no_component_starts_with_rusts_default_mebibyte_of_stack() {
    for (id, source) in component_sources() {
        let wasm = std::fs::read(&source)
            .unwrap_or_else(|e| panic!("{} ({e}): build the components first (tests/run)", source.display()));
        let pages = initial_pages(&wasm);
        assert!((1..16).contains(&pages), "{id} starts with {pages} pages of 64 KiB (is RUSTFLAGS set?)");
    }
}
