//! The end-to-end tests' harness: the Spin CLIs are known only at run time (`SPIN_BIN`), so each
//! test file lists its tests with [`e2e_tests!`](crate::e2e_tests) and this makes one trial per
//! test and Spin (and backend, where the test runs on both), each passing or failing on its own:
//! `api::list_answers_with_and_without_the_trailing_slash::spin-4.1.0-pre0::sqlite`.
//! `cargo test -p e2e -- <filter>` picks trials by name, as libtest does.

use std::future::Future;
use std::pin::Pin;

use libtest_mimic::{Arguments, Trial};

use crate::{Backend, Service, Spin};

pub type Body = Pin<Box<dyn Future<Output = ()>>>;

/// What a test runs on.
#[derive(Clone, Copy)]
pub enum Runs {
    /// A fresh service per Spin and backend, with the default variables.
    OnEachService(fn(Service) -> Body),
    /// Once per Spin and backend; the test starts what it needs.
    OnEachBackend(fn(&'static Spin, Backend) -> Body),
    /// Once per Spin.
    OnEachSpin(fn(&'static Spin) -> Body),
}

pub struct Test {
    pub name: &'static str,
    pub runs: Runs,
}

static VERBOSE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Whether the command line asked for `--nocapture`: the trials' own notes are printed then.
pub fn verbose() -> bool {
    VERBOSE.get().copied().unwrap_or(false)
}

/// Runs the trials of `tests` as the command line asks, and exits with their verdict.
pub fn run(tests: Vec<Test>) -> ! {
    let arguments = Arguments::from_args();
    VERBOSE.get_or_init(|| arguments.nocapture);
    let mut trials = Vec::new();
    for Test { name, runs } in tests {
        for spin in Spin::all() {
            let backends = match runs {
                Runs::OnEachSpin(_) => vec![None],
                Runs::OnEachService(_) | Runs::OnEachBackend(_) => vec![Some(Backend::Postgres), Some(Backend::Sqlite)],
            };
            for backend in backends {
                let on = match backend {
                    Some(Backend::Postgres) => "::postgres",
                    Some(Backend::Sqlite) => "::sqlite",
                    None => "",
                };
                trials.push(Trial::test(format!("{name}::spin-{}{on}", spin.version), move || {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .map_err(|e| format!("a runtime: {e}"))?;
                    runtime.block_on(async move {
                        match (runs, backend) {
                            (Runs::OnEachService(body), Some(backend)) => {
                                body(Service::start(spin, backend).await).await
                            }
                            (Runs::OnEachBackend(body), Some(backend)) => body(spin, backend).await,
                            (Runs::OnEachSpin(body), _) => body(spin).await,
                            (Runs::OnEachService(_) | Runs::OnEachBackend(_), None) => {
                                unreachable!("listed with a backend")
                            }
                        }
                    });
                    Ok(())
                }));
            }
        }
    }
    libtest_mimic::run(&arguments, trials).exit()
}

/// The tests of one file, and its `main` (in parentheses, so that rustfmt formats them). What a
/// test runs on comes first, then its doc comment:
///
/// ```ignore
/// e2e::e2e_tests!(
///     #[on_each_service]
///     async fn lists_everything(service: Service) { ... }
///
///     #[on_each_backend]
///     async fn migrates_a_fixture(spin: &Spin, backend: Backend) { ... }
///
///     #[on_each_spin]
///     async fn pushes_the_artifact(spin: &Spin) { ... }
/// );
/// ```
#[macro_export]
macro_rules! e2e_tests {
    ($( #[$runs:ident] $(#[doc = $doc:expr])* async fn $name:ident ($($arg:ident: $type:ty),*) $body:block )*) => {
        $(
            $(#[doc = $doc])*
            async fn $name($($arg: $type),*) $body
        )*

        fn main() {
            $crate::harness::run(vec![$(
                $crate::harness::Test { name: stringify!($name), runs: $crate::e2e_tests!(@runs $runs $name) },
            )*])
        }
    };
    (@runs on_each_service $name:ident) => {
        $crate::harness::Runs::OnEachService(|service| Box::pin($name(service)))
    };
    (@runs on_each_backend $name:ident) => {
        $crate::harness::Runs::OnEachBackend(|spin, backend| Box::pin($name(spin, backend)))
    };
    (@runs on_each_spin $name:ident) => {
        $crate::harness::Runs::OnEachSpin(|spin| Box::pin($name(spin)))
    };
}
