//! The two releases a fleet test runs: this checkout (its `spin.toml`, built by `tests/run`)
//! and the previous release, built from the commit `CHANGELOG.md` names for it.
//!
//! CHANGELOG.md is the one place that says which commit a release is. Its first section is this
//! checkout's version: `## [Unreleased] - x.y.z` while it is worked on, `## [x.y.z] - date` on the
//! commit a release is tagged from (which cannot name its own commit); the next `## [x.y.z] -
//! date` section is the previous release, and its `Commit: <hash>` line the commit. That commit is extracted with `git archive` and built with
//! its own `spin.toml` build commands (what `spin build` runs; per-package `cargo build`s as one,
//! as `tests/run` builds this checkout), its own `.cargo/config.toml` and
//! its own target directory, in a scratch directory outside this checkout: cargo merges every
//! `.cargo/config.toml` from the working directory up, so a build under this checkout would also
//! get this checkout's settings. The app (its `spin.toml`, sources and built components) is then
//! kept in `target/releases/v<version>/`, with a stamp naming the commit: a second run finds it and
//! builds nothing. A first build reuses this checkout's compiled dependencies (hard links into the
//! scratch target directory, as `tests/e2e/tests/migration.rs` does), so only the release's own
//! crates compile; its files are extracted with the time of extraction, never the commit's, so
//! that cargo can never take this checkout's build of a crate for the release's.

use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{bail, ensure, Context as _, Result};

/// A build of the app that `spin up` can serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// As `spin.toml` says it (`0.3.0`).
    pub version: String,
    /// The `spin.toml` to serve.
    pub manifest: PathBuf,
    /// The commit it was built from, for the previous release.
    pub commit: Option<String>,
}

impl std::fmt::Display for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.commit {
            Some(commit) => write!(f, "{} ({})", self.version, &commit[..commit.len().min(8)]),
            None => write!(f, "{} (this checkout)", self.version),
        }
    }
}

/// This checkout, as `tests/run` built it.
pub fn this_release() -> Release {
    let manifest = test_support::workspace_root().join("spin.toml");
    let text = std::fs::read_to_string(&manifest).expect("spin.toml");
    Release { version: manifest_version(&text).expect("spin.toml has [application] version"), manifest, commit: None }
}

/// The previous release, built once per checkout (see the module's documentation). Panics with
/// what is wrong when it cannot be had: every fleet test needs it.
pub fn previous_release() -> &'static Release {
    static PREVIOUS: OnceLock<Release> = OnceLock::new();
    PREVIOUS.get_or_init(|| build_previous().unwrap_or_else(|error| panic!("the previous release: {error:#}")))
}

/// A release as CHANGELOG.md records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub version: String,
    pub commit: String,
}

/// The version a CHANGELOG's first section is about, and whether that section is a release (`##
/// [x.y.z] - date`) rather than `## [Unreleased] - x.y.z`.
pub fn changelog_heading(changelog: &str) -> Result<(String, bool)> {
    let section = changelog.split("\n## [").nth(1).context("CHANGELOG.md has no `## [...]` section")?;
    let heading = section.lines().next().unwrap_or_default();
    let (version, released) = match heading.strip_prefix("Unreleased] - ") {
        Some(version) => (version.trim(), false),
        None => {
            let (version, date) = heading.split_once("] - ").unwrap_or((heading, ""));
            let date: Vec<&str> = date.trim().split('-').collect();
            ensure!(
                date.len() == 3
                    && [4, 2, 2].iter().zip(&date).all(|(n, part)| part.len() == *n && part.parse::<u32>().is_ok()),
                "CHANGELOG.md's first heading `## [{heading}` is neither `## [Unreleased] - x.y.z` nor `## [x.y.z] - \
                 YYYY-MM-DD`"
            );
            (version, true)
        }
    };
    ensure!(is_version(version), "CHANGELOG.md's first heading `## [{heading}` names no version (x.y.z)");
    Ok((version.to_owned(), released))
}

/// The release before `current` in a CHANGELOG in the format of ours: the first section must be
/// `current`'s (unreleased or released, see the module's documentation), and the next one, a
/// release older than `current`, is returned with the hash of its `Commit:` line.
pub fn previous_in_changelog(changelog: &str, current: &str) -> Result<Recorded> {
    let (first, _) = changelog_heading(changelog)?;
    ensure!(
        first == current,
        "CHANGELOG.md's first section is about {first}, but this checkout is {current} (spin.toml): a version was \
         moved on in one place only"
    );
    let section = changelog.split("\n## [").nth(2).context("CHANGELOG.md records no release below this one's")?;
    let version = section.split(']').next().unwrap_or_default().trim().to_owned();
    ensure!(is_version(&version), "CHANGELOG.md: `## [{version}]` is not a release version (x.y.z)");
    ensure!(
        semver(&version) < semver(current),
        "CHANGELOG.md's newest release {version} is not older than spin.toml's version {current}: a release was cut \
         without moving spin.toml on"
    );
    let commit = section
        .lines()
        .find_map(|line| line.trim().strip_prefix("Commit:"))
        .and_then(|rest| rest.split_whitespace().next())
        .with_context(|| format!("CHANGELOG.md: release {version} has no `Commit: <hash>` line"))?
        .to_owned();
    ensure!(
        commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "CHANGELOG.md: release {version}'s commit `{commit}` is not a commit hash"
    );
    Ok(Recorded { version, commit })
}

fn is_version(version: &str) -> bool {
    version.split('.').count() == 3 && version.split('.').all(|part| part.parse::<u64>().is_ok())
}

/// `[application] version` of a spin.toml.
fn manifest_version(manifest: &str) -> Result<String> {
    let manifest: toml::Value = toml::from_str(manifest)?;
    Ok(manifest["application"]["version"].as_str().context("[application] version")?.to_owned())
}

fn build_previous() -> Result<Release> {
    let root = test_support::workspace_root();
    let current = this_release().version;
    let recorded = previous_in_changelog(&std::fs::read_to_string(root.join("CHANGELOG.md"))?, &current)?;
    let commit = resolve_commit(&root, &recorded)?;
    let dir = root.join("target/releases").join(format!("v{}", recorded.version));
    std::fs::create_dir_all(dir.parent().unwrap())?;

    // One build at a time, across test processes too.
    let lock = std::fs::File::create(dir.with_extension("lock"))?;
    // SAFETY: flock(2) on a descriptor this function owns; released when `lock` is dropped.
    ensure!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } == 0, "flock {}", dir.display());

    let release = Release { version: recorded.version.clone(), manifest: dir.join("spin.toml"), commit: Some(commit) };
    let stamp = dir.join(".built");
    let commit = release.commit.as_deref().unwrap();
    if std::fs::read_to_string(&stamp).is_ok_and(|built| built.trim() == commit) && sources_exist(&dir)? {
        eprintln!("fleet: release {release}: cached in {}", dir.display());
        return Ok(release);
    }

    let started = Instant::now();
    let scratch = tempfile::Builder::new().prefix("integrations-release-").tempdir()?;
    let build = scratch.path().join(format!("v{}", recorded.version));
    extract(&root, commit, &build)?;
    let seeded = seed_target(&root, &build.join("target"));
    run_build_commands(&build)?;
    ensure!(sources_exist(&build)?, "release {release}: its build commands left a component source missing");
    keep(&build, &dir)?;
    std::fs::write(&stamp, format!("{commit}\n"))?;
    eprintln!(
        "fleet: release {release}: built from its commit in {:.0} s{} into {}",
        started.elapsed().as_secs_f64(),
        if seeded { " (dependencies reused from this checkout's target/)" } else { "" },
        dir.display()
    );
    Ok(release)
}

fn semver(version: &str) -> Vec<u64> {
    version.split(['.', '-']).take(3).map(|part| part.parse().unwrap_or(0)).collect()
}

/// The full hash of the recorded commit, or why this clone does not have it.
fn resolve_commit(root: &Path, recorded: &Recorded) -> Result<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "--verify", "--quiet", &format!("{}^{{commit}}", recorded.commit)])
        .output()
        .context("running git (the fleet tests build the previous release from its commit)")?;
    if !output.status.success() {
        bail!(
            "release {}'s commit {} (CHANGELOG.md) is not in this clone of the repository at {}. The fleet tests \
             build the previous release from it: clone with full history (a shallow clone lacks it: `git fetch \
             --unshallow`; actions/checkout needs `fetch-depth: 0`)",
            recorded.version,
            recorded.commit,
            root.display()
        );
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// The commit's files (`git archive`) into `dir`, dated now (`tar -m`).
fn extract(root: &Path, commit: &str, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["archive", "--format=tar", commit])
        .stdout(Stdio::piped())
        .spawn()
        .context("git archive")?;
    let status = Command::new("tar")
        .args(["-x", "-m", "-C"])
        .arg(dir)
        .stdin(archive.stdout.take().unwrap())
        .status()
        .context("tar -x")?;
    ensure!(archive.wait()?.success() && status.success(), "git archive {commit} | tar -x failed");
    Ok(())
}

/// Seeds the release's target directory with hard links to this checkout's compiled
/// wasm32-wasip2 and host release builds, so that the dependencies both share (the same
/// versions from crates.io, the same flags) are not compiled again; returns whether it did (not
/// across file systems). The release's own crates are newer than anything seeded (see
/// [`extract`]), so they compile anew; cargo replaces an artifact by unlinking it first, so
/// this checkout's files are never written through a link.
fn seed_target(root: &Path, target: &Path) -> bool {
    if std::fs::create_dir_all(target).is_err() {
        return false;
    }
    let mut seeded = false;
    for built in ["wasm32-wasip2", "release"] {
        let from = root.join("target").join(built);
        if from.exists() {
            let linked = Command::new("cp").arg("-al").arg(&from).arg(target).stderr(Stdio::null()).status();
            if !linked.is_ok_and(|status| status.success()) {
                let _ = std::fs::remove_dir_all(target.join(built));
                continue;
            }
            seeded = true;
        }
    }
    seeded
}

/// Keeps the built app in `dir` (replacing what was there): every file of the commit, and the
/// built component sources its spin.toml names, without the build's target directory.
fn keep(build: &Path, dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(build)? {
        let path = entry?.path();
        if path.file_name().is_some_and(|name| name != "target") {
            let status = Command::new("cp").arg("-a").arg(&path).arg(dir).status()?;
            ensure!(status.success(), "cp -a {} {}", path.display(), dir.display());
        }
    }
    for source in component_sources(build)? {
        let to = dir.join(&source);
        std::fs::create_dir_all(to.parent().unwrap())?;
        std::fs::copy(build.join(&source), &to)?;
    }
    Ok(())
}

/// Every component's `[component.*.build] command` of the release's spin.toml, each once, from
/// its `workdir` (default: the app's directory), with the release's own `CARGO_TARGET_DIR`;
/// output into `dir/build.log`. Commands that are one `cargo build` but for their `-p` (ours are)
/// run as that one `cargo build` with every `-p`, as `tests/run` builds this checkout: the same
/// artifacts, with the final links of the components in parallel.
fn run_build_commands(dir: &Path) -> Result<()> {
    let manifest: toml::Value = toml::from_str(&std::fs::read_to_string(dir.join("spin.toml"))?)?;
    let mut commands: Vec<(String, PathBuf)> = Vec::new();
    for (id, component) in manifest["component"].as_table().context("spin.toml has no [component.*]")? {
        let Some(build) = component.get("build") else { continue };
        let command = build["command"].as_str().with_context(|| format!("component {id}: build.command"))?.to_owned();
        let workdir = dir.join(build.get("workdir").and_then(|w| w.as_str()).unwrap_or("."));
        if !commands.iter().any(|(c, w)| *c == command && *w == workdir) {
            commands.push((command, workdir));
        }
    }
    let commands = merge_cargo_builds(commands);
    let log_path = dir.join("build.log");
    let mut log = std::fs::File::create(&log_path)?;
    for (command, workdir) in commands {
        writeln!(log, "$ {command}")?;
        let status = Command::new("sh")
            .args(["-c", &command])
            .current_dir(&workdir)
            .env("CARGO_TARGET_DIR", dir.join("target"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .status()
            .with_context(|| format!("running `{command}`"))?;
        if !status.success() {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            bail!(
                "`{command}` failed ({status}) building the previous release in {}:\n{}",
                dir.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
    Ok(())
}

/// `cargo build ... -p a`, `cargo build ... -p b` (the same flags, the same directory) ->
/// `cargo build ... -p a -p b`; anything else is left as it is.
fn merge_cargo_builds(commands: Vec<(String, PathBuf)>) -> Vec<(String, PathBuf)> {
    let split = |command: &str| -> Option<(String, String)> {
        let words: Vec<&str> = command.split_whitespace().collect();
        let at = words.iter().position(|word| *word == "-p")?;
        let simple = words.starts_with(&["cargo", "build"])
            && words.len() == at + 2
            && words.iter().all(|word| word.chars().all(|c| c.is_ascii_alphanumeric() || "-_.=".contains(c)));
        simple.then(|| (words[..at].join(" "), words[at + 1].to_owned()))
    };
    let Some((flags, _)) = commands.first().and_then(|(command, _)| split(command)) else { return commands };
    let same = commands
        .iter()
        .all(|(command, workdir)| *workdir == commands[0].1 && split(command).is_some_and(|(f, _)| f == flags));
    if !same {
        return commands;
    }
    let packages: Vec<String> =
        commands.iter().filter_map(|(command, _)| split(command)).map(|(_, package)| format!("-p {package}")).collect();
    vec![(format!("{flags} {}", packages.join(" ")), commands[0].1.clone())]
}

/// Every component's `source` of the spin.toml in `dir`, relative to it.
fn component_sources(dir: &Path) -> Result<Vec<PathBuf>> {
    let manifest: toml::Value = toml::from_str(&std::fs::read_to_string(dir.join("spin.toml"))?)?;
    let components = manifest["component"].as_table().context("spin.toml has no [component.*]")?;
    components
        .iter()
        .map(|(id, component)| {
            component["source"].as_str().map(PathBuf::from).with_context(|| format!("component {id}: a file source"))
        })
        .collect()
}

/// Whether every component's `source` of the spin.toml in `dir` exists.
fn sources_exist(dir: &Path) -> Result<bool> {
    if !dir.join("spin.toml").is_file() {
        return Ok(false);
    }
    Ok(component_sources(dir)?.iter().all(|source| dir.join(source).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHANGELOG: &str = "# Changelog\n\nIntro.\n\n## [Unreleased] - 0.4.0\n\n- a change\n\n\
        ## [0.3.0] - 2026-12-24\n\nCommit: 0123abcd (main after ...).\n\n- things\n\n\
        ## [0.2.0] - 2026-11-30\n\nCommit: cc14395f\n";

    #[test]
    fn the_previous_release_is_the_newest_section_below_unreleased() {
        let recorded = previous_in_changelog(CHANGELOG, "0.4.0").unwrap();
        assert_eq!(recorded, Recorded { version: "0.3.0".into(), commit: "0123abcd".into() });
        assert_eq!(changelog_heading(CHANGELOG).unwrap(), ("0.4.0".to_owned(), false));
    }

    /// The commit a release is tagged from has its own dated section on top, which cannot name
    /// that commit: the previous release is still the one below it.
    #[test]
    fn on_the_release_commit_the_previous_release_is_the_section_below_its_own() {
        let tagged = CHANGELOG.replace("## [Unreleased] - 0.4.0", "## [0.4.0] - 2027-01-10");
        assert_eq!(changelog_heading(&tagged).unwrap(), ("0.4.0".to_owned(), true));
        let recorded = previous_in_changelog(&tagged, "0.4.0").unwrap();
        assert_eq!(recorded, Recorded { version: "0.3.0".into(), commit: "0123abcd".into() });
    }

    #[test]
    fn a_changelog_without_a_commit_or_a_release_is_refused_with_the_reason() {
        let no_commit = CHANGELOG.replace("Commit: 0123abcd (main after ...).", "");
        let error = previous_in_changelog(&no_commit, "0.4.0").unwrap_err().to_string();
        assert!(error.contains("release 0.3.0 has no `Commit: <hash>` line"), "{error}");
        let only_unreleased = "# Changelog\n\n## [Unreleased] - 0.1.0\n";
        let error = previous_in_changelog(only_unreleased, "0.1.0").unwrap_err().to_string();
        assert!(error.contains("records no release"), "{error}");
        let not_a_hash = CHANGELOG.replace("0123abcd", "tbd");
        assert!(previous_in_changelog(&not_a_hash, "0.4.0").unwrap_err().to_string().contains("not a commit hash"));
    }

    /// The first section is this checkout's version, said so: a bump of spin.toml alone, a
    /// heading without its version, or an undated release is refused.
    #[test]
    fn a_first_section_about_another_version_is_refused() {
        let error = previous_in_changelog(CHANGELOG, "0.4.1").unwrap_err().to_string();
        assert!(error.contains("about 0.4.0, but this checkout is 0.4.1"), "{error}");
        let error = previous_in_changelog(CHANGELOG, "0.3.0").unwrap_err().to_string();
        assert!(error.contains("about 0.4.0, but this checkout is 0.3.0"), "{error}");
        for heading in ["## [Unreleased]", "## [0.4.0]", "## [0.4.0] - soon", "## [Unreleased] - next"] {
            let changelog = CHANGELOG.replace("## [Unreleased] - 0.4.0", heading);
            assert!(changelog_heading(&changelog).is_err(), "{heading}");
        }
        // A first section whose release is not newer than the one below it.
        let behind = CHANGELOG.replace("## [Unreleased] - 0.4.0", "## [Unreleased] - 0.3.0");
        let error = previous_in_changelog(&behind, "0.3.0").unwrap_err().to_string();
        assert!(error.contains("not older than spin.toml's version 0.3.0"), "{error}");
    }

    #[test]
    fn per_component_cargo_builds_become_one() {
        let dir = PathBuf::from("/app");
        let command =
            |package: &str| (format!("cargo build --target wasm32-wasip2 --release -p {package}"), dir.clone());
        assert_eq!(
            merge_cargo_builds(vec![command("a"), command("b-c")]),
            [("cargo build --target wasm32-wasip2 --release -p a -p b-c".to_owned(), dir.clone())]
        );
        let other = vec![command("a"), ("make wasm".to_owned(), dir.clone())];
        assert_eq!(merge_cargo_builds(other.clone()), other);
        let elsewhere = vec![command("a"), (command("b").0, PathBuf::from("/app/b"))];
        assert_eq!(merge_cargo_builds(elsewhere.clone()), elsewhere);
    }

    #[test]
    fn the_repositorys_changelog_names_a_release_older_than_this_one() {
        let root = test_support::workspace_root();
        let changelog = std::fs::read_to_string(root.join("CHANGELOG.md")).unwrap();
        let recorded = previous_in_changelog(&changelog, &this_release().version).unwrap();
        assert!(semver(&recorded.version) < semver(&this_release().version), "{recorded:?}");
        assert_eq!(semver("0.10.0").cmp(&semver("0.9.1")), std::cmp::Ordering::Greater);
    }

    /// One version, said in three places that cannot be derived from each other: spin.toml's
    /// `[application] version` (the OCI artifact's version, which release.yml checks the tag
    /// against), the workspace's (every crate's `CARGO_PKG_VERSION`: the OpenAPI description's
    /// `info.version` and `integrations_build_info`), and the CHANGELOG's first heading.
    #[test]
    fn spin_toml_every_crate_and_the_changelog_name_one_version() {
        let root = test_support::workspace_root();
        let version = this_release().version;
        let changelog = std::fs::read_to_string(root.join("CHANGELOG.md")).unwrap();
        assert_eq!(changelog_heading(&changelog).unwrap().0, version, "CHANGELOG.md's first heading vs spin.toml");
        let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["metadata", "--no-deps", "--offline", "--format-version", "1"])
            .current_dir(&root)
            .output()
            .expect("cargo metadata");
        assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
        let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let packages = metadata["packages"].as_array().unwrap();
        assert!(packages.iter().any(|package| package["name"] == "integrations-core"), "the workspace's crates");
        let other: Vec<String> = packages
            .iter()
            .filter(|package| package["version"] != version.as_str())
            .map(|package| format!("{} {}", package["name"], package["version"]))
            .collect();
        assert!(other.is_empty(), "crates whose version is not spin.toml's {version}: {other:?}");
    }
}
