//! Step 5: status. Computes Ready, Progressing and Degraded from what apply
//! returned (Deployment and claim status) and from the node-access decision
//! (reported apart and never part of Ready; a refusal is Degraded), writes the status subresource only
//! when it changed, and records an Event when a condition changes.
//!
//! [`compute_status`] and [`failure_status`] are pure; [`write_status`] does the I/O.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crd::conditions::{reasons, types};
use crate::crd::{LastCollection, QuotaUse, RegistryStatus};
use crate::crd::{Registry, RegistryMirror};

use super::build::{Applied, Resources};
use super::pod_probe::PodProblem;
use super::validated::{Auth, ValidatedRegistry};
use crate::node_access::plan::Verdict;

/// Errors of this step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the status subresource failed.
    #[error("writing status: {0}")]
    PatchStatus(#[source] kube::Error),
}

/// A resource whose status is a [`RegistryStatus`].
pub trait HasRegistryStatus:
    Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + Debug + Serialize + DeserializeOwned
{
    /// The current status.
    fn registry_status(&self) -> Option<&RegistryStatus>;
}

impl HasRegistryStatus for Registry {
    fn registry_status(&self) -> Option<&RegistryStatus> {
        self.status.as_ref()
    }
}

impl HasRegistryStatus for RegistryMirror {
    fn registry_status(&self) -> Option<&RegistryStatus> {
        self.status.as_ref()
    }
}

/// The rollout as the status sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Desired replicas.
    pub replicas: i32,
    /// Ready pods.
    pub ready_replicas: i32,
    /// The Deployment controller has seen the latest spec and every pod runs it.
    pub rollout_complete: bool,
    /// The claim is not bound.
    pub pvc_pending: bool,
    /// `status.nodeAccess`, when `nodeAccess` is on.
    pub node_access: Option<String>,
    /// Why node access was refused (reason, message): Degraded.
    pub node_access_refused: Option<(&'static str, String)>,
    /// What a registry pod says is wrong while replicas are missing: Degraded.
    pub pod_problem: Option<PodProblem>,
    /// `status.garbageCollection`: the last collection a ready pod reported.
    pub garbage_collection: Option<LastCollection>,
    /// `status.quotas`: the quota use a ready pod reported.
    pub quotas: Vec<QuotaUse>,
}

impl Observed {
    /// Fewer pods are ready than asked for: worth asking them why.
    pub fn missing_replicas(&self) -> bool {
        self.replicas > 0 && self.ready_replicas < self.replicas
    }
}

/// `nodeAccess` as the status reports it: `None` when off; `Some(None)` before the first decision.
fn observe_node_access(verdict: Option<Option<Verdict>>) -> (Option<String>, Option<(&'static str, String)>) {
    match verdict {
        None => (None, None),
        Some(None) => (Some("waiting for the operator's node-access decision".into()), None),
        Some(Some(Verdict::WaitingForClusterIp)) => (Some("waiting for the Service's ClusterIP".into()), None),
        Some(Some(Verdict::Granted { hosts })) => {
            (Some(format!("mapped on every node by the node agent: {}", hosts.join(", "))), None)
        }
        Some(Some(Verdict::Refused { reason, message })) => {
            (Some(format!("refused: {message}")), Some((reason, message)))
        }
    }
}

/// Reads the rollout state out of the applied objects; `node_access` is the decision for this resource.
pub fn observe(applied: &Resources<Applied>, node_access: Option<Option<Verdict>>) -> Observed {
    let d = &applied.deployment;
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let generation_seen = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let (node_access, node_access_refused) = observe_node_access(node_access);
    let rollout_complete = generation_seen && updated >= replicas && available >= replicas && total <= replicas;
    let pvc_pending = applied
        .pvc
        .as_ref()
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|phase| phase == "Pending");
    Observed {
        replicas,
        ready_replicas: status.ready_replicas.unwrap_or(0),
        rollout_complete,
        pvc_pending,
        node_access,
        node_access_refused,
        pod_problem: None,
        garbage_collection: None,
        quotas: Vec::new(),
    }
}

fn condition(type_: &str, ok: bool, reason: &str, message: String, generation: Option<i64>) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        // Filled in by `merge_conditions`, which keeps the time of unchanged conditions.
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    }
}

/// The status after a successful apply.
pub fn compute_status(v: &ValidatedRegistry, observed: &Observed, generation: Option<i64>) -> RegistryStatus {
    let (ready, ready_reason, ready_msg) = if observed.pvc_pending {
        (false, reasons::PVC_PENDING, "waiting for the storage claim to be bound".to_string())
    } else if observed.replicas == 0 {
        (false, reasons::SCALED_TO_ZERO, "replicas is 0".to_string())
    } else if let Some(p) = observed.pod_problem.as_ref().filter(|_| !observed.rollout_complete) {
        (false, p.reason, format!("{} of {} replicas ready: {}", observed.ready_replicas, observed.replicas, p.message))
    } else if !observed.rollout_complete {
        (
            false,
            reasons::ROLLOUT_IN_PROGRESS,
            format!(
                "{} of {} replicas ready with the current configuration",
                observed.ready_replicas, observed.replicas
            ),
        )
    } else {
        (true, reasons::AVAILABLE, format!("{} of {} replicas ready", observed.ready_replicas, observed.replicas))
    };
    let progressing = !observed.rollout_complete && observed.replicas > 0;
    let conditions = vec![
        condition(types::READY, ready, ready_reason, ready_msg, generation),
        condition(
            types::PROGRESSING,
            progressing,
            if progressing { reasons::ROLLOUT_IN_PROGRESS } else { reasons::ROLLOUT_COMPLETE },
            if progressing { "pods with the current configuration are starting" } else { "no rollout in progress" }
                .into(),
            generation,
        ),
        match (&observed.pod_problem, &observed.node_access_refused) {
            (Some(p), _) => condition(types::DEGRADED, true, p.reason, p.message.clone(), generation),
            (None, Some((reason, message))) => condition(types::DEGRADED, true, reason, message.clone(), generation),
            (None, None) => {
                condition(types::DEGRADED, false, reasons::AS_EXPECTED, "the spec is applied".into(), generation)
            }
        },
    ];
    RegistryStatus {
        observed_generation: generation,
        conditions,
        url: Some(v.endpoint.url.clone()),
        host: Some(v.endpoint.host.clone()),
        realm: matches!(v.auth, Auth::Token(_)).then(|| v.endpoint.realm.clone()),
        ready_replicas: observed.ready_replicas,
        node_access: observed.node_access.clone(),
        garbage_collection: observed.garbage_collection.clone(),
        quotas: observed.quotas.clone(),
    }
}

/// The status after a failure: Degraded with the reason; the rest of the previous status is kept.
pub fn failure_status(
    previous: Option<&RegistryStatus>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> RegistryStatus {
    let mut status = previous.cloned().unwrap_or_default();
    status.observed_generation = generation;
    let ready_message = format!("not ready: {message}");
    status.conditions = vec![
        condition(types::READY, false, reason, ready_message, generation),
        condition(types::PROGRESSING, false, reason, "waiting for the problem to be fixed".into(), generation),
        condition(types::DEGRADED, true, reason, message.to_string(), generation),
    ];
    status
}

/// Keeps `lastTransitionTime` of conditions whose status did not change; stamps `now` on the others.
pub fn merge_conditions(
    previous: Option<&RegistryStatus>,
    mut next: RegistryStatus,
    now: k8s_openapi::jiff::Timestamp,
) -> RegistryStatus {
    for c in &mut next.conditions {
        let before = previous.and_then(|p| p.conditions.iter().find(|o| o.type_ == c.type_));
        c.last_transition_time = match before {
            Some(o) if o.status == c.status => o.last_transition_time.clone(),
            _ => Time(now),
        };
    }
    next
}

/// Conditions that changed status or reason, for events.
pub fn transitions<'a>(previous: Option<&RegistryStatus>, next: &'a RegistryStatus) -> Vec<&'a Condition> {
    next.conditions
        .iter()
        .filter(|c| {
            let before = previous.and_then(|p| p.conditions.iter().find(|o| o.type_ == c.type_));
            before.is_none_or(|o| o.status != c.status || o.reason != c.reason)
        })
        .collect()
}

/// `status` as a merge patch. Fields that are unset in `status` but may be set
/// in the stored status (realm, nodeAccess, garbageCollection, quotas) are sent as null, so a merge
/// patch removes them rather than keeping a stale value.
pub fn status_patch(status: &RegistryStatus) -> serde_json::Value {
    let mut value = serde_json::to_value(status).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        for key in ["realm", "nodeAccess", "garbageCollection", "quotas"] {
            map.entry(key).or_insert(serde_json::Value::Null);
        }
    }
    value
}

/// Writes `next` (if it differs from the current status) and records events for transitions.
pub async fn write_status<K: HasRegistryStatus>(
    client: &Client,
    recorder: &Recorder,
    obj: &K,
    next: RegistryStatus,
) -> Result<(), Error> {
    let previous = obj.registry_status();
    let next = merge_conditions(previous, next, k8s_openapi::jiff::Timestamp::now());
    if previous == Some(&next) {
        return Ok(());
    }
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let patch = serde_json::json!({ "status": status_patch(&next) });
    api.patch_status(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::PatchStatus)?;
    for c in transitions(previous, &next) {
        let interesting = match c.type_.as_str() {
            types::READY => true,
            types::DEGRADED => c.status == "True" || previous.is_some(),
            _ => false,
        };
        if !interesting {
            continue;
        }
        let warning = (c.type_ == types::DEGRADED && c.status == "True") || c.reason == reasons::PVC_PENDING;
        let event = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: c.reason.clone(),
            note: Some(format!("{} is {}: {}", c.type_, c.status, c.message).chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "could not record event");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(ready: i32, complete: bool, pvc_pending: bool) -> Observed {
        Observed {
            replicas: 2,
            ready_replicas: ready,
            rollout_complete: complete,
            pvc_pending,
            node_access: None,
            node_access_refused: None,
            pod_problem: None,
            garbage_collection: None,
            quotas: Vec::new(),
        }
    }

    fn cond<'a>(s: &'a RegistryStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).expect("condition present")
    }

    #[test]
    fn ready_when_rollout_complete() {
        let v = crate::reconcile::test_support::validated_registry();
        let s = compute_status(&v, &observed(2, true, false), Some(3));
        assert_eq!(cond(&s, types::READY).status, "True");
        assert_eq!(cond(&s, types::PROGRESSING).status, "False");
        assert_eq!(cond(&s, types::DEGRADED).status, "False");
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.host.as_deref(), Some("reg.team-a.svc.cluster.local:5000"));
    }

    #[test]
    fn node_access_answers_are_reported_and_a_refusal_is_degraded() {
        assert_eq!(observe_node_access(None), (None, None));
        assert_eq!(
            observe_node_access(Some(Some(Verdict::WaitingForClusterIp))).0.as_deref(),
            Some("waiting for the Service's ClusterIP")
        );
        let granted = Verdict::Granted { hosts: vec!["reg.team-a.svc.cluster.local:5000".into()] };
        assert_eq!(
            observe_node_access(Some(Some(granted))).0.as_deref(),
            Some("mapped on every node by the node agent: reg.team-a.svc.cluster.local:5000")
        );
        let v = crate::reconcile::test_support::validated_registry();
        let refused = Verdict::Refused { reason: reasons::NODE_ACCESS_NOT_ALLOWED, message: "not docker.io".into() };
        let (text, why) = observe_node_access(Some(Some(refused)));
        let mut o = observed(2, true, false);
        (o.node_access, o.node_access_refused) = (text, why);
        let s = compute_status(&v, &o, Some(1));
        assert_eq!(cond(&s, types::DEGRADED).status, "True");
        assert_eq!(cond(&s, types::DEGRADED).reason, reasons::NODE_ACCESS_NOT_ALLOWED);
        assert_eq!(cond(&s, types::DEGRADED).message, "not docker.io");
        assert_eq!(cond(&s, types::READY).status, "True", "the registry itself still serves");
        assert_eq!(s.node_access.as_deref(), Some("refused: not docker.io"));
    }

    #[test]
    fn what_a_pod_says_is_degraded_and_clears_once_ready() {
        let v = crate::reconcile::test_support::validated_registry();
        let mut o = observed(0, false, false);
        assert!(o.missing_replicas());
        o.pod_problem = Some(PodProblem {
            reason: reasons::REGISTRY_NOT_READY,
            message: "pod reg-1 is not ready: storage: bucket `wharf` does not exist".into(),
        });
        let s = compute_status(&v, &o, Some(1));
        let degraded = cond(&s, types::DEGRADED);
        assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", reasons::REGISTRY_NOT_READY));
        assert!(degraded.message.contains("bucket `wharf` does not exist"), "{}", degraded.message);
        let ready = cond(&s, types::READY);
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", reasons::REGISTRY_NOT_READY));
        assert!(ready.message.starts_with("0 of 2 replicas ready: pod reg-1"), "{}", ready.message);

        let healthy = observed(2, true, false);
        assert!(!healthy.missing_replicas(), "nobody is asked when every replica is ready");
        let s = compute_status(&v, &healthy, Some(1));
        assert_eq!(cond(&s, types::DEGRADED).status, "False");
    }

    #[test]
    fn status_patch_clears_what_no_longer_applies() {
        let v = crate::reconcile::test_support::validated_registry();
        let mut o = observed(2, true, false);
        let patch = status_patch(&compute_status(&v, &o, Some(1)));
        assert_eq!(patch["nodeAccess"], serde_json::Value::Null);
        assert!(patch["realm"].is_string());
        o.node_access = Some("waiting for the Service's ClusterIP".into());
        assert_eq!(status_patch(&compute_status(&v, &o, Some(1)))["nodeAccess"], "waiting for the Service's ClusterIP");
    }

    #[test]
    fn rollout_and_pvc_pending_reasons() {
        let v = crate::reconcile::test_support::validated_registry();
        let s = compute_status(&v, &observed(1, false, false), Some(1));
        assert_eq!(cond(&s, types::READY).reason, reasons::ROLLOUT_IN_PROGRESS);
        assert_eq!(cond(&s, types::PROGRESSING).status, "True");
        let s = compute_status(&v, &observed(0, false, true), Some(1));
        assert_eq!(cond(&s, types::READY).reason, reasons::PVC_PENDING);
    }

    #[test]
    fn failure_keeps_url_and_marks_degraded() {
        let v = crate::reconcile::test_support::validated_registry();
        let ok = compute_status(&v, &observed(2, true, false), Some(1));
        let s = failure_status(Some(&ok), reasons::SECRET_MISSING, "Secret users does not exist", Some(2));
        assert_eq!(cond(&s, types::DEGRADED).status, "True");
        assert_eq!(cond(&s, types::DEGRADED).reason, reasons::SECRET_MISSING);
        assert_eq!(cond(&s, types::READY).status, "False");
        assert_eq!(s.url, ok.url);
    }

    #[test]
    fn transition_times_and_events() {
        let v = crate::reconcile::test_support::validated_registry();
        let t0 = k8s_openapi::jiff::Timestamp::from_second(1_000).expect("time");
        let t1 = k8s_openapi::jiff::Timestamp::from_second(2_000).expect("time");
        let first = merge_conditions(None, compute_status(&v, &observed(1, false, false), Some(1)), t0);
        assert_eq!(transitions(None, &first).len(), 3);
        let second = merge_conditions(Some(&first), compute_status(&v, &observed(2, true, false), Some(1)), t1);
        assert_eq!(cond(&second, types::READY).last_transition_time, Time(t1));
        assert_eq!(cond(&second, types::DEGRADED).last_transition_time, Time(t0));
        let changed: Vec<_> = transitions(Some(&first), &second).iter().map(|c| c.type_.clone()).collect();
        assert_eq!(changed, vec![types::READY.to_string(), types::PROGRESSING.to_string()]);
        let again = merge_conditions(Some(&second), compute_status(&v, &observed(2, true, false), Some(1)), t1);
        assert_eq!(again, second, "an unchanged state gives an identical status, so nothing is written");
    }
}
