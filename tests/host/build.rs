//! Copies the WIT packages that `wit/world.wit` names (Spin's and WASI's) from the spin-sdk crate
//! cargo already downloaded into `wit/deps/`, so that `bindgen!` and the import check can resolve
//! the world. The copies are gitignored: the spin-sdk crate stays the single source of them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The spin-sdk release the components build against (the workspace's `spin-sdk = "5.2"`).
const SPIN_SDK_VERSION_PREFIX: &str = "5.2.";

/// Dependency packages of `wit/world.wit`, as directories of spin-sdk's `wit/deps`, with the files
/// to take from each (`None`: every file). A directory must be complete enough for every world
/// in it to resolve, hence whole WASI packages, while only the two interfaces the components use
/// are taken from `fermyon:spin@2.0.0` (its worlds reference many other packages; the `package`
/// header, which lives in its world.wit, is written on its own).
const WIT_DEPS: &[(&str, Option<&[&str]>)] = &[
    ("spin-postgres@4.0.0", None),
    ("spin@2.0.0", Some(&["sqlite.wit", "variables.wit"])),
    ("cli@0.2.6", None),
    ("clocks@0.2.6", None),
    ("filesystem@0.2.6", None),
    ("http@0.2.6", None),
    ("io@0.2.6", None),
    ("random@0.2.6", None),
    ("sockets@0.2.6", None),
    ("cli@0.2.0", None),
    ("clocks@0.2.0", None),
    ("filesystem@0.2.0", None),
    ("http@0.2.0", None),
    ("io@0.2.0", None),
    ("random@0.2.0", None),
    ("sockets@0.2.0", None),
];

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let workspace_root = manifest_dir.join("../..");
    let wit_dir = workspace_root.join("wit");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", wit_dir.join("world.wit").display());
    println!("cargo:rerun-if-changed={}", workspace_root.join("Cargo.lock").display());

    let sdk_wit_deps = spin_sdk_dir(&workspace_root)?.join("wit").join("deps");
    let target = wit_dir.join("deps");
    for (package_dir, files) in WIT_DEPS {
        copy_package(&sdk_wit_deps.join(package_dir), &target.join(package_dir), *files)
            .with_context(|| format!("copying WIT package {package_dir}"))?;
    }
    Ok(())
}

/// Where cargo unpacked spin-sdk 5.2: asked of `cargo metadata` for the workspace (which also
/// downloads it on a fresh machine), else looked for in cargo's registry cache.
fn spin_sdk_dir(workspace_root: &Path) -> Result<PathBuf> {
    match spin_sdk_dir_from_metadata(workspace_root) {
        Ok(dir) => Ok(dir),
        Err(metadata_error) => spin_sdk_dir_from_registry()
            .with_context(|| format!("spin-sdk {SPIN_SDK_VERSION_PREFIX}x not found ({metadata_error:#})")),
    }
}

fn spin_sdk_dir_from_metadata(workspace_root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(workspace_root.join("Cargo.toml"))
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let packages = metadata["packages"].as_array().context("no packages in cargo metadata")?;
    packages
        .iter()
        .filter(|p| p["name"] == "spin-sdk")
        .filter(|p| p["version"].as_str().is_some_and(|v| v.starts_with(SPIN_SDK_VERSION_PREFIX)))
        .find_map(|p| Some(Path::new(p["manifest_path"].as_str()?).parent()?.to_path_buf()))
        .context("spin-sdk is not a dependency of the workspace")
}

fn spin_sdk_dir_from_registry() -> Result<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let mut candidates = Vec::new();
    for index in std::fs::read_dir(cargo_home.join("registry").join("src"))? {
        for entry in std::fs::read_dir(index?.path())? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with(&format!("spin-sdk-{SPIN_SDK_VERSION_PREFIX}")) {
                candidates.push(path);
            }
        }
    }
    candidates.sort();
    candidates.pop().context("spin-sdk is not in cargo's registry cache")
}

/// Copies the `.wit` files of one package, rewriting a file only when its content changed (so
/// that concurrent builds and `rerun-if-changed` stay quiet).
fn copy_package(from: &Path, to: &Path, only: Option<&[&str]>) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if !name.ends_with(".wit") || only.is_some_and(|files| !files.contains(&name)) {
            continue;
        }
        write_if_changed(&to.join(name), &std::fs::read(&path)?)?;
    }
    if let Some(files) = only {
        let header = package_header(from)?;
        if !files.iter().any(|name| declares_package(&to.join(name))) {
            write_if_changed(&to.join("package.wit"), format!("{header}\n").as_bytes())?;
        }
    }
    Ok(())
}

/// The `package name@version;` line of a WIT package directory.
fn package_header(dir: &Path) -> Result<String> {
    for entry in std::fs::read_dir(dir)? {
        let text = std::fs::read_to_string(entry?.path()).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.trim_start().starts_with("package ")) {
            return Ok(line.trim().to_string());
        }
    }
    bail!("no package header in {}", dir.display())
}

fn declares_package(file: &Path) -> bool {
    std::fs::read_to_string(file).is_ok_and(|text| text.lines().any(|l| l.trim_start().starts_with("package ")))
}

fn write_if_changed(destination: &Path, content: &[u8]) -> Result<()> {
    if std::fs::read(destination).ok().as_deref() != Some(content) {
        let name = destination.file_name().and_then(|n| n.to_str()).unwrap_or("wit");
        let temporary = destination.with_file_name(format!(".{name}.{}", std::process::id()));
        std::fs::write(&temporary, content)?;
        std::fs::rename(&temporary, destination)?;
    }
    Ok(())
}
