//! The `wharf-operator` command: `run` (the controllers), `crds` (print the
//! CRDs), `render` (print what a resource becomes, without a cluster) and
//! `node-agent` (the node side of `nodeAccess`, run by its DaemonSet).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use wharf_operator::context::Context;
use wharf_operator::controller::{self, Scope};
use wharf_operator::leader::{LeaderElector, LeaseConfig};
use wharf_operator::metrics::Metrics;
use wharf_operator::node_access::policy::Policy;
use wharf_operator::server::{self, Health};
use wharf_operator::settings::{self, Settings};
use wharf_operator::{crd, node_agent, render, telemetry};

#[derive(Parser)]
#[command(name = "wharf-operator", version, about = "Runs wharf-registry from Registry and RegistryMirror resources")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Common {
    /// Cluster DNS domain; read from /etc/resolv.conf when unset, else cluster.local.
    #[arg(long, env = "WHARF_CLUSTER_DOMAIN")]
    cluster_domain: Option<String>,
    /// Registry image for resources that name none.
    #[arg(long, env = "WHARF_REGISTRY_IMAGE")]
    registry_image: Option<String>,
    /// The cluster admin's node-access policy (YAML); unset: resources may map their own
    /// in-cluster names and nobody may redirect other hosts.
    #[arg(long, env = "WHARF_NODE_ACCESS_POLICY")]
    node_access_policy: Option<std::path::PathBuf>,
    /// The operator's namespace: the Lease and the node plan ConfigMap live there.
    /// (Not `--namespace`: `render` has that flag for the resources' namespace.)
    #[arg(long = "operator-namespace", env = "POD_NAMESPACE", default_value = settings::DEFAULT_NAMESPACE)]
    operator_namespace: String,
    /// Lifetime of the serving certificates the operator's CA issues (Go duration, e.g. 2160h).
    #[arg(long, env = "WHARF_TLS_CERT_LIFETIME", value_parser = go_duration)]
    tls_cert_lifetime: Option<Duration>,
    /// How long before its end a serving certificate is issued again (Go duration).
    #[arg(long, env = "WHARF_TLS_RENEW_BEFORE", value_parser = go_duration)]
    tls_renew_before: Option<Duration>,
    /// Domains under which an Ingress host may go into a serving certificate (comma-separated).
    #[arg(long, env = "WHARF_TLS_INGRESS_DOMAINS", value_delimiter = ',')]
    tls_ingress_domains: Vec<String>,
    /// Lifetime of a new CA (Go duration).
    #[arg(long, env = "WHARF_TLS_CA_LIFETIME", value_parser = go_duration)]
    tls_ca_lifetime: Option<Duration>,
}

fn go_duration(s: &str) -> Result<Duration, String> {
    wharf_operator::syntax::go_duration_secs(s)
        .filter(|secs| *secs >= 1.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("`{s}` is not a duration of at least 1s such as 2160h or 30m"))
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers.
    Run {
        #[command(flatten)]
        common: Common,
        /// Namespaces to watch (comma-separated); all when unset.
        #[arg(long, env = "WHARF_NAMESPACES", value_delimiter = ',')]
        namespaces: Vec<String>,
        /// Address of /healthz, /readyz and /metrics.
        #[arg(long, env = "WHARF_LISTEN", default_value = "0.0.0.0:8080")]
        listen: String,
        /// Elect a leader through a Lease, so only one replica reconciles.
        #[arg(long, env = "WHARF_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
        leader_election: bool,
        /// Name of the Lease.
        #[arg(long, env = "WHARF_LEASE_NAME", default_value = "wharf-operator")]
        lease_name: String,
        /// This replica's identity in the Lease (the pod name).
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
        /// Human-readable logs instead of JSON.
        #[arg(long)]
        text_logs: bool,
    },
    /// Print the CRDs as YAML.
    Crds,
    /// Print the objects the operator would create for the resources in a file.
    Render {
        #[command(flatten)]
        common: Common,
        /// File with Registry and RegistryMirror resources (`-` for stdin).
        #[arg(short = 'f', long = "filename")]
        file: String,
        /// Namespace for resources that name none.
        #[arg(short, long, default_value = "default")]
        namespace: String,
    },
    /// On one node: keep the operator's node plan in the hosts file and containerd's certs dir, undo on SIGTERM
    /// (run by the chart's node agent DaemonSet).
    NodeAgent(node_agent::Args),
}

fn settings_from(common: &Common) -> anyhow::Result<Settings> {
    let resolv = std::fs::read_to_string("/etc/resolv.conf").ok();
    let (cluster_domain, source) = settings::cluster_domain(common.cluster_domain.as_deref(), resolv.as_deref());
    tracing::info!(%cluster_domain, ?source, "cluster domain");
    let policy = Policy::load(common.node_access_policy.as_deref())?;
    tracing::info!(?policy, "node-access policy");
    Ok(Settings {
        cluster_domain,
        default_image: common.registry_image.clone().unwrap_or_else(settings::default_registry_image),
        node: settings::NodeSettings { namespace: common.operator_namespace.clone(), policy },
        tls: tls_settings(common)?,
    })
}

fn tls_settings(common: &Common) -> anyhow::Result<settings::TlsSettings> {
    let d = settings::TlsSettings::default();
    let tls = settings::TlsSettings {
        ca_lifetime: common.tls_ca_lifetime.unwrap_or(d.ca_lifetime),
        cert_lifetime: common.tls_cert_lifetime.unwrap_or(d.cert_lifetime),
        renew_before: common.tls_renew_before.unwrap_or(d.renew_before),
        ingress_domains: common.tls_ingress_domains.clone(),
    };
    anyhow::ensure!(
        tls.renew_before < tls.cert_lifetime,
        "--tls-renew-before ({:?}) must be shorter than --tls-cert-lifetime ({:?})",
        tls.renew_before,
        tls.cert_lifetime
    );
    Ok(tls)
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crds => {
            print!("{}", crd::crds_yaml()?);
            Ok(())
        }
        Command::Render { common, file, namespace } => {
            let text = if file == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?
            };
            print!("{}", render::render(&text, &namespace, &settings_from(&common)?)?);
            Ok(())
        }
        Command::NodeAgent(args) => {
            let otlp = telemetry::init(!args.text_logs)?;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let result = rt.block_on(node_agent::run(args, shutdown_signal())).map_err(anyhow::Error::from);
            telemetry::shutdown(otlp);
            result
        }
        Command::Run { common, namespaces, listen, leader_election, lease_name, identity, text_logs } => {
            let otlp = telemetry::init(!text_logs)?;
            let settings = settings_from(&common)?;
            let lease_namespace = common.operator_namespace.clone();
            let result = tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(RunArgs {
                settings,
                namespaces,
                listen,
                lease: leader_election.then(|| LeaseConfig {
                    name: lease_name,
                    namespace: lease_namespace,
                    identity: identity.unwrap_or_else(default_identity),
                    lease_duration: Duration::from_secs(15),
                    retry_period: Duration::from_secs(4),
                }),
            }));
            telemetry::shutdown(otlp);
            result
        }
    }
}

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "wharf-operator".into());
    format!("{host}-{}", std::process::id())
}

struct RunArgs {
    settings: Settings,
    namespaces: Vec<String>,
    listen: String,
    lease: Option<LeaseConfig>,
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await.context("connecting to the Kubernetes API")?;
    let metrics = Metrics::default();
    let health = Health::new(metrics.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = || controller::stopped(&stop_rx);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });

    let listener =
        tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let server = tokio::spawn(server::serve(listener, health.clone(), stopped()));

    let scopes = Scope::from_list(&args.namespaces);
    for scope in &scopes {
        controller::check_crds(&client, scope).await?;
    }
    health.ready.store(true, Ordering::Relaxed);

    let elector = args.lease.map(|cfg| LeaderElector::new(client.clone(), cfg));
    if let Some(e) = &elector {
        tokio::select! {
            r = e.acquire() => r.context("acquiring the lease")?,
            () = stopped() => return Ok(()),
        }
        health.leader.store(true, Ordering::Relaxed);
    }

    let ctx = Arc::new(Context::new(
        client.clone(),
        args.settings,
        metrics,
        elector.as_ref().map(|e| e.config().identity.clone()),
    ));
    let controllers = controller::run(ctx, scopes, stop_rx.clone());
    match &elector {
        Some(e) => {
            tokio::select! {
                () = controllers => {}
                () = e.keep_renewing() => {
                    anyhow::bail!("lost the leader lease; exiting so that a restart rejoins the election");
                }
            }
            if let Err(err) = e.step_down().await {
                tracing::warn!(error = %err, "could not step down");
            }
        }
        None => controllers.await,
    }
    let _ = server.await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
