//! The `wharf-registry` command: `serve [config.yml]`, `config check FILE`,
//! `garbage-collect [config.yml]` and `retention [config.yml]`.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use wharf_registry::config::{Config, DEFAULT_CONFIG, GoDuration};
use wharf_registry::registry::gc::LastCollection;
use wharf_registry::{build, debug, server, telemetry};

#[derive(Parser)]
#[command(name = "wharf-registry", version, about = "OCI Distribution registry, a drop-in for registry:2")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry API (with no file: a development registry on 127.0.0.1:5000 storing in ./var/registry).
    Serve {
        #[arg(env = "REGISTRY_CONFIGURATION_PATH")]
        config: Option<String>,
    },
    /// Delete blobs that no stored manifest refers to, as registry:2's garbage-collect.
    GarbageCollect {
        #[arg(env = "REGISTRY_CONFIGURATION_PATH")]
        config: Option<String>,
        /// Print what would be deleted; delete nothing.
        #[arg(short, long)]
        dry_run: bool,
        /// Spare unreferenced blobs written or referenced within this Go duration (at least 1m):
        /// a push uploads its layers before the manifest that refers to them.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        min_age: Duration,
        /// Also delete manifests that no tag reaches (directly or as an index's child).
        #[arg(short = 'm', long)]
        delete_untagged: bool,
    },
    /// Apply storage.retention once: delete the tags (and manifests) its policies do not keep.
    Retention {
        #[arg(env = "REGISTRY_CONFIGURATION_PATH")]
        config: Option<String>,
        /// Print what would be deleted; delete nothing.
        #[arg(short, long)]
        dry_run: bool,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config file (with REGISTRY_* overrides) and print the effective config.
    Check { file: String },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    GoDuration::parse(s).ok_or_else(|| format!("`{s}` is not a duration such as 30m or 1h"))
}

fn load(path: Option<&str>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Ok(Config::load(p)?),
        None => Ok(Config::from_yaml(DEFAULT_CONFIG, std::env::vars())?),
    }
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole context chain on one line, without a backtrace.
            eprintln!("wharf-registry: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Config { command: ConfigCommand::Check { file } } => {
            let config = Config::load(&file).with_context(|| format!("{file} is not a valid configuration"))?;
            print!("{}", config.to_yaml());
            Ok(())
        }
        Command::GarbageCollect { config, dry_run, min_age, delete_untagged } => {
            let config = load(config.as_deref())?;
            tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
                let app = build(&config)?;
                let started = std::time::Instant::now();
                let outcome = app.registry.garbage_collect(min_age, dry_run, delete_untagged).await;
                let last = LastCollection::of(&outcome, dry_run, started.elapsed());
                app.registry.record_collection(&last).await;
                let report = outcome.context("garbage collection")?;
                let verb = if dry_run { "would delete" } else { "deleted" };
                for m in &report.untagged_deleted {
                    println!("{verb} untagged manifest {m}");
                }
                for d in &report.deleted {
                    println!("{verb} blob {d}");
                }
                println!(
                    "{} manifests mark {} blobs; {verb} {} unreferenced blobs ({} bytes); spared {} younger than {} \
                     and {} referenced since",
                    report.manifests,
                    report.marked,
                    report.deleted.len(),
                    report.freed_bytes,
                    report.spared_young,
                    GoDuration(report.grace),
                    report.spared_referenced,
                );
                Ok(())
            })
        }
        Command::Retention { config, dry_run } => {
            let config = load(config.as_deref())?;
            let retention = config
                .storage
                .retention
                .clone()
                .context("storage.retention is not set: there is no policy to apply")?;
            tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
                let app = build(&config)?;
                let report = app.registry.apply_retention(&retention, dry_run).await.context("retention")?;
                let verb = if report.dry_run { "would delete" } else { "deleted" };
                for t in &report.tags_deleted {
                    println!("{verb} tag {t}");
                }
                for m in &report.manifests_deleted {
                    println!("{verb} manifest {m}");
                }
                println!(
                    "{} repositories under a policy; kept {} tags; {verb} {} tags and {} manifests; spared {} pushed \
                     within {} and {} pushed again during the run",
                    report.repositories,
                    report.tags_kept,
                    report.tags_deleted.len(),
                    report.manifests_deleted.len(),
                    report.spared_recent,
                    retention.delay,
                    report.spared_changed,
                );
                Ok(())
            })
        }
        Command::Serve { config } => {
            let config = load(config.as_deref())?;
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(config))
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let otlp = telemetry::init(&config.log)?;
    let app = build(&config)?;
    let mut limits = server::Limits::from_config(&config.http);
    limits.tls = match &config.http.tls {
        Some(t) => Some(server::tls_config(&t.certificate, &t.key)?),
        None => None,
    };
    let addr = config.listen_addr();
    let listener = TcpListener::bind(&addr).await.with_context(|| format!("binding http.addr {addr}"))?;

    let storage_health = config.health.storagedriver.clone().filter(|h| h.enabled);
    let health = debug::Health::new(app.registry.clone(), storage_health.as_ref().map_or(0, |h| h.threshold.max(1)));
    if let Some(h) = &storage_health {
        tokio::spawn(health.clone().watch(h.interval.0));
    }
    // A first answer before anything listens, so a probe never sees "not
    // checked yet" from a healthy store; an unreachable one is not waited for.
    let _ = tokio::time::timeout(Duration::from_secs(3), health.check_ready()).await;
    tokio::spawn(health.clone().watch_ready(Duration::from_secs(5)));
    // Quota usage: counted from storage now, and recounted periodically (registry/quota.rs).
    if app.registry.has_quotas() {
        tokio::spawn(app.registry.clone().watch_quotas(wharf_registry::registry::quota::RECOMPUTE_EVERY));
    }
    if let Some(d) = &config.http.debug
        && let Some(debug_addr) = &d.addr
    {
        let path =
            d.prometheus.as_ref().filter(|p| p.enabled).map(|p| p.path.clone().unwrap_or_else(|| "/metrics".into()));
        let debug_addr = wharf_registry::config::normalize_addr(debug_addr);
        let debug_listener =
            TcpListener::bind(&debug_addr).await.with_context(|| format!("binding http.debug.addr {debug_addr}"))?;
        tracing::info!(addr = %debug_listener.local_addr()?, "debug server listening");
        let router = debug::router(health.clone(), path);
        let debug_limits = server::Limits { tls: None, drain: Duration::ZERO, ..limits.clone() };
        tokio::spawn(server::serve(debug_listener, router, debug_limits, std::future::pending()));
    }
    if let Some(p) = config.storage.maintenance.as_ref().and_then(|m| m.uploadpurging.clone()).filter(|p| p.enabled) {
        let registry = app.registry.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(p.interval.0);
            loop {
                tick.tick().await;
                match registry.purge_uploads(p.age.0, p.dryrun).await {
                    Ok(n) => tracing::info!(purged = n, dry_run = p.dryrun, "upload purge finished"),
                    Err(e) => tracing::warn!(error = %e, "upload purge failed"),
                }
            }
        });
    }

    if let Some(gc) = config.storage.gc.clone().filter(|g| g.enabled) {
        tokio::spawn(wharf_registry::collector::run(app.registry.clone(), gc, config.storage.retention.clone()));
    }
    // The search index is built before the first search needs it (registry/search.rs).
    {
        let registry = app.registry.clone();
        tokio::spawn(async move {
            if let Err(e) = registry.rebuild_search_index().await {
                tracing::warn!(error = %e, "building the search index failed; the first search tries again");
            }
        });
    }
    if config.storage.retention.is_some() {
        // Pull times for retention, written in batches (registry/pulls.rs).
        let registry = app.registry.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(wharf_registry::registry::pulls::FLUSH_EVERY);
            loop {
                tick.tick().await;
                if let Err(e) = registry.flush_pulls().await {
                    tracing::warn!(error = %e, "writing pull times failed; kept for the next flush");
                }
            }
        });
    }

    if let Some(n) = &config.notifications {
        let holder = wharf_registry::notifications::holder(&listener.local_addr()?.to_string());
        wharf_registry::notifications::spawn(app.registry.clone(), n, holder)?;
    }
    // Tests and tools wait for this exact line.
    tracing::info!("listening on {}", listener.local_addr()?);
    server::serve(listener, app.router, limits, shutdown_signal()).await?;
    match app.registry.flush_pulls().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(repositories = n, "pull times written"),
        Err(e) => tracing::warn!(error = %e, "writing pull times at shutdown failed; the last batch is lost"),
    }
    // The last spans leave before the process does (a blocking flush).
    let _ = tokio::task::spawn_blocking(move || telemetry::otlp::shutdown(otlp)).await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = int.recv() => tracing::info!("SIGINT: draining"),
    }
}
