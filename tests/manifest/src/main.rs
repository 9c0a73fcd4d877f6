//! `app-manifest build-packages`: `-p <package>` for each component of spin.toml, as `tests/run`
//! passes them to one `cargo build` (spin.toml's own build commands, built together).

fn main() {
    let manifest = app_manifest::Manifest::of_the_app();
    match std::env::args().nth(1).as_deref() {
        Some("build-packages") => match manifest.packages() {
            Ok(packages) => {
                let args: Vec<String> = packages.values().map(|package| format!("-p {package}")).collect();
                println!("{}", args.join(" "));
            }
            Err(error) => {
                eprintln!("app-manifest: {error}");
                std::process::exit(1);
            }
        },
        _ => {
            eprintln!("usage: app-manifest build-packages");
            std::process::exit(2);
        }
    }
}
