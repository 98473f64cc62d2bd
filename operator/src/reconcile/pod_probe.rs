//! Why the registry pods are not ready, in the pods' own words.
//!
//! The kubelet's readiness probe only records a status code, so the
//! Deployment can say that replicas are not ready but never why. The
//! registry says why in the body of `/debug/ready` (e.g. that the S3 bucket
//! does not exist, or that the endpoint refuses the key pair). While replicas
//! are missing, the operator lists the resource's pods and asks a few
//! running-but-unready ones directly, over the pod IP and the `debug` port,
//! the same request the kubelet makes. A pod whose container keeps exiting is
//! reported with the end of its last log (the container's termination
//! message, `FallbackToLogsOnError`). See docs/operator.md, Status and failures.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::crd::conditions::reasons;
use crate::names::{self, OwnerKind};

/// How long one pod may take to answer (the kubelet's probe allows 3 s).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Pods asked per reconcile: one answer is enough, a few cover a pod that is just starting.
const MAX_PROBES: usize = 3;
/// Longest message taken from a pod.
const MAX_MESSAGE: usize = 400;
/// A container running for less than this may simply not have passed its
/// first probe yet (period 5 s): not asked.
const START_GRACE: i64 = 10;

/// What is wrong with the pods: a condition reason and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodProblem {
    /// Condition reason.
    pub reason: &'static str,
    /// Which pod, and what it says.
    pub message: String,
}

/// What to do about one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Look {
    /// Ask its `/debug/ready` at this address.
    Ask(SocketAddr),
    /// It keeps exiting; this is the end of its last log.
    Exiting(String),
}

/// Which line of a text is the message.
#[derive(Clone, Copy)]
enum Pick {
    /// The first: `/debug/ready` says why in its first line (what follows,
    /// such as an S3 error document, only repeats it).
    First,
    /// The last: the end of a log says why the process exited.
    Last,
}

fn one_line(text: &str, pick: Pick) -> String {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let line = match pick {
        Pick::First => lines.next(),
        Pick::Last => lines.next_back(),
    }
    .unwrap_or_default();
    let mut line: String = line.chars().filter(|c| !c.is_control()).collect();
    if line.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}

/// What is worth a look in `pod` at `now`, if anything: a registry
/// container that has run for a while but is not ready, or one that keeps exiting.
fn look_at(pod: &Pod, now: Timestamp) -> Option<Look> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    let container = status.container_statuses.iter().flatten().find(|c| c.name == "registry")?;
    if container.ready {
        return None;
    }
    if let Some(message) = container
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.message.as_deref())
        .filter(|_| container.state.as_ref().is_some_and(|s| s.running.is_none()))
        .map(|m| one_line(m, Pick::Last))
        .filter(|m| !m.is_empty())
    {
        return Some(Look::Exiting(message));
    }
    let started = container.state.as_ref()?.running.as_ref()?.started_at.as_ref()?;
    if now.as_second() - started.0.as_second() < START_GRACE {
        return None;
    }
    debug_addr(pod).map(Look::Ask)
}

/// The pod IP and the registry container's `debug` port.
pub fn debug_addr(pod: &Pod) -> Option<SocketAddr> {
    let ip: IpAddr = pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()?;
    let port = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "registry")?
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(names::PORT_NAME_DEBUG))
        .map_or(names::DEBUG_CONTAINER_PORT, |p| p.container_port);
    Some(SocketAddr::new(ip, u16::try_from(port).ok()?))
}

/// `GET /debug/ready` at `addr`: the status code and the start of the body.
pub async fn get_ready(addr: SocketAddr) -> Result<(u16, String), String> {
    get_debug(addr, "/debug/ready", 4096).await
}

/// `GET path` on a pod's debug port: the status code and at most `limit`
/// bytes of the body (a longer body is an error), within 3 s.
pub async fn get_debug(addr: SocketAddr, path: &str, limit: usize) -> Result<(u16, String), String> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        let conn = tokio::spawn(conn);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, addr.to_string())
            .header(hyper::header::USER_AGENT, "wharf-operator")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), limit).collect().await.map_err(|e| e.to_string())?;
        drop(sender);
        conn.abort();
        Ok((status, String::from_utf8_lossy(&body.to_bytes()).into_owned()))
    };
    tokio::time::timeout(PROBE_TIMEOUT, exchange).await.map_err(|_| "no answer within 3s".to_string())?
}

/// What the pods of a resource with missing replicas say.
#[derive(Debug, Default)]
pub struct PodReport {
    /// Why they are not ready, when one of them says.
    pub problem: Option<PodProblem>,
    /// Whether a registry container exists and is not ready: only then can
    /// its answer change without any event the operator watches. Pods that
    /// wait for a node have nothing to say yet.
    pub unready_running: bool,
}

/// Asks the pods of one resource why they are not ready.
pub async fn pod_report(client: &Client, namespace: &str, kind: OwnerKind, instance: &str) -> PodReport {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Ok(list) = pods.list(&ListParams::default().labels(&names::children_selector(kind, instance))).await else {
        tracing::warn!("cannot list the registry pods to ask why they are not ready");
        return PodReport { problem: None, unready_running: true };
    };
    let unready_running = list.items.iter().any(|p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.name == "registry" && !c.ready))
    });
    PodReport { problem: pod_problem_in(&list.items).await, unready_running }
}

/// Asks pods why they are not ready. `None` when no pod says anything: none
/// has run long enough, every one answers 200, or none can be reached (a
/// NetworkPolicy that does not admit the operator).
async fn pod_problem_in(pods: &[Pod]) -> Option<PodProblem> {
    let now = Timestamp::now();
    let mut asked = 0;
    for pod in pods {
        let name = pod.name_any();
        match look_at(pod, now) {
            None => {}
            Some(Look::Exiting(message)) => {
                return Some(PodProblem {
                    reason: reasons::REGISTRY_EXITING,
                    message: format!("pod {name} keeps exiting: {message}"),
                });
            }
            Some(Look::Ask(addr)) if asked < MAX_PROBES => {
                asked += 1;
                match get_ready(addr).await {
                    Ok((200..=299, _)) => {}
                    Ok((status, body)) => {
                        let said = one_line(&body, Pick::First);
                        // The registry's body reads `not ready: <why>`; the message says that already.
                        let said = said.strip_prefix("not ready: ").map(str::to_string).unwrap_or(said);
                        let said = if said.is_empty() { format!("/debug/ready answers {status}") } else { said };
                        return Some(PodProblem {
                            reason: reasons::REGISTRY_NOT_READY,
                            message: format!("pod {name} is not ready: {said}"),
                        });
                    }
                    Err(e) => tracing::debug!(pod = %name, %addr, error = %e, "no answer from /debug/ready"),
                }
            }
            Some(Look::Ask(_)) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `secs` after the containers of the fixtures started.
    fn later(secs: i64) -> Timestamp {
        Timestamp::from_second(1_767_225_600 + secs).expect("time")
    }

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).expect("pod")
    }

    const SPEC: &str = "spec:\n  containers:\n  - name: registry\n    ports:\n    - {name: registry, containerPort: 5000}\n    - {name: debug, containerPort: 5001}\n";

    #[test]
    fn running_unready_pods_are_asked_at_their_debug_port() {
        let p = pod(&format!(
            "metadata: {{name: r-1}}\n{SPEC}status:\n  podIP: 198.18.1.7\n  containerStatuses:\n  - {{name: registry, ready: false, restartCount: 0, image: i, imageID: '', state: {{running: {{startedAt: '2026-01-01T00:00:00Z'}}}}}}\n"
        ));
        assert_eq!(look_at(&p, later(60)), Some(Look::Ask("198.18.1.7:5001".parse().expect("addr"))));
        assert_eq!(look_at(&p, later(3)), None, "just started: its first probe may not have run");
        let ready = pod(&format!(
            "metadata: {{name: r-1}}\n{SPEC}status:\n  podIP: 198.18.1.7\n  containerStatuses:\n  - {{name: registry, ready: true, restartCount: 0, image: i, imageID: '', state: {{running: {{startedAt: '2026-01-01T00:00:00Z'}}}}}}\n"
        ));
        assert_eq!(look_at(&ready, later(60)), None);
        let pending = pod(&format!("metadata: {{name: r-1}}\n{SPEC}status: {{phase: Pending}}\n"));
        assert_eq!(look_at(&pending, later(60)), None, "nothing to ask before the container runs");
    }

    #[test]
    fn an_exiting_container_is_reported_with_its_last_log_line() {
        let p = pod(&format!(
            "metadata: {{name: r-1}}\n{SPEC}status:\n  podIP: 198.18.1.7\n  containerStatuses:\n  - name: registry\n    ready: false\n    restartCount: 4\n    image: i\n    imageID: ''\n    state: {{waiting: {{reason: CrashLoopBackOff}}}}\n    lastState: {{terminated: {{exitCode: 1, message: \"starting\\nError: storage.s3.chunksize: too small\\n\"}}}}\n"
        ));
        assert_eq!(look_at(&p, later(60)), Some(Look::Exiting("Error: storage.s3.chunksize: too small".into())));
    }

    #[test]
    fn messages_are_one_bounded_line() {
        assert_eq!(one_line("bucket wharf does not exist\n", Pick::First), "bucket wharf does not exist");
        // What the registry answered in the e2e: the reason, then the S3 error document.
        let body = "not ready: bucket b at http://s3:7070: NoSuchBucket\n<Error><Code>NoSuchBucket</Code></Error>\n";
        assert_eq!(one_line(body, Pick::First), "not ready: bucket b at http://s3:7070: NoSuchBucket");
        assert_eq!(one_line("starting\nError: refused\n\n", Pick::Last), "Error: refused");
        let long = "x".repeat(5000);
        assert!(one_line(&long, Pick::First).chars().count() <= MAX_MESSAGE + 1);
        assert_eq!(one_line("a\u{1b}[31mb", Pick::Last), "a[31mb");
    }

    #[tokio::test]
    async fn get_ready_reads_the_status_and_body() {
        let app = axum::Router::new().route(
            "/debug/ready",
            axum::routing::get(|| async {
                (axum::http::StatusCode::SERVICE_UNAVAILABLE, "storage: bucket `wharf` does not exist\n")
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let (status, body) = get_ready(addr).await.expect("answer");
        assert_eq!((status, body.as_str()), (503, "storage: bucket `wharf` does not exist\n"));
        server.abort();
        let _ = server.await;
        // Nothing listens there any more: an error, not a hang.
        assert!(get_ready(addr).await.is_err());
    }
}
