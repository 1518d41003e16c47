//! The `andante` binary: `serve` runs the components chosen by `--target` (all of them by
//! default) in one process, `gen` sends demo traffic, `version` and `config-reference` print.
//! This is the only crate that knows every other one; it wires them and owns process concerns
//! (configuration, signals, background loops).

mod config;
mod listen;
mod live_api;
mod query_jobs;
mod roles;
mod serve;
mod tls;
mod tokens;

/// The ingest path allocates many small strings per span; glibc malloc spent about half the
/// server's CPU in allocation and consolidation under load (perf, docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;

use anyhow::Context;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

fn serve_command() -> Command {
    let mut command = Command::new("serve")
        .about("Run Andante (every component in one process by default)")
        .arg(
            Arg::new("config.file")
                .long("config.file")
                .env("ANDANTE_CONFIG_FILE")
                .help("YAML configuration file"),
        );
    for key in config::KEYS {
        let mut arg = Arg::new(key.path)
            .long(key.flag())
            .env(key.env())
            .help(key.help)
            .action(ArgAction::Set);
        if key.kind == config::Kind::Bool {
            arg = arg.num_args(0..=1).default_missing_value("true");
        }
        if key.path == "demo.enabled" {
            arg = arg.alias("demo");
        }
        command = command.arg(arg);
    }
    command
}

fn cli() -> Command {
    Command::new("andante")
        .about("Andante: a Tempo-compatible trace store with metrics and root-cause insights")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .subcommand(serve_command())
        .subcommand(andante_gen::GenArgs::augment_args(
            Command::new("gen").about("Send realistic OTLP trace traffic"),
        ))
        .subcommand(
            Command::new("rules")
                .about("Work with Prometheus rule files")
                .subcommand_required(true)
                .subcommand(
                    Command::new("test")
                        .about("Run promtool-format rule unit tests with Andante's rule engine")
                        .arg(Arg::new("files").required(true).num_args(1..).help("Unit-test files (promtool's `test rules` format)"))
                        .arg(
                            Arg::new("print")
                                .long("print")
                                .action(ArgAction::SetTrue)
                                .help("Print what Andante computed for every check as JSON lines instead of comparing"),
                        ),
                )
                .subcommand(
                    Command::new("check")
                        .about("Validate rule files")
                        .arg(Arg::new("files").required(true).num_args(1..)),
                ),
        )
        .subcommand(Command::new("version").about("Print the version"))
        .subcommand(
            Command::new("config-reference")
                .about("Print the configuration reference (docs/CONFIG.md)"),
        )
}

/// Values given on the command line or in the environment (not clap defaults: there are none).
fn explicit_values(matches: &ArgMatches) -> BTreeMap<&'static str, String> {
    config::KEYS
        .iter()
        .filter_map(|key| {
            matches
                .get_one::<String>(key.path)
                .map(|value| (key.path, value.clone()))
        })
        .collect()
}

/// mimalloc advises transparent huge pages on its arenas, so memory it purged after one request
/// came back to the next as fresh 2 MB pages, each zeroed whole: with THP in `madvise` mode (the
/// common distribution default) half of a warm TraceQL metrics query's CPU samples were
/// `clear_page_erms` under huge-page faults. Without huge pages the same query used about a
/// quarter less CPU (docs/BENCHMARKS.md, session 25). A refusal changes nothing but speed.
fn without_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!("transparent huge pages stay enabled: {error}");
    }
}

fn main() -> anyhow::Result<()> {
    without_transparent_huge_pages();
    let matches = cli().get_matches();
    match matches.subcommand() {
        Some(("serve", matches)) => {
            let file = matches.get_one::<String>("config.file").cloned();
            let config = config::merge(file.as_deref(), &explicit_values(matches))?;
            config.validate()?;
            init_logging(&config.log.level);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("start runtime")?;
            runtime.block_on(serve::serve(config))
        }
        Some(("gen", matches)) => {
            init_logging("info");
            let args =
                andante_gen::GenArgs::from_arg_matches(matches).context("invalid gen arguments")?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("start runtime")?;
            let report = runtime.block_on(andante_gen::run(args))?;
            println!(
                "sent {} traces, {} spans in {:.1}s ({:.0} spans/s); {} failed requests, {} rejected spans",
                report.traces,
                report.spans,
                report.elapsed.as_secs_f64(),
                report.spans as f64 / report.elapsed.as_secs_f64().max(1e-9),
                report.failed_requests,
                report.rejected_spans
            );
            Ok(())
        }
        Some(("rules", matches)) => rules_command(matches),
        Some(("version", _)) => {
            println!("andante {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(("config-reference", _)) => {
            print!("{}", config::reference_markdown());
            Ok(())
        }
        _ => anyhow::bail!("unknown subcommand; see `andante --help`"),
    }
}

/// `andante rules test|check`: exits 1 when a test fails or a file does not validate.
fn rules_command(matches: &ArgMatches) -> anyhow::Result<()> {
    let files = |matches: &ArgMatches| -> Vec<String> {
        matches
            .get_many::<String>("files")
            .map(|files| files.cloned().collect())
            .unwrap_or_default()
    };
    let mut failed = false;
    match matches.subcommand() {
        Some(("check", matches)) => {
            for file in files(matches) {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("failed to read `{file}`"))?;
                match andante_rules::parse_rule_file(&file, &text) {
                    Ok(groups) => {
                        let rules: usize = groups.iter().map(|group| group.rules.len()).sum();
                        println!("{file}: SUCCESS: {rules} rules found");
                    }
                    Err(error) => {
                        failed = true;
                        println!("{file}: FAILED: {error}");
                    }
                }
            }
        }
        Some(("test", matches)) => {
            let print = matches.get_flag("print");
            for file in files(matches) {
                let outcomes =
                    match andante_rules::unit_test::run_test_file(std::path::Path::new(&file)) {
                        Ok(outcomes) => outcomes,
                        Err(error) => {
                            failed = true;
                            println!("{file}: FAILED: {error}");
                            continue;
                        }
                    };
                for outcome in &outcomes {
                    if print {
                        println!("{}", serde_json::to_string(outcome)?);
                    } else if !outcome.passed() {
                        failed = true;
                        println!("{file}: FAILED: {}", serde_json::to_string_pretty(outcome)?);
                    }
                }
                if !print && outcomes.iter().all(|outcome| outcome.passed()) {
                    println!("{file}: SUCCESS ({} checks)", outcomes.len());
                }
            }
        }
        _ => anyhow::bail!("unknown `rules` subcommand; see `andante rules --help`"),
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    // A decoder panic on damaged block data is contained (`andante_block::guard`) and reported
    // as a corrupt block by whoever read it; the default hook's "thread panicked" would read as
    // a crash, so it becomes one log line instead.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if andante_block::guard::decoding() {
            tracing::warn!(panic = %info, "the Parquet decoder failed on damaged block data (contained)");
        } else {
            default_hook(info);
        }
    }));
}
